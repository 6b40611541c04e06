import type { DataPlane } from '../../dataplane/dataplane.ts';
import type { Incident } from '../../model/incidents.ts';
import type { ObservabilityApi } from '../../observability/api.ts';
import type { InstanceStatus, RuntimeDriver } from '../../runtime/driver.ts';
import type { Store } from '../../store/store.ts';
import type { ChangeFeed } from '../change-feed.ts';
import type { SiteReconciler } from '../controllers/site-reconciler.ts';

/** A site as the API sees it: its runtime, its gateway (HAProxy locally, a ServiceDataPlane on Kubernetes) and its reconcile loop. */
export interface SiteHandle {
  name: string;
  driver: RuntimeDriver;
  dataplane: DataPlane;
  reconciler: SiteReconciler;
}

/**
 * What the API needs from fault isolation. Implemented by the isolation
 * controller's wiring; when absent the quarantine routes answer 503.
 *
 * `release` and `deleteQuarantined` resolve to the incident after the change
 * (state `resolved`, with a `released` / `deleted` timeline entry). To fail,
 * throw `NotFoundError` (no such instance, or it has no incident) or
 * `ConflictError` (the instance is not quarantined) from `store/store.ts`;
 * the routes answer 404 / 409 with the message. An `ApiError` passes through
 * as is; anything else is a 500.
 */
export interface IsolationApi {
  /** Return a quarantined instance to traffic (supervision back on). */
  release(instanceId: string): Promise<Incident>;
  /** Stop and remove a quarantined instance (its evidence stays). */
  deleteQuarantined(instanceId: string): Promise<Incident>;
  /** Prometheus text (format 0.0.4) of the isolation controller's metrics; see metrics/isolation.ts. */
  metrics(): string;
}

/** What the HTTP routes need; built once by the control plane's wiring. */
export interface ApiDeps {
  store: Store;
  feed: ChangeFeed;
  sites: ReadonlyMap<string, SiteHandle>;
  /** Snapshot of every component's status for `GET /status`. */
  status: () => Promise<Record<string, unknown>>;
  /** Trigger reconciles after a write so the API's effect is not delayed by the resync period. */
  kick: () => void;
  /** Fault isolation (quarantine release/delete, its metrics); absent until isolation is wired. */
  isolation?: IsolationApi;
  /** Topology, diagnosis, profiling and their metrics; absent until observability is wired. */
  observability?: ObservabilityApi;
}

export function allInstances(deps: ApiDeps): InstanceStatus[] {
  return [...deps.sites.values()].flatMap((s) => s.driver.list());
}

export function findInstance(
  deps: ApiDeps,
  id: string,
): { site: SiteHandle; inst: InstanceStatus } | undefined {
  for (const site of deps.sites.values()) {
    const inst = site.driver.get(id);
    if (inst) return { site, inst };
  }
  return undefined;
}
