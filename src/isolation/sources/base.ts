/**
 * Plumbing shared by the sources: a poller that never overlaps itself and
 * never lets an error escape a timer, error accounting, and a cached view of
 * the caller's instance list (sources look instances up on hot paths, e.g.
 * once per request log line).
 */
import type { InstanceStatus } from '../../runtime/driver.ts';
import type { InstanceView, SignalSink, SourceErrorHandler, SourceOptions, SourceStatus } from './types.ts';

/**
 * Wrap an error handler so it reports each source and message at most once every 10 s:
 * a broken dependency must not flood the log.
 */
export function rateLimited(report: SourceErrorHandler): SourceErrorHandler {
  const last = new Map<string, number>();
  return (source, err) => {
    const key = `${source}\0${errorText(err)}`;
    const now = Date.now();
    if ((last.get(key) ?? 0) > now - 10_000) return;
    if (last.size > 1000) last.clear();
    last.set(key, now);
    report(source, err);
  };
}

/** Default error handler: a console line, rate limited (see `rateLimited`). */
export const warnRateLimited: SourceErrorHandler = rateLimited((source, err) =>
  console.warn(`bulwark signal source ${source}: ${errorText(err)}`),
);

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** State and helpers every source has: status counters, error handling, started/stopped. */
export abstract class BaseSource {
  abstract readonly name: string;
  protected sink: SignalSink | undefined;
  protected view: InstanceView | undefined;
  protected running = false;
  protected signals = 0;
  private errors = 0;
  private lastError: string | undefined;
  private readonly onError: SourceErrorHandler;

  constructor(opts: SourceOptions = {}) {
    this.onError = opts.onError ?? warnRateLimited;
  }

  start(sink: SignalSink, instances: InstanceView): void {
    if (this.running) throw new Error(`signal source ${this.name} is already started`);
    this.sink = sink;
    this.view = instances;
    this.running = true;
    this.onStart();
  }

  protected abstract onStart(): void;

  protected fail(err: unknown): void {
    this.errors++;
    this.lastError = errorText(err);
    try {
      this.onError(this.name, err);
    } catch {
      // the handler itself must not break the source
    }
  }

  protected emit(instanceId: string, s: Parameters<SignalSink['signal']>[1]): void {
    if (!this.sink) return;
    this.signals++;
    try {
      this.sink.signal(instanceId, s);
    } catch (err) {
      this.fail(err);
    }
  }

  /** Number of instances the source holds state for. */
  protected abstract held(): number;

  status(): SourceStatus {
    return {
      name: this.name,
      running: this.running,
      instances: this.held(),
      signals: this.signals,
      errors: this.errors,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
    };
  }
}

/**
 * Runs `fn` every `intervalMs` without overlap: a slow round delays the next
 * one instead of piling up (2 cores, other work). Errors go to `onError`.
 */
export class Poller {
  private timer: NodeJS.Timeout | undefined;
  private inflight: Promise<void> | undefined;
  private stopped = true;
  private readonly intervalMs: number;
  private readonly fn: () => void | Promise<void>;
  private readonly onError: (err: unknown) => void;

  constructor(intervalMs: number, fn: () => void | Promise<void>, onError: (err: unknown) => void) {
    if (!Number.isFinite(intervalMs) || intervalMs < 1)
      throw new Error(`poll interval must be a positive number of ms, got ${intervalMs}`);
    this.intervalMs = intervalMs;
    this.fn = fn;
    this.onError = onError;
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.round(), delayMs);
    // A forgotten stop() must not keep a process alive.
    this.timer.unref();
  }

  private round(): void {
    const started = Date.now();
    const run = async (): Promise<void> => {
      try {
        await this.fn();
      } catch (err) {
        this.onError(err);
      }
    };
    this.inflight = run().finally(() => {
      this.inflight = undefined;
      this.schedule(Math.max(0, this.intervalMs - (Date.now() - started)));
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.inflight;
  }
}

/** Checks that an interval/timeout option is a positive number, naming it otherwise. */
export function positiveMs(field: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`${field} must be a positive number of milliseconds, got ${String(value)}`);
  return value;
}

/**
 * An `InstanceView` over a function that returns the current instances
 * (e.g. `() => driver.list()`), re-read at most every `maxAgeMs` so hot
 * paths (a lookup per request log line) do not rebuild the list each time.
 */
export function cachedInstances(list: () => readonly InstanceStatus[], maxAgeMs = 50): InstanceView {
  let at = -Infinity;
  let items: readonly InstanceStatus[] = [];
  let byId = new Map<string, InstanceStatus>();
  const refresh = (): void => {
    const now = Date.now();
    if (now - at < maxAgeMs) return;
    at = now;
    items = list();
    byId = new Map(items.map((i) => [i.id, i]));
  };
  return {
    list() {
      refresh();
      return items;
    },
    get(id) {
      refresh();
      return byId.get(id);
    },
  };
}
