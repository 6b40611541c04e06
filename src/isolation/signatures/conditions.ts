/**
 * One evaluator per condition kind. A compiled condition says which signal
 * types wake it (`signals`, checked synchronously on observe) and whether it
 * also needs the clock (`timed`, checked on every `evaluate(now)` because its
 * truth changes with time passing, e.g. "no response for 1 s").
 *
 * Per-instance mutable state of a condition (hold timers, restart times)
 * lives in the object `newState()` returns; the shared request/probe history
 * lives in the instance's `InstanceWindow`.
 */
import type { InstanceWindow, RequestSample } from '../signals/window.ts';
import type { Signal, SignalType } from '../signals/types.ts';
import type { Condition, ConditionKind } from './types.ts';

export interface Detection {
  onsetAt: number;
  evidence: string;
}

export interface CompiledCondition {
  kind: ConditionKind;
  /** Signal types that can make the condition true on arrival. */
  signals: readonly SignalType[];
  /** True when the condition must also be checked as time passes. */
  timed: boolean;
  newState(): unknown;
  check(win: InstanceWindow, state: unknown, now: number, signal?: Signal): Detection | undefined;
}

const ms = (v: number): string => `${Math.round(v)} ms`;
const pct = (r: number): string => `${(r * 100).toFixed(r < 0.1 ? 1 : 0)}%`;
const statusText = (r: RequestSample): string => (r.status > 0 ? String(r.status) : 'no status');
const mib = (b: number): string => `${(b / 1048576).toFixed(0)} MiB`;

/** Tracks a ratio that must stay above a threshold across samples for `forMs`. */
interface HoldState {
  since: number | undefined;
  last: number;
  detail: string;
}

function holdCheck(
  state: HoldState,
  forMs: number,
  now: number,
  sample: { at: number; value: number | undefined; detail: string } | undefined,
  above: number,
): boolean {
  if (sample) {
    if (sample.value !== undefined && sample.value > above) {
      if (state.since === undefined) state.since = sample.at;
      state.last = sample.value;
      state.detail = sample.detail;
    } else {
      state.since = undefined;
    }
  }
  return state.since !== undefined && now - state.since >= forMs;
}

/**
 * Memory samples of the last 2 x `windowMs`, oldest first (parallel arrays;
 * `head` skips expired ones): the line is fitted through the last `windowMs`,
 * the onset is looked for in all of them, so a leak that began just before
 * the fitted window is dated from its real start.
 */
interface TrendState {
  at: number[];
  usage: number[];
  head: number;
}

/** Least-squares line of usage over time: slope in bytes per ms and R²; undefined when all samples share one time. */
function fitLine(
  at: readonly number[],
  usage: readonly number[],
  from: number,
): { slope: number; r2: number } | undefined {
  const n = at.length - from;
  let mt = 0;
  let mu = 0;
  for (let i = from; i < at.length; i++) {
    mt += at[i]!;
    mu += usage[i]!;
  }
  mt /= n;
  mu /= n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (let i = from; i < at.length; i++) {
    const dt = at[i]! - mt;
    const du = usage[i]! - mu;
    sxx += dt * dt;
    sxy += dt * du;
    syy += du * du;
  }
  if (!(sxx > 0)) return undefined;
  // Flat memory fits "perfectly" but has no trend: R² 0 keeps it from passing a minR2 check.
  return { slope: sxy / sxx, r2: syy > 0 ? (sxy * sxy) / (sxx * syy) : 0 };
}

/** Sustained growth is checked in this many consecutive parts of the window. */
const RISE_PARTS = 4;
/** ... and the samples must span at least this share of the window. */
const MIN_COVER = 0.75;

/**
 * Growth that is sustained, not a step: the fitted rise across the window is
 * at least `minRise`, and each quarter of the window (its first to its last
 * sample) rises by at least an eighth of that on its own. A one-off buffer
 * (a jump between two samples), a warm-up that levels off, or growth that
 * starts late in the window leaves a quarter flat; a leak rises in all four.
 */
function sustainedRise(
  at: readonly number[],
  usage: readonly number[],
  from: number,
  minRise: number,
  rise: number,
  windowMs: number,
): boolean {
  if (rise < minRise) return false;
  const t0 = at[from]!;
  const span = at[at.length - 1]! - t0;
  // A window only partly covered (a new process, a sampling gap) cannot show growth sustained across it.
  if (span < windowMs * MIN_COVER) return false;
  let i = from;
  for (let part = 1; part <= RISE_PARTS; part++) {
    const end = part === RISE_PARTS ? Infinity : t0 + (span * part) / RISE_PARTS;
    const first = i;
    while (i < at.length && at[i]! < end) i++;
    // A part without two samples (a sampling gap) cannot show growth on its own: no verdict from it.
    if (i - first < 2) continue;
    if (usage[i - 1]! - usage[first]! < minRise / (2 * RISE_PARTS)) return false;
  }
  return true;
}

/** The largest fall from an earlier sample of the window to a later one (max drawdown), bytes. */
function largestDip(usage: readonly number[], from: number): number {
  let peak = -Infinity;
  let dip = 0;
  for (let i = from; i < usage.length; i++) {
    peak = Math.max(peak, usage[i]!);
    dip = Math.max(dip, peak - usage[i]!);
  }
  return dip;
}

/**
 * Where the growth started: the last sample still at the low point of the
 * kept samples (within a tenth of the rise, so noise before a leak does not
 * pull the onset back). The leak began after it; erring early keeps
 * detection latency honest.
 */
function growthOnset(at: readonly number[], usage: readonly number[], from: number): number {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = from; i < usage.length; i++) {
    lo = Math.min(lo, usage[i]!);
    hi = Math.max(hi, usage[i]!);
  }
  const floor = lo + (hi - lo) / 10;
  let onset = at[from]!;
  for (let i = from; i < usage.length; i++) if (usage[i]! <= floor) onset = at[i]!;
  return onset;
}

/**
 * `count` in a row whose first and last are at most `withinMs` apart, checked on each request:
 * the 5xx-answer streak and the connection-failure streak differ only in which streak of the
 * window they read and how they explain a match.
 */
function streakCondition(
  kind: ConditionKind,
  count: number,
  withinMs: number,
  streak: (win: InstanceWindow) => [length: number, newest: RequestSample[]],
  explain: (spanMs: number, last: RequestSample[]) => string,
): CompiledCondition {
  return {
    kind,
    signals: ['request'],
    timed: false,
    newState: () => undefined,
    check(win) {
      const [length, last] = streak(win);
      if (length < count || last.length < count) return undefined;
      const span = last[last.length - 1]!.at - last[0]!.at;
      if (span > withinMs) return undefined;
      return { onsetAt: last[0]!.startedAt, evidence: explain(span, last) };
    },
  };
}

export function compileCondition(when: Condition): CompiledCondition {
  if ('consecutive5xx' in when) {
    const { count, withinMs } = when.consecutive5xx;
    return streakCondition(
      'consecutive5xx',
      count,
      withinMs,
      (win) => [win.consecutiveFaults, win.lastStreakFaults(count)],
      (span, last) =>
        `${count} consecutive 5xx within ${ms(span)} (${last.map(statusText).join(', ')}); rule: ${count} within ${ms(withinMs)}`,
    );
  }
  if ('connectFailures' in when) {
    const { count, withinMs } = when.connectFailures;
    return streakCondition(
      'connectFailures',
      count,
      withinMs,
      (win) => [win.consecutiveConnectFailures, win.lastConnectFailures(count)],
      (span) =>
        `${count} connection failures in a row within ${ms(span)} (refused or timed out, no answer between them); rule: ${count} within ${ms(withinMs)}`,
    );
  }
  if ('errorRate' in when) {
    const { above, windowMs, minRequests } = when.errorRate;
    return {
      kind: 'errorRate',
      signals: ['request'],
      timed: true,
      newState: () => undefined,
      check(win, _s, now) {
        const c = win.requestCounts(windowMs, now);
        if (c.requests < minRequests || c.faults / c.requests <= above) return undefined;
        const first = win.requestsIn(windowMs, now, (r) => r.fault)[0];
        return {
          onsetAt: first?.startedAt ?? now,
          evidence: `error rate ${pct(c.faults / c.requests)} (${c.faults} of ${c.requests} requests in the last ${ms(windowMs)}) above ${pct(above)}`,
        };
      },
    };
  }
  if ('latency' in when) {
    const { percentile: p, aboveBaselineFactor: factor, aboveMs, forMs } = when.latency;
    const windowMs = when.latency.windowMs ?? 1000;
    const minRequests = when.latency.minRequests ?? 5;
    return {
      kind: 'latency',
      signals: [],
      timed: true,
      newState: (): { since: number | undefined; onset: number } => ({ since: undefined, onset: 0 }),
      check(win, raw, now) {
        const st = raw as { since: number | undefined; onset: number };
        const v = win.latencyPercentile(p, windowMs, now, minRequests);
        let threshold = aboveMs ?? 0;
        let why = aboveMs !== undefined ? `${ms(aboveMs)}` : '';
        if (factor !== undefined) {
          const b = win.baseline(p, now);
          if (!b) {
            st.since = undefined; // no trusted baseline yet: cannot say "slower than usual"
            return undefined;
          }
          const t = factor * b.valueMs;
          const baseWhy = `${factor}x baseline p${p} ${ms(b.valueMs)} (${b.samples} samples) = ${ms(t)}`;
          why = aboveMs !== undefined && aboveMs > t ? `${ms(aboveMs)} (floor; ${baseWhy})` : baseWhy;
          threshold = Math.max(threshold, t);
        }
        if (v === undefined || v <= threshold) {
          st.since = undefined;
          return undefined;
        }
        if (st.since === undefined) {
          st.since = now;
          const slow = win.requestsIn(windowMs, now, (r) => r.totalMs > threshold)[0];
          st.onset = slow?.startedAt ?? now;
        }
        const heldMs = now - st.since;
        if (heldMs < forMs) return undefined;
        return {
          onsetAt: st.onset,
          evidence: `p${p} latency ${ms(v)} over the last ${ms(windowMs)} above ${why} for ${ms(heldMs)}`,
        };
      },
    };
  }
  if ('noResponse' in when) {
    const { forMs } = when.noResponse;
    return {
      kind: 'noResponse',
      signals: ['request', 'probe', 'inflight'],
      timed: true,
      newState: () => undefined,
      check(win, _s, now) {
        const since = win.unansweredSince;
        if (since === undefined || now - since < forMs) return undefined;
        const parts: string[] = [];
        const last = win.sinceLastSuccessMs(now);
        if (last !== undefined) parts.push(`last success ${ms(last)} ago`);
        if (win.consecutiveProbeFailures > 0)
          parts.push(`${win.consecutiveProbeFailures} failed probes in a row`);
        if (win.inflight > 0) parts.push(`${win.inflight} requests in flight`);
        return {
          onsetAt: since,
          evidence: `no successful response for ${ms(now - since)} while requests or probes waited (${parts.join('; ')})`,
        };
      },
    };
  }
  if ('probeFailures' in when) {
    const { consecutive } = when.probeFailures;
    return {
      kind: 'probeFailures',
      signals: ['probe'],
      timed: false,
      newState: () => undefined,
      check(win, _s, now, signal) {
        if (win.consecutiveProbeFailures < consecutive) return undefined;
        const since = win.probeFailuresSince ?? now;
        const err = signal?.type === 'probe' && signal.error ? `; last error: ${signal.error}` : '';
        return {
          onsetAt: since,
          evidence: `${win.consecutiveProbeFailures} consecutive failed probes over ${ms(now - since)}${err}`,
        };
      },
    };
  }
  if ('exited' in when) {
    const reasons = when.exited.reasons ? new Set<string>(when.exited.reasons) : undefined;
    return {
      kind: 'exited',
      signals: ['exit'],
      timed: false,
      newState: () => undefined,
      check(_w, _s, _now, signal) {
        if (signal?.type !== 'exit' || (reasons && !reasons.has(signal.reason))) return undefined;
        const how =
          signal.reason === 'signaled'
            ? `killed by ${signal.signal ?? 'a signal'}`
            : signal.reason === 'oom-killed'
              ? 'OOM-killed by the kernel'
              : signal.reason === 'liveness-failed'
                ? 'stopped after failing its liveness probe'
                : `exited with code ${signal.code ?? 'unknown'}`;
        return { onsetAt: signal.at, evidence: `process ${how}` };
      },
    };
  }
  if ('stopped' in when) {
    return {
      kind: 'stopped',
      signals: ['stopped'],
      timed: false,
      newState: () => undefined,
      check(_w, _s, _now, signal) {
        if (signal?.type !== 'stopped') return undefined;
        const st = signal.state ?? 'T';
        return {
          onsetAt: signal.at,
          evidence: `process in state ${st} (${st === 'T' ? 'stopped by a signal, e.g. SIGSTOP' : 'stopped by a tracer'})`,
        };
      },
    };
  }
  if ('logPattern' in when) {
    const { regex, flags, stream = 'both' } = when.logPattern;
    const re = new RegExp(regex, flags ?? '');
    return {
      kind: 'logPattern',
      signals: ['log'],
      timed: false,
      newState: () => undefined,
      check(_w, _s, _now, signal) {
        if (signal?.type !== 'log' || (stream !== 'both' && signal.stream !== stream)) return undefined;
        const text = signal.lines.join('\n');
        const m = re.exec(text);
        if (!m) return undefined;
        // Quote the line holding the match, not a 200-line trace.
        const lineNo = text.slice(0, m.index).split('\n').length - 1;
        let line = signal.lines[lineNo] ?? '';
        if (line.length > 200) line = `${line.slice(0, 200)}...`;
        const more = signal.lines.length > 1 ? ` (+${signal.lines.length - 1} more lines)` : '';
        return {
          onsetAt: signal.at,
          evidence: `${signal.stream} matched /${regex}/${flags ?? ''}: "${line}"${more}`,
        };
      },
    };
  }
  if ('memoryNearLimit' in when) {
    const { aboveRatio, forMs } = when.memoryNearLimit;
    return {
      kind: 'memoryNearLimit',
      signals: ['memory'],
      timed: true,
      newState: (): HoldState => ({ since: undefined, last: 0, detail: '' }),
      check(_w, raw, now, signal) {
        const st = raw as HoldState;
        const sample =
          signal?.type === 'memory'
            ? {
                at: signal.at,
                // An unlimited cgroup (0 or Infinity) can never be near its limit.
                value:
                  signal.limitBytes > 0 && Number.isFinite(signal.limitBytes)
                    ? signal.usageBytes / signal.limitBytes
                    : undefined,
                detail: `${mib(signal.usageBytes)} of ${mib(signal.limitBytes)}`,
              }
            : undefined;
        if (!holdCheck(st, forMs, now, sample, aboveRatio)) return undefined;
        return {
          onsetAt: st.since!,
          evidence: `memory at ${pct(st.last)} of its limit (${st.detail}) for ${ms(now - st.since!)}, above ${pct(aboveRatio)}`,
        };
      },
    };
  }
  if ('memoryTrend' in when) {
    const { reachLimitWithinMs, aboveRatio, minR2, minRiseRatio, maxDipRatio } = when.memoryTrend;
    const windowMs = when.memoryTrend.windowMs ?? 1000;
    const minSamples = when.memoryTrend.minSamples ?? 3;
    const guards = [
      minR2 !== undefined ? `R² >= ${minR2}` : '',
      minRiseRatio !== undefined ? `rise >= ${pct(minRiseRatio)}` : '',
      maxDipRatio !== undefined ? `no dip > ${pct(maxDipRatio)}` : '',
    ].filter(Boolean);
    const ruleText = `rule: above ${pct(aboveRatio)} and within ${ms(reachLimitWithinMs)}${guards.length > 0 ? `, ${guards.join(', ')}` : ''}`;
    return {
      kind: 'memoryTrend',
      // A trend changes only with a new sample, so there is nothing to check between samples.
      signals: ['memory'],
      timed: false,
      newState: (): TrendState => ({ at: [], usage: [], head: 0 }),
      check(_w, raw, _now, signal) {
        if (signal?.type !== 'memory') return undefined;
        const st = raw as TrendState;
        const limit = signal.limitBytes;
        if (!(limit > 0) || !Number.isFinite(limit)) {
          // Unlimited: no OOM kill to race, and a later limit must not fit through these samples.
          st.at.length = st.usage.length = st.head = 0;
          return undefined;
        }
        const at = Math.max(signal.at, st.at[st.at.length - 1] ?? -Infinity);
        st.at.push(at);
        st.usage.push(signal.usageBytes);
        while (st.at[st.head]! < at - 2 * windowMs) st.head++;
        if (st.head > 64 && st.head * 2 > st.at.length) {
          st.at.splice(0, st.head);
          st.usage.splice(0, st.head);
          st.head = 0;
        }
        let from = st.head;
        while (st.at[from]! < at - windowMs) from++;
        const n = st.at.length - from;
        const usage = signal.usageBytes;
        if (n < minSamples || usage / limit <= aboveRatio) return undefined;
        const fit = fitLine(st.at, st.usage, from);
        if (fit === undefined || fit.slope <= 0) return undefined;
        const { slope, r2 } = fit;
        const projectedMs = Math.max(0, (limit - usage) / slope);
        if (projectedMs > reachLimitWithinMs) return undefined;
        // The guards, cheapest first: each rejects one kind of growth that is not a leak.
        if (minR2 !== undefined && r2 < minR2) return undefined;
        const rise = slope * (at - st.at[from]!);
        if (
          minRiseRatio !== undefined &&
          !sustainedRise(st.at, st.usage, from, minRiseRatio * limit, rise, windowMs)
        )
          return undefined;
        if (maxDipRatio !== undefined && largestDip(st.usage, from) > maxDipRatio * limit) return undefined;
        const mibPerS = (slope * 1000) / 1048576;
        const fitText = guards.length > 0 ? `, R² ${r2.toFixed(2)}, rise ${mib(rise)}` : '';
        return {
          onsetAt: growthOnset(st.at, st.usage, st.head),
          evidence: `memory ${mib(usage)} of its ${mib(limit)} limit (${pct(usage / limit)}) growing ${mibPerS.toFixed(1)} MiB/s over the last ${ms(windowMs)} (${n} samples${fitText}): projected to reach the limit in ${ms(projectedMs)}; ${ruleText}`,
        };
      },
    };
  }
  if ('cpuThrottled' in when) {
    const { aboveRatio, forMs } = when.cpuThrottled;
    return {
      kind: 'cpuThrottled',
      signals: ['cpu-throttle'],
      timed: true,
      newState: (): HoldState => ({ since: undefined, last: 0, detail: '' }),
      check(_w, raw, now, signal) {
        const st = raw as HoldState;
        const sample =
          signal?.type === 'cpu-throttle'
            ? {
                at: signal.at,
                value: signal.nrPeriods > 0 ? signal.throttledPeriods / signal.nrPeriods : undefined,
                detail: `${signal.throttledPeriods} of ${signal.nrPeriods} periods`,
              }
            : undefined;
        if (!holdCheck(st, forMs, now, sample, aboveRatio)) return undefined;
        return {
          onsetAt: st.since!,
          evidence: `CPU throttled in ${pct(st.last)} of periods (${st.detail}) for ${ms(now - st.since!)}, above ${pct(aboveRatio)}`,
        };
      },
    };
  }
  if ('restartLoop' in when) {
    const { restarts, withinMs } = when.restartLoop;
    return {
      kind: 'restartLoop',
      signals: ['restart'],
      timed: false,
      newState: (): { times: number[]; lastCount: number | undefined } => ({
        times: [],
        lastCount: undefined,
      }),
      check(_w, raw, _now, signal) {
        if (signal?.type !== 'restart') return undefined;
        const st = raw as { times: number[]; lastCount: number | undefined };
        // The runtime reports a running total; a jump of k means k restarts since the last report.
        const delta = st.lastCount === undefined ? 1 : Math.max(0, signal.count - st.lastCount);
        st.lastCount = signal.count;
        for (let i = 0; i < delta; i++) st.times.push(signal.at);
        while (st.times.length > 0 && st.times[0]! < signal.at - withinMs) st.times.shift();
        if (st.times.length < restarts) return undefined;
        return {
          onsetAt: st.times[0]!,
          evidence: `${st.times.length} restarts within ${ms(signal.at - st.times[0]!)} (restart count now ${signal.count}); rule: ${restarts} within ${ms(withinMs)}`,
        };
      },
    };
  }
  const kind = Object.keys(when as object)[0] ?? '(none)';
  throw new Error(`unknown signature condition '${kind}'`);
}
