/**
 * The seam between where facts about an instance come from (HAProxy, /proc,
 * the runtime driver, active probes) and the signature engine. Every source
 * does one job, shares this interface, and delivers plain `Signal`s (or raw
 * log lines) to a `SignalSink`; none of them knows the engine.
 *
 * Instance id == HAProxy server name == RuntimeDriver instance id.
 */
import type { InstanceStatus } from '../../runtime/driver.ts';
import type { LogStream, Signal } from '../signals/types.ts';

export interface SignalSink {
  /** One normalised signal of an instance (times in epoch ms). */
  signal(instanceId: string, s: Signal): void;
  /** One raw stdout/stderr line; the engine groups stack traces itself (`observeLogLine`). */
  logLine(instanceId: string, stream: LogStream, line: string, at: number): void;
}

/**
 * The instances to watch, as the caller decides (normally every instance the
 * runtime driver lists, or those whose app has isolation enabled). Sources
 * only ever emit signals for instances found here.
 */
export interface InstanceView {
  list(): readonly InstanceStatus[];
  get(id: string): InstanceStatus | undefined;
}

export interface SourceStatus {
  name: string;
  running: boolean;
  /** Instances the source currently holds state for (subscriptions, counters, pids). */
  instances: number;
  signals: number;
  /** Errors caught in timers and callbacks (logged, never thrown). */
  errors: number;
  lastError?: string;
}

export interface SignalSource {
  /** Stable short name, used in logs and `status()`. */
  readonly name: string;
  /** Start timers/subscriptions. Not idempotent: call once, after construction. */
  start(sink: SignalSink, instances: InstanceView): void;
  /** Stop every timer and subscription and wait for work in flight. Idempotent. */
  stop(): Promise<void>;
  status(): SourceStatus;
}

/** Where sources report errors they swallowed. @default a rate-limited console.warn */
export type SourceErrorHandler = (source: string, err: unknown) => void;

/** Options every source accepts. */
export interface SourceOptions {
  onError?: SourceErrorHandler;
}
