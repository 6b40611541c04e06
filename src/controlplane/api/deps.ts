import type { DataPlane } from '../../dataplane/dataplane.ts';
import type { InstanceStatus, RuntimeDriver } from '../../runtime/driver.ts';
import type { Store } from '../../store/store.ts';
import type { ChangeFeed } from '../change-feed.ts';
import type { SiteReconciler } from '../controllers/site-reconciler.ts';

/** A local site as the API sees it: its runtime, its gateway and its reconcile loop. */
export interface SiteHandle {
  name: string;
  driver: RuntimeDriver;
  dataplane: DataPlane;
  reconciler: SiteReconciler;
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
