/**
 * One App status from several sites. Each site's reconciler reports what its
 * pass saw (its instances of every App, its problems); this writer keeps the
 * latest report per site and writes each App's status from all of them, with
 * the replicas placement expects and where they run. Without it, every site
 * would overwrite the status with only its own instances.
 *
 * Instances of a site that is not usable (unreachable, failback pending) are
 * not counted: they are what a stale cache says, and their share runs elsewhere.
 *
 * Only changed statuses reach the store (compared with the status the pass
 * read), and the loop yields every few milliseconds: a resync of 10,000
 * unchanged Apps is no store write at all.
 */
import type { AppResource } from '../../model/types.ts';
import type { InstanceStatus } from '../../runtime/driver.ts';
import type { Store } from '../../store/store.ts';
import { sameJson } from '../../util/canonical-json.ts';
import { TimeSlice } from '../../util/time-slice.ts';
import { computeAppStatus } from '../controllers/app-status.ts';
import type { SiteAppReport } from '../controllers/site-reconciler.ts';
import type { Placement } from './placement.ts';
import { placementSites } from './placement.ts';

export interface AppStatusWriterOptions {
  store: Store;
  placement: Placement;
  /** Whether a site's instances count (its health is usable). */
  usable: (site: string) => boolean;
  defaultSite: string;
}

const keyOf = (a: AppResource): string => `${a.metadata.project ?? ''}/${a.metadata.name}`;

export class AppStatusWriter {
  private readonly bySite = new Map<string, Map<string, SiteAppReport>>();
  private readonly o: AppStatusWriterOptions;
  private chain: Promise<void> = Promise.resolve();

  constructor(o: AppStatusWriterOptions) {
    this.o = o;
  }

  /** The reconciler's `reportStatus` hook. Writes are serialised so two sites never interleave. */
  report = (site: string, reports: SiteAppReport[]): Promise<void> => {
    this.bySite.set(site, new Map(reports.map((r) => [keyOf(r.app), r])));
    const next = this.chain.then(() => this.write(reports.map((r) => r.app)));
    this.chain = next.catch(() => undefined);
    return next;
  };

  /** Drop a site's reports (site removed). */
  forgetSite(site: string): void {
    this.bySite.delete(site);
  }

  private async write(apps: AppResource[]): Promise<void> {
    const now = new Date().toISOString();
    const slice = new TimeSlice();
    for (const app of apps) {
      const key = keyOf(app);
      const placed = placementSites(app, this.o.defaultSite).map((s) => s.name);
      const instances: InstanceStatus[] = [];
      const problems: string[] = [];
      for (const [site, reports] of this.bySite) {
        const r = reports.get(key);
        if (!r) continue;
        if (this.o.usable(site)) instances.push(...r.instances);
        problems.push(...r.problems.map((p) => (placed.length > 1 ? `${site}: ${p}` : p)));
      }
      const status = computeAppStatus(app, instances, placed, problems, now, {
        expected: this.o.placement.expectedReplicas(app),
        status: this.o.placement.statusFor(app),
      });
      if (!sameJson(app.status ?? null, status)) {
        await this.o.store.updateStatus(
          { kind: 'App', project: app.metadata.project ?? '', name: app.metadata.name },
          status,
        );
      }
      await slice.yieldIfDue();
    }
  }
}
