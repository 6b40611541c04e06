/**
 * The normalised per-instance signal stream that fault signatures are matched
 * against. Every source (HAProxy request log, active probes, the runtime
 * driver, cgroup sampling, stdout/stderr) is turned into one of these plain
 * objects so the signature engine never knows where a fact came from.
 *
 * All times are epoch milliseconds. Signals of one instance are expected in
 * non-decreasing `at` order (the engine tolerates a few ms of disorder, see
 * `window.ts`).
 */

/**
 * What happened to one proxied request, derived from the HAProxy termination
 * state (first two characters) and the status code. See HAProxy
 * configuration manual, section "Session state at disconnection".
 */
export type RequestOutcome =
  /** Normal termination, status < 500. */
  | 'ok'
  /** Normal termination, the server answered 5xx. */
  | 'http-5xx'
  /** `SC`: the server refused the connection (RST / ICMP unreachable). */
  | 'connect-refused'
  /** `sC`: `timeout connect` struck before the connection was established. */
  | 'connect-timeout'
  /** `SH`, `SD`: the server aborted before its full headers or during data (crash, RST). */
  | 'server-aborted'
  /** `sH`, `sD`: `timeout server` struck waiting for headers or data (hang, saturation). */
  | 'server-timeout'
  /** `sQ`: expired in the queue waiting for a connection slot on the server. */
  | 'queue-timeout'
  /** `PH`, `PD`: the proxy blocked an invalid response from the server (a 502). */
  | 'bad-response'
  /** `C*`, `c*`: the client aborted or timed out; not the server's fault. */
  | 'client-abort'
  /** `CH`, `cH`: the client gave up while waiting for the server's headers. Not counted as a
   * server failure, but a hint of slowness. */
  | 'client-abort-waiting'
  /** `P*` (other than PH/PD), `R*`, `I*`, `D*`, `U*`, `K*`, `L*`: decided by the proxy itself. */
  | 'proxy';

/** Outcomes where the connection to the instance was never made: a streak of their own (`connectFailures`). */
export const CONNECT_FAILURE_OUTCOMES: ReadonlySet<RequestOutcome> = new Set<RequestOutcome>([
  'connect-refused',
  'connect-timeout',
]);

/** Outcomes that count against the instance (it failed to answer correctly). */
export const SERVER_FAULT_OUTCOMES: ReadonlySet<RequestOutcome> = new Set<RequestOutcome>([
  'http-5xx',
  'connect-refused',
  'connect-timeout',
  'server-aborted',
  'server-timeout',
  'queue-timeout',
  'bad-response',
]);

/** Outcomes where the server never produced an answer at all (used by `noResponse`). */
export const NO_ANSWER_OUTCOMES: ReadonlySet<RequestOutcome> = new Set<RequestOutcome>([
  'connect-refused',
  'connect-timeout',
  'server-aborted',
  'server-timeout',
  'queue-timeout',
  'client-abort-waiting',
]);

export interface RequestSignal {
  type: 'request';
  /** When the request ended (HAProxy `%tr` + `Ta`). */
  at: number;
  /** When HAProxy received the request (`%tr`). */
  startedAt: number;
  method: string;
  /** HTTP status as logged; -1 when none was sent. */
  status: number;
  /** `Ta`: total active time of the request, ms. */
  totalMs: number;
  /** `Tr`: time the server took to send its headers, -1 when it never did. */
  serverMs: number;
  /** Connection retries HAProxy made. */
  retries: number;
  /** Raw HAProxy termination state, e.g. `----`, `sH--`. */
  terminationState: string;
  outcome: RequestOutcome;
  /**
   * Not a log line: a failed attempt inferred from the gateway's per-server counters
   * (`ServerStatsSource`), whose kind and moment are estimates. Inferred failures count in
   * rates (`errorRate`) but never in streaks: a poll delivers them in a bunch, with none of
   * the successes that happened between them, so three of them "in a row" says nothing.
   */
  inferred?: boolean;
}

export interface ProbeSignal {
  type: 'probe';
  /** When the probe result was known. */
  at: number;
  ok: boolean;
  latencyMs: number;
  error?: string;
  /** The probe failed by getting no answer in time (not a refusal or a bad status). */
  timedOut?: boolean;
}

export type ExitSignalReason = 'exited' | 'signaled' | 'oom-killed' | 'liveness-failed' | 'start-failed';

export interface ExitSignal {
  type: 'exit';
  at: number;
  reason: ExitSignalReason;
  code: number | null;
  signal: string | null;
}

/** The process was seen in state T (stopped, e.g. SIGSTOP) or t (traced). */
export interface StoppedSignal {
  type: 'stopped';
  at: number;
  /** `T` stopped by a signal, `t` stopped by a tracer. @default 'T' */
  state?: 'T' | 't';
}

export interface MemorySignal {
  type: 'memory';
  at: number;
  usageBytes: number;
  /** cgroup `memory.max`; Infinity or 0 when unlimited. */
  limitBytes: number;
}

/** Deltas of cgroup `cpu.stat` since the previous sample. */
export interface CpuThrottleSignal {
  type: 'cpu-throttle';
  at: number;
  throttledPeriods: number;
  nrPeriods: number;
}

export type LogStream = 'stdout' | 'stderr';

/** One log event: a single line, or a whole multi-line stack trace (see `LogLineAssembler`). */
export interface LogSignal {
  type: 'log';
  /** Time of the first line. */
  at: number;
  stream: LogStream;
  lines: string[];
}

export interface RestartSignal {
  type: 'restart';
  at: number;
  /** Total restarts of the instance so far, as the runtime reports it. */
  count: number;
}

/**
 * Requests currently in flight on the instance (HAProxy `scur` of the server),
 * sampled periodically. HAProxy logs a request only when it ends, so this is
 * the only view of requests that a hung instance never answers.
 */
export interface InflightSignal {
  type: 'inflight';
  at: number;
  count: number;
}

export type Signal =
  | RequestSignal
  | ProbeSignal
  | ExitSignal
  | StoppedSignal
  | MemorySignal
  | CpuThrottleSignal
  | LogSignal
  | RestartSignal
  | InflightSignal;

export type SignalType = Signal['type'];
