/**
 * The level-triggered reconcile loop for one site: desired state from the
 * store, actual state from the runtime driver, traffic through the data
 * plane. Triggered by store changes, driver events and a periodic resync;
 * triggers coalesce into one pass at a time, so a burst of events costs one
 * reconcile and a crash at any point is repaired by the next pass.
 *
 * A pass is linear in Apps plus instances (instances are grouped by App
 * once, never filtered per App), yields to the event loop every few
 * milliseconds (TimeSlice), and writes only the statuses that changed: with
 * 10,000 Apps a pass that rewrote every status was 10,000 store transactions
 * each time any App changed.
 */
import type { DataPlane } from '../../dataplane/dataplane.ts';
import type { AppResource } from '../../model/types.ts';
import type { InstanceStatus, RuntimeDriver } from '../../runtime/driver.ts';
import type { Store } from '../../store/store.ts';
import { sameJson } from '../../util/canonical-json.ts';
import { TimeSlice } from '../../util/time-slice.ts';
import type { Logger } from '../../util/logger.ts';
import { computeAppStatus } from './app-status.ts';
import { countedAsReplicas, planApp, type PlanContext } from './plan.ts';
import { computeRouting } from './routing.ts';

export interface SiteReconcilerOptions {
  store: Store;
  site: string;
  driver: RuntimeDriver;
  dataplane: DataPlane;
  log: Logger;
  platformEnv: Record<string, string>;
  parseMemory: (q: string) => number;
  /** Root of per-project data directories (see PlanContext.dataRoot). */
  dataRoot?: string;
  /** Full resync period even without events. @default 5000 */
  resyncIntervalMs?: number;
  /** Time between taking an instance out of traffic and stopping it, so in-flight requests finish. @default 200 */
  drainDelayMs?: number;
  /**
   * Multi-site placement: replicas per workload this site should run, or undefined when the
   * App is not placed here. Default: the workload's own `replicas` on every placed site.
   */
  replicasFor?: (app: AppResource) => Record<string, number> | undefined;
  /** Why passes are skipped right now (site unreachable, failback pending); undefined: reconcile. */
  pausedReason?: () => string | undefined;
  /**
   * Hand this pass's per-App results to a writer that merges every site's view into one
   * status (several sites). Default: this reconciler writes each App's status itself.
   */
  reportStatus?: (site: string, reports: SiteAppReport[]) => Promise<void>;
}

/** One App as one site's pass saw it (see `reportStatus`). */
export interface SiteAppReport {
  app: AppResource;
  /** This site's instances of the App, without those leaving. */
  instances: InstanceStatus[];
  problems: string[];
}

export interface SiteReconcilerStatus {
  site: string;
  state: 'idle' | 'reconciling' | 'paused' | 'stopped';
  /** Why passes are skipped (state paused). */
  pausedReason?: string;
  passes: number;
  lastPassAt?: string;
  lastPassMs?: number;
  lastError?: string;
  instances: number;
  stopping: string[];
}

export function placedSites(app: AppResource, defaultSite: string): string[] {
  const sites = app.spec.placement?.sites.map((s) => s.name) ?? [];
  return sites.length > 0 ? sites : [defaultSite];
}

/** The App with each workload's replicas replaced by this site's share (absent: unchanged). */
function withShare(app: AppResource, share: Record<string, number> | undefined): AppResource {
  if (!share || Object.keys(share).length === 0) return app;
  return {
    ...app,
    spec: {
      ...app.spec,
      workloads: app.spec.workloads.map((w) =>
        share[w.name] === undefined ? w : { ...w, replicas: share[w.name] },
      ),
    },
  };
}

/** Longest rest between two back-to-back passes. @default 2000 */
const MAX_REST_MS = 2000;

const appKeyOf = (a: AppResource): string => `${a.metadata.project ?? ''}/${a.metadata.name}`;

/** Instances by `project/app`, one pass over the list. */
export function byApp<T extends { project: string; app: string }>(instances: readonly T[]): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const i of instances) {
    const k = `${i.project}/${i.app}`;
    const list = out.get(k);
    if (list) list.push(i);
    else out.set(k, [i]);
  }
  return out;
}

export class SiteReconciler {
  private readonly o: Required<
    Omit<SiteReconcilerOptions, 'log' | 'dataRoot' | 'replicasFor' | 'pausedReason' | 'reportStatus'>
  > &
    Pick<SiteReconcilerOptions, 'replicasFor' | 'pausedReason' | 'reportStatus'> & {
      log: Logger;
      dataRoot?: string;
    };
  private pausedWhy: string | undefined;
  private state: SiteReconcilerStatus['state'] = 'idle';
  private timer: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private running: Promise<void> | undefined;
  /** Set between a long pass and the next one it was re-triggered for (see trigger). */
  private resting: NodeJS.Timeout | undefined;
  private dirty = false;
  private stopped = false;
  private passes = 0;
  private lastPassAt: string | undefined;
  private lastPassMs: number | undefined;
  /** A driver event (readiness, an exit) is waiting: the next pass does not rest. */
  private urgent = false;
  private lastError: string | undefined;
  private readonly stopping = new Map<string, Promise<void>>();
  private readonly heldOut = new Set<string>();
  private readonly passListeners = new Set<() => void>();

  constructor(opts: SiteReconcilerOptions) {
    this.o = { resyncIntervalMs: 5000, drainDelayMs: 200, ...opts };
  }

  start(): void {
    this.unwatch = this.o.driver.watch(() => this.trigger(true));
    this.timer = setInterval(() => this.trigger(), this.o.resyncIntervalMs);
    this.timer.unref();
    this.trigger();
  }

  /**
   * Request a reconcile pass; passes never overlap, extra requests coalesce. `urgent` (driver
   * events: what is in traffic depends on them) cuts a rest short.
   */
  trigger(urgent = false): void {
    if (this.stopped) return;
    if (urgent) this.urgent = true;
    if (this.resting && urgent) {
      clearTimeout(this.resting);
      this.resting = undefined;
    }
    if (this.running || this.resting) {
      this.dirty = true;
      return;
    }
    this.running = this.pass().finally(() => {
      this.running = undefined;
      for (const l of this.passListeners) l();
      if (this.dirty) {
        this.dirty = false;
        // A pass over 10,000 Apps takes a second or more; back to back (every event of a big
        // apply re-triggers) the loop would take the whole thread. Resting as long as the pass
        // took keeps it at half of it at most; a small pass (milliseconds) follows at once. A
        // driver event (an instance became ready, exited) never waits: resting delayed routing a
        // newly ready instance by a HAProxy reload's ~0.5 s (503s while the API said ready).
        const rest = this.urgent ? 0 : Math.min(this.lastPassMs ?? 0, MAX_REST_MS);
        this.urgent = false;
        if (rest < 20) this.trigger();
        else {
          this.resting = setTimeout(() => {
            this.resting = undefined;
            this.trigger();
          }, rest);
          this.resting.unref();
        }
      }
    });
  }

  /** Resolve after the next complete pass (tests and the CLI's `--wait` use this). */
  nextPass(): Promise<void> {
    return new Promise((resolve) => {
      const l = (): void => {
        this.passListeners.delete(l);
        resolve();
      };
      this.passListeners.add(l);
      this.trigger();
    });
  }

  /** Keep an instance out of traffic (used by fault isolation); idempotent. */
  holdOut(id: string, held: boolean): void {
    if (held) this.heldOut.add(id);
    else this.heldOut.delete(id);
    this.trigger();
  }

  private async pass(): Promise<void> {
    const t0 = performance.now();
    const paused = this.o.pausedReason?.();
    if (paused !== undefined) {
      // An unreachable site is left as it is: its share runs elsewhere, and acting on a
      // stale cache (or waiting on timeouts) would only do harm.
      if (this.pausedWhy !== paused) this.o.log.info({ site: this.o.site, why: paused }, 'reconciler paused');
      this.pausedWhy = paused;
      this.state = 'paused';
      return;
    }
    if (this.pausedWhy !== undefined) this.o.log.info({ site: this.o.site }, 'reconciler resumed');
    this.pausedWhy = undefined;
    this.state = 'reconciling';
    try {
      const slice = new TimeSlice();
      const apps = (await this.o.store.list('App')) as AppResource[];
      const instances = this.o.driver.list();
      const ctx: PlanContext = {
        site: this.o.site,
        platformEnv: this.o.platformEnv,
        parseMemory: this.o.parseMemory,
        ...(this.o.dataRoot ? { dataRoot: this.o.dataRoot } : {}),
      };
      const problems = new Map<string, string[]>();
      const toStop: { id: string; why: string }[] = [];
      const appKeys = new Set(apps.map(appKeyOf));
      for (const inst of instances) {
        if (inst.site === this.o.site && !appKeys.has(`${inst.project}/${inst.app}`)) {
          toStop.push({ id: inst.id, why: 'app deleted' });
        }
      }
      // Quarantined instances are kept for diagnosis, not counted: their ordinal gets a replacement.
      const counted = byApp(countedAsReplicas(instances));
      for (const app of apps) {
        const key = appKeyOf(app);
        const share = this.o.replicasFor
          ? this.o.replicasFor(app)
          : placedSites(app, this.o.site).includes(this.o.site)
            ? {}
            : undefined;
        const placed = share !== undefined;
        const plan = planApp(withShare(app, share), placed, counted.get(key) ?? [], ctx);
        toStop.push(...plan.stop);
        for (const spec of plan.start) {
          try {
            await this.o.driver.ensure(spec);
            this.o.log.info({ instance: spec.id, app: key }, 'instance started');
          } catch (err) {
            const msg = `cannot start ${spec.workload}[${spec.ordinal}]: ${(err as Error).message}`;
            problems.set(key, [...(problems.get(key) ?? []), msg]);
            this.o.log.warn({ app: key, err: (err as Error).message }, 'instance start failed');
          }
        }
        await slice.yieldIfDue();
      }
      // Traffic first: instances about to stop leave the gateway before they get SIGTERM.
      const leaving = new Set([...this.stopping.keys(), ...toStop.map((s) => s.id)]);
      const current = this.o.driver.list();
      await this.o.dataplane.sync(computeRouting(apps, current, this.o.site, leaving, this.heldOut));
      for (const s of toStop) this.stopInBackground(s.id, s.why);
      const now = new Date().toISOString();
      const staying = byApp(current.filter((i) => !leaving.has(i.id)));
      if (this.o.reportStatus) {
        await this.o.reportStatus(
          this.o.site,
          apps.map((app) => ({
            app,
            instances: (staying.get(appKeyOf(app)) ?? []).filter((i) => i.site === this.o.site),
            problems: problems.get(appKeyOf(app)) ?? [],
          })),
        );
      }
      for (const app of this.o.reportStatus ? [] : apps) {
        const key = appKeyOf(app);
        const status = computeAppStatus(
          app,
          staying.get(key) ?? [],
          placedSites(app, this.o.site),
          problems.get(key) ?? [],
          now,
        );
        // Unchanged (the common case on a resync): no store transaction at all.
        if (!sameJson(app.status ?? null, status)) {
          await this.o.store.updateStatus(
            { kind: 'App', project: app.metadata.project ?? '', name: app.metadata.name },
            status,
          );
        }
        await slice.yieldIfDue();
      }
      this.lastError = undefined;
    } catch (err) {
      this.lastError = (err as Error).message;
      this.o.log.error({ err: this.lastError, site: this.o.site }, 'reconcile pass failed; will retry');
    } finally {
      this.passes++;
      this.lastPassAt = new Date().toISOString();
      this.lastPassMs = Math.round(performance.now() - t0);
      this.state = this.stopped ? 'stopped' : 'idle';
    }
  }

  private stopInBackground(id: string, why: string): void {
    if (this.stopping.has(id)) return;
    this.o.log.info({ instance: id, why }, 'stopping instance');
    const p = (async () => {
      await new Promise((r) => setTimeout(r, this.o.drainDelayMs));
      try {
        await this.o.driver.remove(id);
      } catch (err) {
        this.o.log.warn({ instance: id, err: (err as Error).message }, 'stop failed; will retry');
      }
    })().finally(() => {
      this.stopping.delete(id);
      this.trigger();
    });
    this.stopping.set(id, p);
  }

  instances(): InstanceStatus[] {
    return this.o.driver.list().filter((i) => i.site === this.o.site);
  }

  status(): SiteReconcilerStatus {
    return {
      site: this.o.site,
      state: this.state,
      ...(this.pausedWhy !== undefined ? { pausedReason: this.pausedWhy } : {}),
      passes: this.passes,
      ...(this.lastPassAt ? { lastPassAt: this.lastPassAt } : {}),
      ...(this.lastPassMs !== undefined ? { lastPassMs: this.lastPassMs } : {}),
      ...(this.lastError ? { lastError: this.lastError } : {}),
      instances: this.instances().length,
      stopping: [...this.stopping.keys()],
    };
  }

  /** Stop reconciling; waits for the pass and the stops in flight. Instances keep running. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.resting) clearTimeout(this.resting);
    this.resting = undefined;
    this.unwatch?.();
    await this.running;
    await Promise.all(this.stopping.values());
    this.state = 'stopped';
  }
}
