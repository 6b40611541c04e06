/**
 * The isolation controller's metrics, defined here so their names, labels
 * and buckets are fixed in one place (dashboards and alerts depend on them).
 * The controller owns the object: it calls `recordIncident` whenever it
 * writes an incident, and serves `render()` through `IsolationApi.metrics()`.
 *
 * @example
 *   const metrics = createIsolationMetrics({ quarantined: () => this.quarantinedCount() });
 *   const before = await store.getIncident(next.id);
 *   await store.putIncident(next);
 *   metrics.recordIncident(next, before);
 */
import type { Incident } from '../model/incidents.ts';
import { Registry, type Counter, type Gauge, type Histogram } from '../util/metrics/registry.ts';

/** Detection is bounded by signal windows: sub-second to a minute. */
export const DETECT_BUCKETS_S: readonly number[] = [0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60];
/** Taking a server out of traffic is one runtime-API command: milliseconds. */
export const ISOLATE_BUCKETS_S: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];
/** A replacement has to start and pass its readiness probe: seconds to minutes. */
export const RECOVERY_BUCKETS_S: readonly number[] = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300];

export interface IsolationMetrics {
  readonly registry: Registry;
  /** `bulwark_isolation_detect_seconds{signature}`: detected − onset. */
  readonly detectSeconds: Histogram;
  /** `bulwark_isolation_isolate_seconds{signature}`: isolated − detected. */
  readonly isolateSeconds: Histogram;
  /** `bulwark_isolation_replace_seconds{signature}`: replacement ready − detected. */
  readonly replaceSeconds: Histogram;
  /** `bulwark_incident_mttr_seconds{signature}`: mitigated − onset (or detection). */
  readonly mttrSeconds: Histogram;
  /** `bulwark_incidents_total{signature,action}`: incidents opened, by what was done. */
  readonly incidentsTotal: Counter;
  /** `bulwark_quarantined_instances`: instances out of traffic kept for inspection, now. */
  readonly quarantinedInstances: Gauge;
  /**
   * Count a new incident and observe each duration that `incident` has and
   * `previous` (the stored version before this write) had not, so calling it
   * on every write counts each incident and each duration exactly once.
   */
  recordIncident(incident: Incident, previous?: Incident): void;
  /** Prometheus text of these metrics. */
  render(): string;
}

export interface IsolationMetricsOptions {
  /** Register into this registry. @default a new one */
  registry?: Registry;
  /** Read at every scrape to set `bulwark_quarantined_instances`; without it, set the gauge yourself. */
  quarantined?: () => number;
}

export function createIsolationMetrics(opts: IsolationMetricsOptions = {}): IsolationMetrics {
  const registry = opts.registry ?? new Registry();
  const bySignature = { labelNames: ['signature'] } as const;
  const detectSeconds = registry.histogram(
    'bulwark_isolation_detect_seconds',
    'Time from the first bad signal (estimated onset) to a signature match, seconds.',
    { ...bySignature, buckets: DETECT_BUCKETS_S },
  );
  const isolateSeconds = registry.histogram(
    'bulwark_isolation_isolate_seconds',
    'Time from detection to the instance being out of traffic, seconds.',
    { ...bySignature, buckets: ISOLATE_BUCKETS_S },
  );
  const replaceSeconds = registry.histogram(
    'bulwark_isolation_replace_seconds',
    'Time from detection to the replacement instance being ready, seconds.',
    { ...bySignature, buckets: RECOVERY_BUCKETS_S },
  );
  const mttrSeconds = registry.histogram(
    'bulwark_incident_mttr_seconds',
    'Time to recovery of an incident: mitigation minus onset (or detection), seconds.',
    { ...bySignature, buckets: RECOVERY_BUCKETS_S },
  );
  const incidentsTotal = registry.counter(
    'bulwark_incidents_total',
    'Incidents opened, by matching signature and the action taken (isolate, restart, alert, none).',
    { labelNames: ['signature', 'action'] },
  );
  const quarantined = opts.quarantined;
  const quarantinedInstances: Gauge = registry.gauge(
    'bulwark_quarantined_instances',
    'Instances currently quarantined: out of traffic, kept alive for inspection.',
    quarantined ? { collect: () => quarantinedInstances.set(quarantined()) } : {},
  );

  const durations: [keyof Incident['durations'], Histogram][] = [
    ['detectMs', detectSeconds],
    ['isolateMs', isolateSeconds],
    ['replaceMs', replaceSeconds],
    ['mttrMs', mttrSeconds],
  ];

  return {
    registry,
    detectSeconds,
    isolateSeconds,
    replaceSeconds,
    mttrSeconds,
    incidentsTotal,
    quarantinedInstances,
    recordIncident(incident, previous) {
      const signature = incident.signature;
      if (!previous) incidentsTotal.with({ signature, action: incident.action.kind }).inc();
      for (const [field, histogram] of durations) {
        const ms = incident.durations[field];
        if (typeof ms === 'number' && Number.isFinite(ms) && previous?.durations[field] === undefined) {
          histogram.with({ signature }).observe(Math.max(0, ms) / 1000);
        }
      }
    },
    render: () => registry.render(),
  };
}
