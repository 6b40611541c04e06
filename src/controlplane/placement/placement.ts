/**
 * Placement decisions across sites: which site runs how many replicas of each
 * workload, given the App's placement and every site's health. Site
 * reconcilers ask `shareFor(app, site)` on each pass; the App's status gets
 * `statusFor(app)` (where replicas run and why). Every change of a split is
 * logged once with its reason ("dc2 unreachable ...: share moved to dc1, dc3").
 *
 * State kept here is only the last settled split per workload (for the
 * failback hold) and the last decision (to log moves once); both are rebuilt
 * from scratch after a restart without moving anything: sites start `unknown`,
 * which counts as usable.
 */
import { DEFAULTS } from '../../model/defaults.ts';
import type { AppPlacementStatus, AppResource, SiteHealthState } from '../../model/types.ts';
import type { Logger } from '../../util/logger.ts';
import { isUsable } from './site-health.ts';
import { holdForFailback, splitReplicas, type SiteWeight } from './split.ts';
import { placementAction } from '../actions/placement-action.ts';
import type { ActionRecord } from '../../model/actions.ts';

export interface SiteView {
  state: SiteHealthState;
  /** Epoch ms the state was entered. */
  since: number;
  /** Why (the last transition's reason or probe error). */
  reason?: string;
  failbackAt?: number;
}

export interface PlacementOptions {
  /** Health of a registered site; undefined when the control plane does not run that site. */
  site: (name: string) => SiteView | undefined;
  /** Ready, serving replicas of a workload on a site, as its driver reports them now. */
  ready: (site: string, project: string, app: string, workload: string) => number;
  log: Logger;
  now?: () => number;
  /** A split changed replicas on some site (failover, failback, rebalance): record it. */
  onAction?: (action: ActionRecord) => void;
}

interface Decision {
  /** workload -> site -> replicas */
  shares: Record<string, Record<string, number>>;
  holding: string[];
  unplaced: number;
}

const appKey = (a: AppResource): string => `${a.metadata.project ?? ''}/${a.metadata.name}`;
const iso = (ms: number): string => new Date(ms).toISOString();

export function placementSites(app: AppResource, defaultSite: string): SiteWeight[] {
  const sites = app.spec.placement?.sites ?? [];
  if (sites.length === 0) return [{ name: defaultSite, weight: DEFAULTS.placementWeight, minReplicas: 0 }];
  return sites.map((s) => ({
    name: s.name,
    weight: s.weight ?? DEFAULTS.placementWeight,
    minReplicas: s.minReplicas ?? 0,
  }));
}

export class Placement {
  private readonly settled = new Map<string, Record<string, Record<string, number>>>();
  private readonly last = new Map<
    string,
    { key: string; at: number; reason: string; shares: Decision['shares']; down: string[] }
  >();
  private readonly now: () => number;
  private readonly o: PlacementOptions;
  private readonly defaultSite: string;

  constructor(o: PlacementOptions, defaultSite: string) {
    this.o = o;
    this.defaultSite = defaultSite;
    this.now = o.now ?? Date.now;
  }

  private view(name: string): SiteView {
    return (
      this.o.site(name) ?? {
        state: 'unreachable',
        since: 0,
        reason: 'site not registered with this control plane',
      }
    );
  }

  private decide(app: AppResource): Decision {
    const sites = placementSites(app, this.defaultSite);
    const strategy = app.spec.placement?.strategy ?? 'replicate';
    const shares: Decision['shares'] = {};
    if (strategy === 'replicate') {
      // Every placed site runs the full count; an unreachable site's reconciler is paused, not emptied.
      for (const w of app.spec.workloads)
        shares[w.name] = Object.fromEntries(sites.map((s) => [s.name, w.replicas ?? DEFAULTS.replicas]));
      return { shares, holding: [], unplaced: 0 };
    }
    const eligible = new Set(sites.filter((s) => isUsable(this.view(s.name).state)).map((s) => s.name));
    const key = appKey(app);
    const settledApp = this.settled.get(key) ?? {};
    const holding = new Set<string>();
    let unplaced = 0;
    for (const w of app.spec.workloads) {
      const split = splitReplicas(w.replicas ?? DEFAULTS.replicas, sites, eligible);
      unplaced += split.unplaced;
      const ready = Object.fromEntries(
        sites.map((s) => [
          s.name,
          this.o.ready(s.name, app.metadata.project ?? '', app.metadata.name, w.name),
        ]),
      );
      const held = holdForFailback(split.shares, settledApp[w.name], ready, eligible);
      shares[w.name] = held.shares;
      for (const h of held.holding) holding.add(h);
      if (held.holding.length === 0) settledApp[w.name] = split.shares;
    }
    this.settled.set(key, settledApp);
    const decision = { shares, holding: [...holding].sort(), unplaced };
    this.noteChange(app, decision);
    return decision;
  }

  /** Replicas per workload this site should run; undefined when the App is not placed here. */
  shareFor(app: AppResource, site: string): Record<string, number> | undefined {
    if (!placementSites(app, this.defaultSite).some((s) => s.name === site)) return undefined;
    const d = this.decide(app);
    return Object.fromEntries(Object.entries(d.shares).map(([w, bySite]) => [w, bySite[site] ?? 0]));
  }

  /** Replicas the App's status should expect per workload (usable sites only). */
  expectedReplicas(app: AppResource): Record<string, number> {
    const d = this.decide(app);
    const usable = (s: string): boolean => isUsable(this.view(s).state);
    return Object.fromEntries(
      Object.entries(d.shares).map(([w, bySite]) => [
        w,
        Object.entries(bySite)
          .filter(([s]) => usable(s))
          .reduce((n, [, r]) => n + r, 0),
      ]),
    );
  }

  /** Where the App's replicas run and why; goes into the App's status. */
  statusFor(app: AppResource): AppPlacementStatus {
    const d = this.decide(app);
    const strategy = app.spec.placement?.strategy ?? 'replicate';
    const sites = placementSites(app, this.defaultSite);
    const out: AppPlacementStatus = {
      strategy,
      sites: sites.map((s) => {
        const v = this.view(s.name);
        const replicas = Object.fromEntries(Object.entries(d.shares).map(([w, b]) => [w, b[s.name] ?? 0]));
        return { name: s.name, state: v.state, replicas, reason: this.siteReason(strategy, s, v, d) };
      }),
    };
    const last = this.last.get(appKey(app));
    if (last) out.lastChange = { at: iso(last.at), reason: last.reason };
    return out;
  }

  /** Forget an App (deleted). */
  forget(app: { project: string; name: string }): void {
    this.settled.delete(`${app.project}/${app.name}`);
    this.last.delete(`${app.project}/${app.name}`);
  }

  private siteReason(strategy: string, s: SiteWeight, v: SiteView, d: Decision): string {
    const since = v.since ? ` since ${iso(v.since)}` : '';
    const why = v.reason ? ` (${v.reason})` : '';
    if (v.state === 'unreachable') {
      return strategy === 'spread'
        ? `unreachable${since}${why}: its share runs on the other sites`
        : `unreachable${since}${why}: its replicas are not counted until it returns`;
    }
    if (v.state === 'recovering') {
      const at = v.failbackAt ? `, gets its share back at ${iso(v.failbackAt)}` : '';
      return `answering again${since}; failback period running${at}`;
    }
    if (d.holding.includes(s.name)) return 'keeps its previous share until the returning site is ready';
    if (strategy === 'replicate') return 'runs the full replica count (strategy replicate)';
    return `weight ${s.weight}${s.minReplicas ? `, minimum ${s.minReplicas}` : ''}`;
  }

  private noteChange(app: AppResource, d: Decision): void {
    const key = appKey(app);
    const sig = JSON.stringify([d.shares, d.holding]);
    const prev = this.last.get(key);
    if (prev?.key === sig) return;
    const sites = placementSites(app, this.defaultSite).map((s) => s.name);
    const down = sites.filter((s) => !isUsable(this.view(s).state));
    const parts: string[] = [];
    if (!prev) parts.push('initial placement');
    for (const s of down)
      parts.push(`${s} ${this.view(s).state}${this.view(s).reason ? ` (${this.view(s).reason})` : ''}`);
    if (prev && down.length === 0) parts.push('all placed sites usable');
    if (d.holding.length > 0)
      parts.push(`${d.holding.join(', ')} keep their share until the returning site is ready`);
    if (d.unplaced > 0) parts.push(`${d.unplaced} replica(s) have no usable site`);
    const split = Object.entries(d.shares)
      .map(
        ([w, b]) =>
          `${w}: ${Object.entries(b)
            .map(([s, n]) => `${s}=${n}`)
            .join(' ')}`,
      )
      .join('; ');
    const reason = `${parts.join('; ')} -> ${split}`;
    const at = this.now();
    this.last.set(key, { key: sig, at, reason, shares: d.shares, down });
    if (!prev) return;
    this.o.log.info({ app: key, shares: d.shares, holding: d.holding, reason }, 'placement changed');
    const action = placementAction({
      at,
      project: app.metadata.project ?? '',
      app: app.metadata.name,
      prev: prev.shares,
      next: d.shares,
      downNow: down,
      downBefore: prev.down,
      reason: parts.join('; '),
    });
    if (action) this.o.onAction?.(action);
  }
}
