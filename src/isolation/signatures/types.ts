/**
 * Fault signatures: declarative rules over an instance's signal windows. This
 * is also the shape users write under `spec.isolation.signatures` in an App
 * manifest (see `schema.ts` and docs/isolation-signatures.md).
 */
import type { ExitSignalReason, LogStream } from '../signals/types.ts';

// Declared with the incident records they end up in (src/model), which the store keeps.
import type { Action, Severity } from '../../model/incidents.ts';
export type { Action, Severity };

/**
 * N logged server-fault answers in a row (5xx, aborted or timed-out responses, invalid
 * responses), all within `withinMs`. Connection failures streak apart (`connectFailures`), and
 * failures inferred from the gateway's counters never streak (they count in `errorRate`).
 */
export interface Consecutive5xxCondition {
  consecutive5xx: { count: number; withinMs: number };
}

/** N logged connection failures in a row (refused or timed out: nothing listening, or the backlog full), all within `withinMs`. */
export interface ConnectFailuresCondition {
  connectFailures: { count: number; withinMs: number };
}

/** Fraction of server-fault requests among requests that ended in the last `windowMs`. */
export interface ErrorRateCondition {
  errorRate: { above: number; windowMs: number; minRequests: number };
}

export type LatencyPercentile = 50 | 90 | 99;

/**
 * A latency percentile over the last `windowMs` stays above the threshold for
 * `forMs`. Threshold: `aboveBaselineFactor` x the instance's own baseline of
 * the same percentile and/or `aboveMs`; with both, both must be exceeded
 * (`aboveMs` is then a floor that keeps very fast services from firing on jitter).
 */
export interface LatencyCondition {
  latency: {
    percentile: LatencyPercentile;
    aboveBaselineFactor?: number;
    aboveMs?: number;
    forMs: number;
    /** Window the percentile is computed over. @default 1000 */
    windowMs?: number;
    /** Requests needed in the window for the percentile to count. @default 5 */
    minRequests?: number;
  };
}

/** No successful response (request < 500 or ok probe) for `forMs` while there was demand (failed probes, timed-out or in-flight requests). */
export interface NoResponseCondition {
  noResponse: { forMs: number };
}

export interface ProbeFailuresCondition {
  probeFailures: { consecutive: number };
}

export interface ExitedCondition {
  /** Any exit, or only these reasons. */
  exited: { reasons?: ExitSignalReason[] };
}

export interface StoppedCondition {
  stopped: Record<string, never>;
}

export interface LogPatternCondition {
  logPattern: {
    /** JavaScript regular expression source, tested against the whole event (stack trace lines joined with "\n"). */
    regex: string;
    /** RegExp flags among `i`, `m`, `s`, `u`. */
    flags?: string;
    /** @default 'both' */
    stream?: LogStream | 'both';
  };
}

export interface MemoryNearLimitCondition {
  memoryNearLimit: { aboveRatio: number; forMs: number };
}

/**
 * A leak about to hit the cgroup limit: usage is above `aboveRatio` of the
 * limit AND a least-squares line through the memory samples of the last
 * `windowMs` reaches the limit within `reachLimitWithinMs`. Fires earlier than
 * `memoryNearLimit` for a fast leak (which an OOM kill would otherwise end
 * before a hold timer runs out) and later, but still alive, for a slow one.
 */
export interface MemoryTrendCondition {
  memoryTrend: {
    /** Fires when the fitted growth reaches the limit within this many ms of the newest sample. */
    reachLimitWithinMs: number;
    /** Usage / limit must also be above this (0..1), so a young process filling its heap does not count. */
    aboveRatio: number;
    /** Samples the line is fitted through: those of the last `windowMs`. @default 1000 */
    windowMs?: number;
    /** Samples needed in the window before a trend counts (at least 2). @default 3 */
    minSamples?: number;
    /**
     * Goodness of fit (R², 0..1) the line must reach: growth that is steady,
     * not a step (a one-off buffer) or a sawtooth the line happens to cross. @default none
     */
    minR2?: number;
    /** The fitted rise across the window must be at least this fraction of the limit (0..1). @default none */
    minRiseRatio?: number;
    /**
     * Sustained growth: no sample in the window may lie more than this fraction of the
     * limit (0..1) below an earlier one (a GC that frees memory ends the trend). @default none
     */
    maxDipRatio?: number;
  };
}

export interface CpuThrottledCondition {
  cpuThrottled: { aboveRatio: number; forMs: number };
}

export interface RestartLoopCondition {
  restartLoop: { restarts: number; withinMs: number };
}

export type Condition =
  | Consecutive5xxCondition
  | ErrorRateCondition
  | LatencyCondition
  | NoResponseCondition
  | ProbeFailuresCondition
  | ConnectFailuresCondition
  | ExitedCondition
  | StoppedCondition
  | LogPatternCondition
  | MemoryNearLimitCondition
  | MemoryTrendCondition
  | CpuThrottledCondition
  | RestartLoopCondition;

/** Every condition key, in documentation order. */
export const CONDITION_KINDS = [
  'consecutive5xx',
  'connectFailures',
  'errorRate',
  'latency',
  'noResponse',
  'probeFailures',
  'exited',
  'stopped',
  'logPattern',
  'memoryNearLimit',
  'memoryTrend',
  'cpuThrottled',
  'restartLoop',
] as const;
export type ConditionKind = (typeof CONDITION_KINDS)[number];

export interface Rule {
  /** Stable identifier; per-app rules replace built-ins of the same name. DNS-label-like. */
  name: string;
  description?: string;
  when: Condition;
  severity: Severity;
  action: Action;
  /** `false` disables a rule (typically a built-in, by name). @default true */
  enabled?: boolean;
}

/** What users may write: a full rule, or `{ name, enabled: false }` to switch a built-in off. */
export type RuleInput = Rule | { name: string; enabled: false };

export interface Match {
  instanceId: string;
  rule: string;
  severity: Severity;
  action: Action;
  /** When the engine saw the condition hold (ms). */
  detectedAt: number;
  /** Best estimate of fault onset: the first bad signal in the window (ms). */
  onsetAt: number;
  /** Human-readable explanation with the numbers. */
  evidence: string;
  /**
   * The condition says the instance answers nothing at all (`noResponse`, `stopped`): the
   * requests it already holds will not be answered either, so isolation hands them back to
   * the gateway for a retry elsewhere instead of letting them run into the server timeout.
   */
  unresponsive: boolean;
  /** The rule's condition kind (`latency`, `consecutive5xx`, ...), for the shared-cause checks. */
  condition: string;
}
