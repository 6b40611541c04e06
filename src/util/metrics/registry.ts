/**
 * A deliberately small Prometheus metrics registry: counters, gauges and
 * histograms with fixed buckets, rendered in the text exposition format
 * 0.0.4. Enough for one process's own metrics without a dependency; no
 * summaries, no exemplars, no timestamps.
 *
 * @example
 *   const reg = new Registry();
 *   const hits = reg.counter('bulwark_hits_total', 'Hits by route.', { labelNames: ['route'] });
 *   hits.with({ route: '/x' }).inc();
 *   const lat = reg.histogram('bulwark_latency_seconds', 'Latency.', { buckets: [0.1, 1] });
 *   lat.observe(0.3);
 *   reply.type(PROMETHEUS_CONTENT_TYPE).send(reg.render());
 */

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type Labels = Readonly<Record<string, string>>;
export type MetricType = 'counter' | 'gauge' | 'histogram';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Buckets for durations from a few milliseconds to a minute, in seconds. */
export const DEFAULT_SECONDS_BUCKETS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function formatLabels(names: readonly string[], values: readonly string[], extra = ''): string {
  const parts = names.map((n, i) => `${n}="${escapeLabelValue(values[i] ?? '')}"`);
  if (extra) parts.push(extra);
  return parts.length > 0 ? `{${parts.join(',')}}` : '';
}

/** What every metric kind shares: name, help, label names and one series per label value tuple. */
abstract class Metric<S> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  abstract readonly type: MetricType;
  protected readonly series = new Map<string, { values: string[]; state: S }>();
  readonly #collect: (() => void) | undefined;

  constructor(name: string, help: string, labelNames: readonly string[], collect?: () => void) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
    this.#collect = collect;
  }

  protected abstract initial(): S;

  /** The series for these label values (created at zero on first use). */
  protected stateFor(labels: Labels): S;
  protected stateFor(labels: Labels, create: false): S | undefined;
  protected stateFor(labels: Labels, create = true): S | undefined {
    const keys = Object.keys(labels);
    const missing = this.labelNames.filter((n) => !(n in labels));
    const unknown = keys.filter((k) => !this.labelNames.includes(k));
    if (missing.length > 0 || unknown.length > 0) {
      throw new TypeError(
        `metric ${this.name} has labels [${this.labelNames.join(', ')}]; ` +
          `${missing.length > 0 ? `missing ${missing.join(', ')}` : ''}` +
          `${missing.length > 0 && unknown.length > 0 ? ', ' : ''}` +
          `${unknown.length > 0 ? `unknown ${unknown.join(', ')}` : ''}`,
      );
    }
    const values = this.labelNames.map((n) => String(labels[n]));
    const key = JSON.stringify(values);
    let s = this.series.get(key);
    if (!s && !create) return undefined;
    if (!s) {
      s = { values, state: this.initial() };
      this.series.set(key, s);
    }
    return s.state;
  }

  /** Forget every series (e.g. before a collect callback sets the current ones). */
  reset(): void {
    this.series.clear();
  }

  /** @internal called by Registry.render */
  collectNow(): void {
    this.#collect?.();
  }

  protected abstract sampleLines(values: readonly string[], state: S): string[];

  render(): string {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
    for (const { values, state } of this.series.values()) lines.push(...this.sampleLines(values, state));
    return lines.join('\n');
  }
}

export class Counter extends Metric<{ value: number }> {
  readonly type = 'counter';
  protected initial() {
    return { value: 0 };
  }
  /** The series with these labels; every declared label must be given. */
  with(labels: Labels): { inc: (by?: number) => void; get: () => number } {
    const s = this.stateFor(labels);
    return {
      inc: (by = 1) => {
        if (!(by >= 0)) throw new RangeError(`counter ${this.name} can only increase; got inc(${by})`);
        s.value += by;
      },
      get: () => s.value,
    };
  }
  /** Unlabelled counter only. */
  inc(by = 1): void {
    this.with({}).inc(by);
  }
  /** Current value (0 for a series never touched; reading does not create it). */
  get(labels: Labels = {}): number {
    return this.stateFor(labels, false)?.value ?? 0;
  }
  protected sampleLines(values: readonly string[], s: { value: number }): string[] {
    return [`${this.name}${formatLabels(this.labelNames, values)} ${formatValue(s.value)}`];
  }
}

export class Gauge extends Metric<{ value: number }> {
  readonly type = 'gauge';
  protected initial() {
    return { value: 0 };
  }
  with(labels: Labels): { set: (v: number) => void; inc: (by?: number) => void; get: () => number } {
    const s = this.stateFor(labels);
    return {
      set: (v) => {
        s.value = v;
      },
      inc: (by = 1) => {
        s.value += by;
      },
      get: () => s.value,
    };
  }
  /** Unlabelled gauge only. */
  set(v: number): void {
    this.with({}).set(v);
  }
  inc(by = 1): void {
    this.with({}).inc(by);
  }
  dec(by = 1): void {
    this.with({}).inc(-by);
  }
  /** Current value (0 for a series never touched; reading does not create it). */
  get(labels: Labels = {}): number {
    return this.stateFor(labels, false)?.value ?? 0;
  }
  protected sampleLines(values: readonly string[], s: { value: number }): string[] {
    return [`${this.name}${formatLabels(this.labelNames, values)} ${formatValue(s.value)}`];
  }
}

interface HistogramState {
  /** Per-bucket (non-cumulative) counts; the last slot is +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram extends Metric<HistogramState> {
  readonly type = 'histogram';
  readonly buckets: readonly number[];

  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    buckets: readonly number[],
    collect?: () => void,
  ) {
    super(name, help, labelNames, collect);
    if (buckets.length === 0) throw new TypeError(`histogram ${name}: buckets must not be empty`);
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i]!;
      if (!Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!)) {
        throw new TypeError(
          `histogram ${name}: buckets must be finite and strictly increasing (+Inf is implicit); got [${buckets.join(', ')}]`,
        );
      }
    }
    this.buckets = [...buckets];
  }
  protected initial(): HistogramState {
    return { counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
  }
  with(labels: Labels): { observe: (v: number) => void; get: () => { sum: number; count: number } } {
    const s = this.stateFor(labels);
    return {
      observe: (v) => {
        if (Number.isNaN(v)) throw new RangeError(`histogram ${this.name}: cannot observe NaN`);
        let i = this.buckets.findIndex((b) => v <= b);
        if (i < 0) i = this.buckets.length;
        s.counts[i]! += 1;
        s.sum += v;
        s.count += 1;
      },
      get: () => ({ sum: s.sum, count: s.count }),
    };
  }
  /** Unlabelled histogram only. */
  observe(v: number): void {
    this.with({}).observe(v);
  }
  /** Observations so far (zeros for a series never touched). */
  get(labels: Labels = {}): { sum: number; count: number } {
    const s = this.stateFor(labels, false);
    return { sum: s?.sum ?? 0, count: s?.count ?? 0 };
  }
  protected sampleLines(values: readonly string[], s: HistogramState): string[] {
    const lines: string[] = [];
    let cumulative = 0;
    for (let i = 0; i <= this.buckets.length; i++) {
      cumulative += s.counts[i] ?? 0;
      const le = i < this.buckets.length ? formatValue(this.buckets[i]!) : '+Inf';
      lines.push(`${this.name}_bucket${formatLabels(this.labelNames, values, `le="${le}"`)} ${cumulative}`);
    }
    lines.push(`${this.name}_sum${formatLabels(this.labelNames, values)} ${formatValue(s.sum)}`);
    lines.push(`${this.name}_count${formatLabels(this.labelNames, values)} ${s.count}`);
    return lines;
  }
}

export interface MetricOptions {
  labelNames?: readonly string[];
  /**
   * Called on every render, before the metric is written: set gauges from
   * live state here (e.g. count instances) rather than tracking every change.
   */
  collect?: () => void;
}

export interface HistogramOptions extends MetricOptions {
  /** Upper bounds, strictly increasing; +Inf is added. @default DEFAULT_SECONDS_BUCKETS */
  buckets?: readonly number[];
}

/** A set of uniquely named metrics rendered together. */
export class Registry {
  readonly #metrics = new Map<string, Counter | Gauge | Histogram>();

  counter(name: string, help: string, opts: MetricOptions = {}): Counter {
    const labelNames = this.#check(name, opts.labelNames ?? [], 'counter');
    return this.#add(new Counter(name, help, labelNames, opts.collect));
  }

  gauge(name: string, help: string, opts: MetricOptions = {}): Gauge {
    const labelNames = this.#check(name, opts.labelNames ?? [], 'gauge');
    return this.#add(new Gauge(name, help, labelNames, opts.collect));
  }

  histogram(name: string, help: string, opts: HistogramOptions = {}): Histogram {
    const labelNames = this.#check(name, opts.labelNames ?? [], 'histogram');
    return this.#add(
      new Histogram(name, help, labelNames, opts.buckets ?? DEFAULT_SECONDS_BUCKETS, opts.collect),
    );
  }

  get(name: string): Counter | Gauge | Histogram | undefined {
    return this.#metrics.get(name);
  }

  /** Every metric in registration order, as Prometheus text format 0.0.4 (ends with a newline). */
  render(): string {
    const blocks: string[] = [];
    for (const m of this.#metrics.values()) {
      m.collectNow();
      blocks.push(m.render());
    }
    return blocks.length > 0 ? `${blocks.join('\n')}\n` : '';
  }

  #add<M extends Counter | Gauge | Histogram>(m: M): M {
    this.#metrics.set(m.name, m);
    return m;
  }

  #check(name: string, labelNames: readonly string[], type: MetricType): readonly string[] {
    if (!METRIC_NAME.test(name)) {
      throw new TypeError(
        `metric name '${name}' is invalid; use letters, digits, _ and :, not starting with a digit`,
      );
    }
    if (this.#metrics.has(name)) {
      throw new TypeError(`metric ${name} is already registered; register it once and share the object`);
    }
    for (const l of labelNames) {
      if (!LABEL_NAME.test(l) || l.startsWith('__')) {
        throw new TypeError(
          `metric ${name}: label name '${l}' is invalid; use letters, digits and _ (no leading __)`,
        );
      }
      if (type === 'histogram' && l === 'le') {
        throw new TypeError(`histogram ${name}: 'le' is reserved for bucket bounds; rename the label`);
      }
    }
    if (new Set(labelNames).size !== labelNames.length) {
      throw new TypeError(`metric ${name}: label names repeat: [${labelNames.join(', ')}]`);
    }
    return [...labelNames];
  }
}

/** Join several rendered expositions (each ending in a newline, or empty) into one scrape body. */
export function joinExpositions(...parts: (string | undefined)[]): string {
  return parts
    .filter((p): p is string => !!p && p.trim() !== '')
    .map((p) => (p.endsWith('\n') ? p : `${p}\n`))
    .join('');
}
