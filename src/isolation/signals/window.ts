/**
 * Per-instance sliding windows over the signal stream, built for the
 * signature engine's hot path (hundreds of signals/s, queries every 50-100 ms):
 *
 * - requests live in a fixed-capacity ring of typed arrays with a running
 *   count of server faults, so "faults / requests in the last N ms" is two
 *   binary searches, not a scan;
 * - consecutive-failure streaks (requests and probes) are counters kept on
 *   observe;
 * - the instance's own latency baseline is a log-bucketed histogram over
 *   1-second slices from `baselineHorizonMs` ago up to `baselineExcludeMs`
 *   ago, maintained incrementally as time moves (the recent window is
 *   excluded so an ongoing slowdown does not raise its own baseline);
 * - "no answer since" (for hang detection) is tracked from probe failures,
 *   unanswered requests and in-flight samples since the last success.
 *
 * Times must be non-decreasing per instance; a signal a few ms older than the
 * previous one (log lines of concurrent requests end out of order) is
 * clamped to the previous time so binary searches stay valid.
 */
import { LatencyHistogram } from './latency-histogram.ts';
import { CONNECT_FAILURE_OUTCOMES, NO_ANSWER_OUTCOMES, SERVER_FAULT_OUTCOMES } from './types.ts';
import type { ProbeSignal, RequestSignal, Signal } from './types.ts';

export interface InstanceWindowOptions {
  /** Request samples kept (ring capacity); windows longer than this many requests see only the newest. @default 8192 */
  capacity?: number;
  /** Baseline covers requests up to this long ago. @default 300000 (5 min) */
  baselineHorizonMs?: number;
  /** The most recent span left out of the baseline, so a current fault does not move it. @default 10000 */
  baselineExcludeMs?: number;
  /** Baseline granularity (it moves in steps of this). @default 1000 */
  baselineSliceMs?: number;
  /** Baseline is `undefined` (not trusted) with fewer samples than this. @default 100 */
  baselineMinSamples?: number;
}

export interface CompiledWindowOptions {
  capacity: number;
  baselineHorizonMs: number;
  baselineExcludeMs: number;
  baselineSliceMs: number;
  baselineMinSamples: number;
}

export function compileWindowOptions(opts: InstanceWindowOptions = {}): CompiledWindowOptions {
  const o: CompiledWindowOptions = {
    capacity: opts.capacity ?? 8192,
    baselineHorizonMs: opts.baselineHorizonMs ?? 300_000,
    baselineExcludeMs: opts.baselineExcludeMs ?? 10_000,
    baselineSliceMs: opts.baselineSliceMs ?? 1000,
    baselineMinSamples: opts.baselineMinSamples ?? 100,
  };
  for (const [k, v] of Object.entries(o)) {
    if (!Number.isFinite(v) || v < (k === 'baselineExcludeMs' || k === 'baselineMinSamples' ? 0 : 1)) {
      throw new Error(`window option ${k} must be a positive number (got ${String(v)})`);
    }
  }
  if (o.baselineExcludeMs >= o.baselineHorizonMs) {
    throw new Error(
      `window option baselineExcludeMs (${o.baselineExcludeMs}) must be below baselineHorizonMs (${o.baselineHorizonMs})`,
    );
  }
  return o;
}

/** cgroup throttling samples kept (~10 s at the resource source's 1 s CPU interval). */
const THROTTLE_SAMPLES = 64;

/** Longest streak whose samples are kept for `consecutive5xx` (rules may not ask for more). */
export const MAX_STREAK_SAMPLES = 1000;
const FLAG_FAULT = 1;
const FLAG_LATENCY = 2; // counts for latency (a response or a server-side timeout, not a client abort)

function pushBounded(list: RequestSample[], s: RequestSample): void {
  list.push(s);
  if (list.length > MAX_STREAK_SAMPLES) list.splice(0, list.length - MAX_STREAK_SAMPLES);
}

/** A request as returned by window queries (for evidence). */
export interface RequestSample {
  at: number;
  startedAt: number;
  status: number;
  totalMs: number;
  fault: boolean;
}

interface Slice {
  idx: number;
  hist: LatencyHistogram;
}

export class InstanceWindow {
  private readonly o: CompiledWindowOptions;
  // Request ring: sequence numbers grow forever, slot = seq % capacity.
  private readonly at: Float64Array;
  private readonly startedAt: Float64Array;
  private readonly totalMs: Float64Array;
  private readonly statusCode: Int16Array;
  private readonly flags: Uint8Array;
  /** Faults up to and including this sample (running count). */
  private readonly cumFaults: Float64Array;
  private nextSeq = 0;
  private lastRequestAt = -Infinity;

  private faultStreak = 0;
  /** The newest faults of the current streak (at most MAX_STREAK_SAMPLES). */
  private readonly streak: RequestSample[] = [];
  /** Logged connection failures (refused, timed out) in a row, and the newest of them. */
  private connectStreakCount = 0;
  /** Failures of the current connection streak that were timeouts (SYN unanswered), not refusals. */
  private connectTimeoutStreak = 0;
  private readonly connectStreak: RequestSample[] = [];
  private probeFailStreak = 0;
  /** Failures of the current probe streak that were timeouts (no answer in time). */
  private probeTimeoutStreak = 0;
  private probeFailStreakStartAt: number | undefined;

  /** Last time the instance answered well: request status < 500 or an ok probe. */
  lastSuccessAt: number | undefined;
  /** Start of the earliest unanswered demand (failed probe, timed-out request, in-flight request) since the last success. */
  unansweredSince: number | undefined;
  /** Last in-flight count seen. */
  inflight = 0;
  /** Recent cgroup throttling samples (newest last, at most THROTTLE_SAMPLES). */
  private readonly throttle: { at: number; throttled: number; periods: number }[] = [];
  /** Time of the first signal of any kind. */
  firstSeenAt: number | undefined;
  lastSignalAt: number | undefined;

  // Baseline: slices in time order; `agg` sums slices [aggLo, aggHi].
  private readonly slices: Slice[] = [];
  private readonly agg = new LatencyHistogram();
  private aggHi = -Infinity;
  private aggLo = -Infinity;
  private lastBaselineNow = -Infinity;

  // Window queries repeat every tick with few or no new samples: keep the last sorted window.
  private sortedCache: { from: number; to: number; sorted: Float64Array } | undefined;
  private scratch = new Float64Array(64);

  constructor(opts: InstanceWindowOptions | CompiledWindowOptions = {}) {
    this.o = compileWindowOptions(opts);
    const n = this.o.capacity;
    this.at = new Float64Array(n);
    this.startedAt = new Float64Array(n);
    this.totalMs = new Float64Array(n);
    this.statusCode = new Int16Array(n);
    this.flags = new Uint8Array(n);
    this.cumFaults = new Float64Array(n);
  }

  get options(): CompiledWindowOptions {
    return this.o;
  }

  /** Feed one signal. Returns the (possibly clamped) time used. */
  observe(s: Signal): number {
    if (this.firstSeenAt === undefined) this.firstSeenAt = s.at;
    this.lastSignalAt = Math.max(this.lastSignalAt ?? -Infinity, s.at);
    switch (s.type) {
      case 'request':
        return this.observeRequest(s);
      case 'probe':
        this.observeProbe(s);
        return s.at;
      case 'inflight':
        this.inflight = s.count;
        if (s.count > 0) this.demand(s.at);
        return s.at;
      case 'cpu-throttle':
        this.throttle.push({ at: s.at, throttled: s.throttledPeriods, periods: s.nrPeriods });
        if (this.throttle.length > THROTTLE_SAMPLES) this.throttle.shift();
        return s.at;
      case 'exit':
        // The process's life ended: until the next one answers, silence and failing
        // probes are a restart in progress (readiness's business), not a hang.
        this.lastSuccessAt = undefined;
        this.unansweredSince = undefined;
        this.probeFailStreak = 0;
        this.probeTimeoutStreak = 0;
        this.probeFailStreakStartAt = undefined;
        this.inflight = 0;
        return s.at;
      default:
        return s.at;
    }
  }

  private observeRequest(s: RequestSignal): number {
    const at = Math.max(s.at, this.lastRequestAt);
    this.lastRequestAt = at;
    const seq = this.nextSeq++;
    const slot = seq % this.o.capacity;
    const fault = SERVER_FAULT_OUTCOMES.has(s.outcome);
    const latency = s.outcome !== 'client-abort' && s.outcome !== 'proxy';
    this.at[slot] = at;
    this.startedAt[slot] = Math.min(s.startedAt, at);
    this.totalMs[slot] = s.totalMs;
    this.statusCode[slot] = s.status;
    this.flags[slot] = (fault ? FLAG_FAULT : 0) | (latency ? FLAG_LATENCY : 0);
    const prev = seq === 0 ? 0 : this.cumFaults[(seq - 1) % this.o.capacity]!;
    this.cumFaults[slot] = prev + (fault ? 1 : 0);
    // Streaks are made of logged requests only (see RequestSignal.inferred), and answers and
    // connections streak apart: a refused connection is not a 5xx (it belongs to a process that
    // is gone or not listening), and mixing them charged a dead predecessor's refusals to a
    // restarted process. Only an answer breaks a streak: client aborts and the proxy's own
    // decisions say nothing about the server.
    if (!s.inferred) {
      if (CONNECT_FAILURE_OUTCOMES.has(s.outcome)) {
        this.connectStreakCount++;
        if (s.outcome === 'connect-timeout') this.connectTimeoutStreak++;
        pushBounded(this.connectStreak, this.sample(seq));
      } else if (fault) {
        this.faultStreak++;
        pushBounded(this.streak, this.sample(seq));
      } else if (s.outcome === 'ok') {
        this.faultStreak = 0;
        this.streak.length = 0;
        this.connectStreakCount = 0;
        this.connectTimeoutStreak = 0;
        this.connectStreak.length = 0;
      }
    }
    if (latency) this.addToSlice(at, s.totalMs);

    if (s.outcome === 'ok') this.success(at);
    else if (NO_ANSWER_OUTCOMES.has(s.outcome)) this.demand(s.startedAt);
    return at;
  }

  private observeProbe(s: ProbeSignal): void {
    if (s.ok) {
      this.probeFailStreak = 0;
      this.probeTimeoutStreak = 0;
      this.probeFailStreakStartAt = undefined;
      this.success(s.at);
    } else {
      const start = s.at - Math.max(0, s.latencyMs);
      if (this.probeFailStreak === 0) this.probeFailStreakStartAt = start;
      this.probeFailStreak++;
      if (s.timedOut) this.probeTimeoutStreak++;
      this.demand(start);
    }
  }

  private success(at: number): void {
    this.lastSuccessAt = Math.max(this.lastSuccessAt ?? -Infinity, at);
    this.unansweredSince = undefined;
  }

  /**
   * Record unanswered demand. Ignored before the first success (an instance
   * that never answered is starting, which readiness handles, not isolation)
   * and when it began before the last success (the instance answered since).
   */
  private demand(startedAt: number): void {
    if (this.lastSuccessAt === undefined || startedAt < this.lastSuccessAt) return;
    if (this.unansweredSince === undefined || startedAt < this.unansweredSince)
      this.unansweredSince = startedAt;
  }

  // ---- request queries ----

  /** Requests kept in the ring (oldest first: seq range [oldest, nextSeq)). */
  private get oldestSeq(): number {
    return Math.max(0, this.nextSeq - this.o.capacity);
  }

  /** First seq whose time is > cutoff (nextSeq when none). */
  private firstSeqAfter(cutoff: number): number {
    let lo = this.oldestSeq;
    let hi = this.nextSeq;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.at[mid % this.o.capacity]! > cutoff) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Faults in all seqs < seq (ever, not only retained), from the running count. */
  private faultsBefore(seq: number): number {
    if (seq <= 0) return 0;
    const i = seq % this.o.capacity;
    // seq - 1 may have been overwritten when seq is the oldest retained sample: derive from seq's own count.
    if (seq === this.oldestSeq) return this.cumFaults[i]! - (this.flags[i]! & FLAG_FAULT);
    return this.cumFaults[(seq - 1) % this.o.capacity]!;
  }

  /** Requests and server faults that ended in (now - windowMs, now]. */
  requestCounts(windowMs: number, now: number): { requests: number; faults: number; firstSeq: number } {
    const from = this.firstSeqAfter(now - windowMs);
    const to = this.firstSeqAfter(now); // exclude anything stamped after `now`
    if (to <= from) return { requests: 0, faults: 0, firstSeq: from };
    const faultsTo = this.cumFaults[(to - 1) % this.o.capacity]!;
    return { requests: to - from, faults: faultsTo - this.faultsBefore(from), firstSeq: from };
  }

  /** Consecutive server-fault requests up to the newest request. */
  get consecutiveFaults(): number {
    return this.faultStreak;
  }

  /** The newest `n` faults of the current consecutive-fault streak (oldest first). */
  lastStreakFaults(n: number): RequestSample[] {
    return this.streak.slice(Math.max(0, this.streak.length - n));
  }

  /**
   * Share of CPU periods throttled by the cgroup over the samples of the last `windowMs`;
   * undefined without samples (no cgroup, or none yet).
   */
  throttledRatio(windowMs: number, now: number): number | undefined {
    let throttled = 0;
    let periods = 0;
    for (const t of this.throttle) {
      if (t.at <= now - windowMs || t.at > now) continue;
      throttled += t.throttled;
      periods += t.periods;
    }
    return periods > 0 ? throttled / periods : undefined;
  }

  /** Logged connection failures in a row (no answer from the instance between them). */
  get consecutiveConnectFailures(): number {
    return this.connectStreakCount;
  }

  /** Every connection failure of the current streak timed out: a full accept backlog, not a closed port. */
  get connectStreakOnlyTimeouts(): boolean {
    return this.connectStreakCount > 0 && this.connectTimeoutStreak === this.connectStreakCount;
  }

  /** The newest `n` connection failures of the current streak (oldest first). */
  lastConnectFailures(n: number): RequestSample[] {
    return this.connectStreak.slice(Math.max(0, this.connectStreak.length - n));
  }

  /** The newest `n` requests (oldest first), at most what the ring holds. */
  lastRequests(n: number): RequestSample[] {
    const out: RequestSample[] = [];
    const from = Math.max(this.oldestSeq, this.nextSeq - n);
    for (let seq = from; seq < this.nextSeq; seq++) out.push(this.sample(seq));
    return out;
  }

  /** Requests that ended in (now - windowMs, now], oldest first, optionally only those matching `filter`. */
  requestsIn(windowMs: number, now: number, filter?: (r: RequestSample) => boolean): RequestSample[] {
    const out: RequestSample[] = [];
    const to = this.firstSeqAfter(now);
    for (let seq = this.firstSeqAfter(now - windowMs); seq < to; seq++) {
      const r = this.sample(seq);
      if (!filter || filter(r)) out.push(r);
    }
    return out;
  }

  private sample(seq: number): RequestSample {
    const i = seq % this.o.capacity;
    return {
      at: this.at[i]!,
      startedAt: this.startedAt[i]!,
      status: this.statusCode[i]!,
      totalMs: this.totalMs[i]!,
      fault: (this.flags[i]! & FLAG_FAULT) !== 0,
    };
  }

  /**
   * Nearest-rank percentile of request latency (totalMs) over requests that
   * ended in (now - windowMs, now]; undefined with fewer than `minSamples`.
   */
  latencyPercentile(p: number, windowMs: number, now: number, minSamples = 1): number | undefined {
    const from = this.firstSeqAfter(now - windowMs);
    const to = this.firstSeqAfter(now);
    let c = this.sortedCache;
    if (!c || c.from !== from || c.to !== to) {
      if (this.scratch.length < to - from)
        this.scratch = new Float64Array(Math.max(to - from, this.scratch.length * 2));
      let n = 0;
      for (let seq = from; seq < to; seq++) {
        const i = seq % this.o.capacity;
        if (this.flags[i]! & FLAG_LATENCY) this.scratch[n++] = this.totalMs[i]!;
      }
      // TypedArray sort is numeric. Cached sorted, so rules asking different percentiles share it.
      c = this.sortedCache = { from, to, sorted: this.scratch.subarray(0, n).sort() };
    }
    const n = c.sorted.length;
    if (n === 0 || n < minSamples) return undefined;
    return c.sorted[Math.max(1, Math.ceil((p / 100) * n)) - 1];
  }

  // ---- baseline ----

  private addToSlice(at: number, ms: number): void {
    const idx = Math.floor(at / this.o.baselineSliceMs);
    let last = this.slices[this.slices.length - 1];
    if (!last || last.idx !== idx) {
      last = { idx, hist: new LatencyHistogram() };
      this.slices.push(last);
    }
    last.hist.add(ms);
    // A sample landing in a slice already folded into the aggregate (clamped time) is added there too.
    if (idx <= this.aggHi && idx >= this.aggLo) this.agg.add(ms);
  }

  /**
   * The instance's own latency percentile `p` over [now - horizon, now - exclude],
   * or undefined while it has fewer than `baselineMinSamples` samples there.
   */
  baseline(p: number, now: number): { valueMs: number; samples: number } | undefined {
    this.advanceBaseline(now);
    if (this.agg.total < this.o.baselineMinSamples || this.agg.total === 0) return undefined;
    const v = this.agg.percentile(p);
    return v === undefined ? undefined : { valueMs: v, samples: this.agg.total };
  }

  private advanceBaseline(now: number): void {
    const slice = this.o.baselineSliceMs;
    if (now < this.lastBaselineNow) {
      // Time went backwards (a test or a clock step): rebuild from the kept slices.
      this.agg.clear();
      this.aggHi = -Infinity;
      this.aggLo = -Infinity;
    }
    this.lastBaselineNow = now;
    const hi = Math.floor((now - this.o.baselineExcludeMs) / slice) - 1;
    const lo = Math.ceil((now - this.o.baselineHorizonMs) / slice);
    // Evaluated every tick, but the covered slices change only once per slice.
    if (hi === this.aggHi && lo === this.aggLo) return;
    for (const s of this.slices) {
      if (s.idx > this.aggHi && s.idx <= hi && s.idx >= lo) this.agg.merge(s.hist, 1);
      else if (s.idx >= this.aggLo && s.idx <= this.aggHi && s.idx < lo) this.agg.merge(s.hist, -1);
      if (s.idx > hi) break;
    }
    this.aggHi = Math.max(this.aggHi, hi);
    this.aggLo = lo;
    // Slices older than the horizon are no longer needed.
    let drop = 0;
    while (drop < this.slices.length && this.slices[drop]!.idx < lo) drop++;
    if (drop > 0) this.slices.splice(0, drop);
  }

  // ---- probes and answers ----

  get consecutiveProbeFailures(): number {
    return this.probeFailStreak;
  }

  /** Every probe of the current failure streak got no answer in time: slow, not refusing or failing. */
  get probeStreakOnlyTimeouts(): boolean {
    return this.probeFailStreak > 0 && this.probeTimeoutStreak === this.probeFailStreak;
  }

  /** When the first probe of the current failure streak was sent. */
  get probeFailuresSince(): number | undefined {
    return this.probeFailStreakStartAt;
  }

  /** Ms since the last success at `now`; undefined when there never was one. */
  sinceLastSuccessMs(now: number): number | undefined {
    return this.lastSuccessAt === undefined ? undefined : now - this.lastSuccessAt;
  }

  status(): {
    requests: number;
    consecutiveFaults: number;
    consecutiveProbeFailures: number;
    baselineSamples: number;
  } {
    return {
      requests: Math.min(this.nextSeq, this.o.capacity),
      consecutiveFaults: this.faultStreak,
      consecutiveProbeFailures: this.probeFailStreak,
      baselineSamples: this.agg.total,
    };
  }
}
