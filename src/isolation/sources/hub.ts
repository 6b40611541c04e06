/**
 * SignalHub: starts and stops a set of signal sources together over one view
 * of the instances to watch, and delivers everything they produce to one
 * sink. The caller owns the engine: it calls `engine.watch(id, rules)` for
 * the instances it passes here; the hub only delivers signals.
 *
 * @example
 * const engine = new SignatureEngine();
 * const hub = new SignalHub({
 *   instances: () => driver.list(),
 *   sources: defaultSources({ dataPlane, driver, probeTarget: (i) => readinessOf(i) }),
 * });
 * hub.start({
 *   signal: (id, s) => act(engine.observe(id, s)),
 *   logLine: (id, stream, line, at) => act(engine.observeLogLine(id, stream, line, at)),
 * });
 * // ... on shutdown
 * await hub.stop();
 */
import type { DataPlane } from '../../dataplane/dataplane.ts';
import type { InstanceStatus, RuntimeDriver } from '../../runtime/driver.ts';
import type { SignalType } from '../signals/types.ts';
import { cachedInstances, errorText } from './base.ts';
import { DriverEventSource } from './driver-events.ts';
import { LogSource } from './logs.ts';
import { ProbeSource, type ProbeSourceOptions } from './probes.ts';
import { ProcessStateSource } from './process-state.ts';
import { RequestLogSource } from './request-log.ts';
import { ResourceSource, type ResourceSample } from './resources.ts';
import { ServerStatsSource } from './server-stats.ts';
import type { InstanceView, SignalSink, SignalSource, SourceErrorHandler, SourceStatus } from './types.ts';

export interface SignalHubOptions {
  /** The instances to watch, e.g. `() => driver.list()` or a filtered list. Called at most every `instancesMaxAgeMs`. */
  instances: () => readonly InstanceStatus[];
  sources: SignalSource[];
  /** @default 50 */
  instancesMaxAgeMs?: number;
}

export interface SignalHubStatus {
  running: boolean;
  instances: number;
  /** Signals delivered, by type (`log-line` counts raw lines). */
  delivered: Partial<Record<SignalType | 'log-line', number>>;
  /** Sink callbacks that threw (the error is dropped; sources keep running). */
  sinkErrors: number;
  sources: SourceStatus[];
}

export class SignalHub {
  private readonly opts: SignalHubOptions;
  private readonly view: InstanceView;
  private running = false;
  private readonly delivered: Partial<Record<SignalType | 'log-line', number>> = {};
  private sinkErrors = 0;

  constructor(opts: SignalHubOptions) {
    const names = new Set<string>();
    for (const s of opts.sources) {
      if (names.has(s.name)) throw new Error(`sources: '${s.name}' appears twice; pass each source once`);
      names.add(s.name);
    }
    this.opts = opts;
    this.view = cachedInstances(opts.instances, opts.instancesMaxAgeMs ?? 50);
  }

  /** Start every source. A source that fails to start is stopped again with the others and the error rethrown. */
  start(sink: SignalSink): void {
    if (this.running) throw new Error('SignalHub is already started');
    this.running = true;
    const counted: SignalSink = {
      signal: (id, s) => {
        this.delivered[s.type] = (this.delivered[s.type] ?? 0) + 1;
        try {
          sink.signal(id, s);
        } catch {
          this.sinkErrors++;
        }
      },
      logLine: (id, stream, line, at) => {
        this.delivered['log-line'] = (this.delivered['log-line'] ?? 0) + 1;
        try {
          sink.logLine(id, stream, line, at);
        } catch {
          this.sinkErrors++;
        }
      },
    };
    const started: SignalSource[] = [];
    try {
      for (const s of this.opts.sources) {
        s.start(counted, this.view);
        started.push(s);
      }
    } catch (err) {
      this.running = false;
      void Promise.allSettled(started.map((s) => s.stop()));
      throw new Error(`SignalHub: starting source failed: ${errorText(err)}`, { cause: err });
    }
  }

  /** Stop every source and wait for their work in flight. Idempotent. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    await Promise.allSettled(this.opts.sources.map((s) => s.stop()));
  }

  status(): SignalHubStatus {
    let instances = 0;
    try {
      instances = this.view.list().length;
    } catch {
      // the caller's list failed; the sources report it in their own errors
    }
    return {
      running: this.running,
      instances,
      delivered: { ...this.delivered },
      sinkErrors: this.sinkErrors,
      sources: this.opts.sources.map((s) => s.status()),
    };
  }
}

export interface DefaultSourcesOptions {
  /** Request log and server counters; absent = neither source. */
  dataPlane?: Pick<DataPlane, 'onRequest' | 'stats'>;
  /** Exits/restarts, logs, and (when it has `stats`) memory/CPU. */
  driver?: Pick<RuntimeDriver, 'watch' | 'followLogs'> & {
    stats?(id: string): ResourceSample | undefined | Promise<ResourceSample | undefined>;
  };
  /** See `ProbeSourceOptions.target`. */
  probeTarget?: ProbeSourceOptions['target'];
  /** Poll intervals (ms); defaults as documented on each source. */
  intervals?: {
    serverStatsMs?: number;
    processStateMs?: number;
    resourcesMs?: number;
    probesMs?: number;
    logsReconcileMs?: number;
  };
  /** @default 400 */
  probeTimeoutMs?: number;
  /** @default 4 */
  probeMaxConcurrent?: number;
  /** Probe instances at all. @default true */
  probes?: boolean;
  onError?: SourceErrorHandler;
}

/** Every source this module has, wired from what the caller can give. */
export function defaultSources(o: DefaultSourcesOptions): SignalSource[] {
  const onError = o.onError;
  const iv = o.intervals ?? {};
  const out: SignalSource[] = [];
  if (o.dataPlane) {
    out.push(new RequestLogSource({ dataPlane: o.dataPlane, onError }));
    out.push(new ServerStatsSource({ dataPlane: o.dataPlane, intervalMs: iv.serverStatsMs, onError }));
  }
  out.push(new ProcessStateSource({ intervalMs: iv.processStateMs, onError }));
  const driver = o.driver;
  if (driver) {
    out.push(new DriverEventSource({ driver, onError }));
    out.push(new LogSource({ driver, reconcileIntervalMs: iv.logsReconcileMs, onError }));
    if (typeof driver.stats === 'function') {
      out.push(new ResourceSource({ stats: (id) => driver.stats!(id), intervalMs: iv.resourcesMs, onError }));
    }
  }
  if (o.probes ?? true) {
    out.push(
      new ProbeSource({
        target: o.probeTarget,
        intervalMs: iv.probesMs,
        timeoutMs: o.probeTimeoutMs,
        maxConcurrent: o.probeMaxConcurrent,
        onError,
      }),
    );
  }
  return out;
}
