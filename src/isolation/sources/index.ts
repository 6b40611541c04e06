/** Real-time per-instance signal sources feeding the signature engine. */
export type {
  InstanceView,
  SignalSink,
  SignalSource,
  SourceErrorHandler,
  SourceOptions,
  SourceStatus,
} from './types.ts';
export { cachedInstances, rateLimited, warnRateLimited } from './base.ts';
export { SignalHub, defaultSources } from './hub.ts';
export type { DefaultSourcesOptions, SignalHubOptions, SignalHubStatus } from './hub.ts';
export { RequestLogSource } from './request-log.ts';
export type { RequestLogSourceOptions } from './request-log.ts';
export { ServerStatsSource } from './server-stats.ts';
export type { ServerStatsSourceOptions, ServerStatsSourceStatus } from './server-stats.ts';
export { ProcessStateSource, parseProcStat } from './process-state.ts';
export type { ProcessStateSourceOptions, ProcStat } from './process-state.ts';
export { ResourceSource } from './resources.ts';
export type { ResourceSample, ResourceSourceOptions } from './resources.ts';
export { LogSource } from './logs.ts';
export type { LogSourceOptions } from './logs.ts';
export { DriverEventSource, exitSignalReason } from './driver-events.ts';
export type { DriverEventSourceOptions } from './driver-events.ts';
export { ProbeSource, defaultProbeTarget } from './probes.ts';
export type { ProbeSourceOptions, ProbeTarget } from './probes.ts';
