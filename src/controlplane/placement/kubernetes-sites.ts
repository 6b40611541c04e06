/**
 * The Kubernetes sites of a control plane, kept in step with the Site
 * resources: `sync()` (at start and on every Site change) starts a site —
 * driver from its kubeconfig, a ServiceDataPlane, its own SiteReconciler and a
 * health prober — for each new `kind: kubernetes` Site, restarts one whose
 * spec changed and stops one that was deleted. Workloads keep running when a
 * site is stopped (like the local site on shutdown).
 *
 * Health: a probe every `health.intervalMs` (driver.health: /readyz + /version,
 * bounded by `timeoutMs`) feeds a SiteHealth; transitions are logged, written to
 * the Site's status (conditions Reachable and Ready with reason and
 * lastProbeTime) and re-trigger every reconciler so the split follows at once.
 * Between transitions the status is refreshed at most every 15 s so a healthy
 * site does not write a change event per probe. Credentials never reach a log
 * line or the status: errors go through redactSecrets.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULTS, parseMemory } from '../../model/defaults.ts';
import type { Condition, SiteResource, SiteSpec, SiteStatus } from '../../model/types.ts';
import type { RuntimeDriver } from '../../runtime/driver.ts';
import { KubernetesDriver } from '../../runtime/kubernetes/kubernetes-driver.ts';
import type { Store } from '../../store/store.ts';
import type { SiteHandle } from '../api/deps.ts';
import { setCondition } from '../controllers/conditions.ts';
import { SiteReconciler, type SiteReconcilerOptions } from '../controllers/site-reconciler.ts';
import type { Logger } from '../../util/logger.ts';
import { isUsable, redactSecrets, SiteHealth, type Transition } from './site-health.ts';
import { ServiceDataPlane } from './service-dataplane.ts';

/** What a Kubernetes site needs from its driver beyond the RuntimeDriver seam. */
export interface KubernetesSiteDriver extends RuntimeDriver {
  health(timeoutMs?: number): Promise<{ ok: boolean; message: string; latencyMs?: number }>;
  start(): Promise<void>;
  status?(): { server: string };
}

export interface KubernetesSiteConnection {
  site: string;
  /** A kubeconfig file (the Site's path, or a private copy of its env reference). */
  kubeconfigPath: string;
  context?: string;
  bindBeforeStart?: boolean;
}

export type KubernetesDriverFactory = (c: KubernetesSiteConnection) => KubernetesSiteDriver;

export const defaultKubernetesDriverFactory: KubernetesDriverFactory = (c) =>
  new KubernetesDriver({
    site: c.site,
    kubeconfigPath: c.kubeconfigPath,
    ...(c.context ? { context: c.context } : {}),
    ...(c.bindBeforeStart ? { bindBeforeStart: true } : {}),
    // Bounded so a paused API server costs a reconcile pass seconds, not minutes.
    requestTimeoutMs: 5000,
  });

export interface KubernetesSitesOptions {
  store: Store;
  /** The control plane's site map (the API reads it); sites are added and removed here. */
  sites: Map<string, SiteHandle>;
  dataDir: string;
  log: Logger;
  /** Reconciler options every site shares (placement hooks, status writer). */
  reconciler: (
    site: string,
  ) => Pick<SiteReconcilerOptions, 'replicasFor' | 'reportStatus' | 'platformEnv'> &
    Partial<Pick<SiteReconcilerOptions, 'resyncIntervalMs'>>;
  /** Called after a health transition or a site change: re-run placement everywhere. */
  onChange: () => void;
  factory?: KubernetesDriverFactory;
  env?: NodeJS.ProcessEnv;
}

const STATUS_REFRESH_MS = 15_000;

interface Running {
  spec: string;
  handle: SiteHandle;
  driver: KubernetesSiteDriver;
  health: SiteHealth;
  server?: string;
  lastReason?: string;
  started: boolean;
  startError?: string;
  timer?: NodeJS.Timeout;
  stopped: boolean;
  lastWrite: number;
  probing?: Promise<void>;
  intervalMs: number;
  timeoutMs: number;
}

export class KubernetesSites {
  private readonly running = new Map<string, Running>();
  private readonly failed = new Map<string, string>();
  private readonly o: KubernetesSitesOptions;
  private syncing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(o: KubernetesSitesOptions) {
    this.o = o;
  }

  /** Health of a Kubernetes site for placement; undefined when it is not running here. */
  view(
    name: string,
  ): { state: SiteHealth['state']; since: number; reason?: string; failbackAt?: number } | undefined {
    const r = this.running.get(name);
    if (!r) {
      const err = this.failed.get(name);
      return err ? { state: 'unreachable', since: 0, reason: err } : undefined;
    }
    const s = r.health.snapshot();
    const failbackAt = r.health.failbackAt();
    return {
      state: s.state,
      since: s.since,
      ...(r.lastReason ? { reason: r.lastReason } : {}),
      ...(failbackAt ? { failbackAt } : {}),
    };
  }

  /** Bring the running sites in line with the Site resources (serialised). */
  sync(): Promise<void> {
    const next = this.syncing.then(() => this.doSync());
    this.syncing = next.catch((err: unknown) =>
      this.o.log.error({ err: (err as Error).message }, 'kubernetes site sync failed'),
    );
    return next;
  }

  private async doSync(): Promise<void> {
    if (this.closed) return;
    const wanted = ((await this.o.store.list('Site')) as SiteResource[]).filter(
      (s) => s.spec.kind === 'kubernetes',
    );
    const names = new Set(wanted.map((s) => s.metadata.name));
    for (const name of [...this.running.keys()]) {
      if (!names.has(name)) await this.stopSite(name, 'Site deleted');
    }
    for (const name of [...this.failed.keys()]) if (!names.has(name)) this.failed.delete(name);
    for (const site of wanted) {
      const name = site.metadata.name;
      const specText = JSON.stringify(site.spec);
      const cur = this.running.get(name);
      if (cur && cur.spec === specText) continue;
      if (cur) await this.stopSite(name, 'Site spec changed');
      await this.startSite(site, specText);
    }
    this.o.onChange();
  }

  private kubeconfigFile(name: string, spec: SiteSpec): string {
    const ref = spec.kubeconfig;
    if (!ref)
      throw new Error(
        'spec.kubeconfig is missing; fix: set kubeconfig: { path: /etc/bulwark/dc1.kubeconfig }',
      );
    if ('path' in ref) return ref.path;
    const text = (this.o.env ?? process.env)[ref.env];
    if (!text) {
      throw new Error(
        `spec.kubeconfig.env: environment variable ${ref.env} is not set in the control plane; fix: export it before starting the control plane, or use kubeconfig.path`,
      );
    }
    // The driver reads files; a private copy (0600) under the data dir, never in the store.
    const dir = path.join(this.o.dataDir, 'sites', name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, 'kubeconfig');
    writeFileSync(file, text, { mode: 0o600 });
    chmodSync(file, 0o600);
    return file;
  }

  private async startSite(site: SiteResource, specText: string): Promise<void> {
    const name = site.metadata.name;
    const log = this.o.log.child({ component: 'site', site: name });
    let driver: KubernetesSiteDriver;
    try {
      const file = this.kubeconfigFile(name, site.spec);
      driver = (this.o.factory ?? defaultKubernetesDriverFactory)({
        site: name,
        kubeconfigPath: file,
        ...(site.spec.context ? { context: site.spec.context } : {}),
        ...(site.spec.bindBeforeStart ? { bindBeforeStart: true } : {}),
      });
    } catch (err) {
      const msg = redactSecrets((err as Error).message);
      this.failed.set(name, msg);
      log.error({ err: msg }, 'cannot start kubernetes site');
      await this.writeStatus(name, undefined, msg);
      return;
    }
    this.failed.delete(name);
    const h = { ...DEFAULTS.siteHealth, ...site.spec.health };
    const health = new SiteHealth(
      { failureThreshold: h.failureThreshold, failbackAfterMs: h.failbackAfterMs },
      Date.now(),
    );
    const dataplane = new ServiceDataPlane(name);
    const shared = this.o.reconciler(name);
    const r: Running = {
      spec: specText,
      driver,
      health,
      started: false,
      stopped: false,
      lastWrite: 0,
      intervalMs: h.intervalMs,
      timeoutMs: h.timeoutMs,
      handle: undefined as unknown as SiteHandle,
      ...(driver.status ? { server: driver.status().server } : {}),
    };
    const reconciler = new SiteReconciler({
      store: this.o.store,
      site: name,
      driver,
      dataplane,
      log: log.child({ component: 'reconciler' }),
      parseMemory,
      ...shared,
      pausedReason: () => {
        if (!r.started)
          return r.startError
            ? `driver not started: ${r.startError}`
            : 'driver starting (listing the cluster)';
        const state = r.health.state;
        return isUsable(state) ? undefined : `site ${state}`;
      },
    });
    r.handle = { name, driver, dataplane, reconciler };
    this.running.set(name, r);
    this.o.sites.set(name, r.handle);
    log.info({ server: r.server, context: site.spec.context }, 'kubernetes site registered');
    reconciler.start();
    this.startDriver(name, r, log);
    this.scheduleProbe(name, r, log, 0);
  }

  /** The driver lists the cluster before the reconciler may act (so nothing is started twice). */
  private startDriver(name: string, r: Running, log: Logger): void {
    const attempt = (delay: number): void => {
      if (r.stopped) return;
      r.driver
        .start()
        .then(() => {
          r.started = true;
          delete r.startError;
          log.info({}, 'driver started');
          r.handle.reconciler.trigger();
          this.o.onChange();
        })
        .catch((err: unknown) => {
          r.startError = redactSecrets((err as Error).message);
          log.warn({ err: r.startError, retryInMs: delay }, 'driver start failed; retrying');
          const t = setTimeout(() => attempt(Math.min(delay * 2, 10_000)), delay);
          t.unref();
        });
    };
    attempt(1000);
  }

  private scheduleProbe(name: string, r: Running, log: Logger, delay: number): void {
    if (r.stopped) return;
    r.timer = setTimeout(() => {
      const t0 = Date.now();
      r.probing = this.probe(name, r, log).finally(() => {
        r.probing = undefined;
        // Start to start: a timed-out probe does not stretch the cadence, so detection
        // takes about failureThreshold x intervalMs (+ one timeout), not x (interval + timeout).
        this.scheduleProbe(name, r, log, Math.max(0, r.intervalMs - (Date.now() - t0)));
      });
    }, delay);
    r.timer.unref();
  }

  private async probe(name: string, r: Running, log: Logger): Promise<void> {
    const t0 = performance.now();
    let result: { ok: true } | { ok: false; error: string };
    try {
      const h = await Promise.race([
        r.driver.health(r.timeoutMs),
        new Promise<{ ok: false; message: string }>((resolve) => {
          const t = setTimeout(
            () => resolve({ ok: false, message: `no answer within ${r.timeoutMs} ms` }),
            r.timeoutMs + 50,
          );
          t.unref();
        }),
      ]);
      result = h.ok ? { ok: true } : { ok: false, error: redactSecrets(h.message) };
    } catch (err) {
      result = { ok: false, error: redactSecrets((err as Error).message) };
    }
    if (r.stopped) return;
    const now = Date.now();
    const t = r.health.record(result, now, Math.round(performance.now() - t0));
    if (t) {
      r.lastReason = t.reason;
      this.logTransition(log, t);
      this.o.onChange();
    }
    if (t || now - r.lastWrite >= STATUS_REFRESH_MS) {
      r.lastWrite = now;
      await this.writeStatus(name, r).catch((err: unknown) =>
        log.warn({ err: (err as Error).message }, 'cannot write site status'),
      );
    }
  }

  private logTransition(log: Logger, t: Transition): void {
    const line = { from: t.from, to: t.to, reason: t.reason, at: new Date(t.at).toISOString() };
    if (t.to === 'unreachable') log.warn(line, 'site unreachable: its share moves to the other sites');
    else log.info(line, `site ${t.to}`);
  }

  private async writeStatus(name: string, r: Running | undefined, configError?: string): Promise<void> {
    const key = { kind: 'Site' as const, project: '', name };
    const cur = await this.o.store.get(key);
    if (!cur) return;
    const nowIso = new Date().toISOString();
    let conditions: Condition[] = (cur.status as SiteStatus | undefined)?.conditions ?? [];
    const status: SiteStatus = { conditions };
    if (!r) {
      conditions = setCondition(conditions, 'Reachable', 'False', 'ConfigInvalid', configError ?? '', nowIso);
      conditions = setCondition(conditions, 'Ready', 'False', 'ConfigInvalid', configError ?? '', nowIso);
      await this.o.store.updateStatus(key, {
        ...status,
        conditions,
        observedGeneration: cur.metadata.generation ?? 0,
      });
      return;
    }
    const s = r.health.snapshot();
    const probeIso = s.lastProbeAt ? new Date(s.lastProbeAt).toISOString() : nowIso;
    const reachable = s.consecutiveFailures === 0 && s.lastProbeAt !== undefined;
    conditions = setCondition(
      conditions,
      'Reachable',
      s.lastProbeAt === undefined ? 'Unknown' : reachable ? 'True' : 'False',
      s.lastProbeAt === undefined ? 'NotProbedYet' : reachable ? 'ProbeSucceeded' : 'ProbeFailed',
      reachable ? `API server answered in ${s.lastProbeMs ?? 0} ms` : (s.lastError ?? 'not probed yet'),
      nowIso,
    );
    const failbackAt = r.health.failbackAt();
    const ready: [Condition['status'], string, string] =
      s.state === 'healthy'
        ? ['True', 'Healthy', 'placement gives this site its share']
        : s.state === 'unknown'
          ? ['Unknown', 'NotProbedYet', 'counted as usable until the first probes say otherwise']
          : s.state === 'unreachable'
            ? [
                'False',
                'Unreachable',
                `${r.lastReason ?? 'probes failed'}; its share runs on the other sites`,
              ]
            : [
                'False',
                'FailbackPending',
                `answering again since ${new Date(s.since).toISOString()}; gets its share back at ${new Date(failbackAt ?? 0).toISOString()} if every probe until then answers`,
              ];
    conditions = setCondition(conditions, 'Ready', ready[0], ready[1], ready[2], nowIso);
    conditions = conditions.map((c) =>
      c.type === 'Reachable' || c.type === 'Ready' ? { ...c, lastProbeTime: probeIso } : c,
    );
    await this.o.store.updateStatus(key, {
      conditions,
      observedGeneration: cur.metadata.generation ?? 0,
      health: {
        state: s.state,
        since: new Date(s.since).toISOString(),
        consecutiveFailures: s.consecutiveFailures,
        ...(s.lastProbeAt ? { lastProbeTime: probeIso } : {}),
        ...(s.lastProbeMs !== undefined ? { lastProbeMs: s.lastProbeMs } : {}),
        ...(failbackAt ? { failbackAt: new Date(failbackAt).toISOString() } : {}),
      },
      ...(r.server ? { server: r.server } : {}),
    });
  }

  private async stopSite(name: string, why: string): Promise<void> {
    const r = this.running.get(name);
    if (!r) return;
    r.stopped = true;
    if (r.timer) clearTimeout(r.timer);
    this.running.delete(name);
    this.o.sites.delete(name);
    await r.handle.reconciler.stop();
    await r.probing;
    await r.driver.close({ stopInstances: false }).catch(() => undefined);
    this.o.log.info({ site: name, why }, 'kubernetes site stopped');
  }

  /** The drivers of the running sites (node agents there report flows to attribute with them). */
  drivers(): { name: string; driver: KubernetesSiteDriver }[] {
    return [...this.running].filter(([, r]) => !r.stopped).map(([name, r]) => ({ name, driver: r.driver }));
  }

  status(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, r] of this.running) {
      const s = r.health.snapshot();
      out[name] = {
        kind: 'kubernetes',
        server: r.server,
        driverStarted: r.started,
        ...(r.startError ? { driverStartError: r.startError } : {}),
        health: { ...s, ...(r.health.failbackAt() ? { failbackAt: r.health.failbackAt() } : {}) },
        reconciler: r.handle.reconciler.status(),
        dataplane: (r.handle.dataplane as ServiceDataPlane).status(),
      };
    }
    for (const [name, err] of this.failed) out[name] = { kind: 'kubernetes', error: err };
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.syncing;
    for (const name of [...this.running.keys()]) await this.stopSite(name, 'control plane stopping');
  }
}
