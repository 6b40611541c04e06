/**
 * The control plane's own metrics: its HTTP API, its instances as the
 * runtime reports them, and its change feed. Gauges are read from live
 * state at scrape time, so they cannot drift from what `/status` shows.
 */
import type { ApiDeps } from '../api/deps.ts';
import { Registry, type Counter, type Gauge, type Histogram } from '../../util/metrics/registry.ts';

/** API calls are mostly store reads and writes: a millisecond to a few seconds. */
export const HTTP_BUCKETS_S: readonly number[] = [
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export interface ControlPlaneMetrics {
  readonly registry: Registry;
  /** `bulwark_http_requests_total{method,route,code}` */
  readonly httpRequests: Counter;
  /** `bulwark_http_request_duration_seconds{method,route}` */
  readonly httpDuration: Histogram;
  /** Record one answered request; `route` is the route pattern, never the raw URL (bounded labels). */
  observeRequest(method: string, route: string, code: number, seconds: number): void;
  render(): string;
}

export function createControlPlaneMetrics(deps: Pick<ApiDeps, 'sites' | 'feed'>): ControlPlaneMetrics {
  const registry = new Registry();
  registry
    .gauge('bulwark_process_start_time_seconds', 'Start time of the control plane, Unix seconds.')
    .set(Math.floor(Date.now() / 1000));

  const httpRequests = registry.counter(
    'bulwark_http_requests_total',
    'API requests answered, by method, route pattern and status code.',
    { labelNames: ['method', 'route', 'code'] },
  );
  const httpDuration = registry.histogram(
    'bulwark_http_request_duration_seconds',
    'Time to answer an API request, by method and route pattern, seconds.',
    { labelNames: ['method', 'route'], buckets: HTTP_BUCKETS_S },
  );

  const instances: Gauge = registry.gauge(
    'bulwark_instances',
    'Instances by site and phase, as the runtime reports them.',
    {
      labelNames: ['site', 'phase'],
      collect: () => {
        // Rebuilt from scratch each scrape so a phase nobody is in disappears.
        instances.reset();
        for (const [name, site] of deps.sites) {
          for (const inst of site.driver.list()) instances.with({ site: name, phase: inst.phase }).inc();
        }
      },
    },
  );
  const ready: Gauge = registry.gauge(
    'bulwark_instances_ready',
    'Instances passing their readiness probe, by site.',
    {
      labelNames: ['site'],
      collect: () => {
        ready.reset();
        for (const [name, site] of deps.sites) {
          ready.with({ site: name }).set(site.driver.list().filter((i) => i.ready).length);
        }
      },
    },
  );
  const feedSeq: Gauge = registry.gauge(
    'bulwark_change_feed_seq',
    'Newest change-log sequence number the feed has delivered.',
    {
      collect: () => feedSeq.set(deps.feed.status().seq),
    },
  );
  const feedSubscribers: Gauge = registry.gauge(
    'bulwark_change_feed_subscribers',
    'Listeners on the change feed (event streams and controllers).',
    { collect: () => feedSubscribers.set(deps.feed.status().subscribers) },
  );

  return {
    registry,
    httpRequests,
    httpDuration,
    observeRequest(method, route, code, seconds) {
      httpRequests.with({ method, route, code: String(code) }).inc();
      httpDuration.with({ method, route }).observe(seconds);
    },
    render: () => registry.render(),
  };
}
