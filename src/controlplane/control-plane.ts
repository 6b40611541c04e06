/**
 * The one place that builds the object graph and owns its lifecycle:
 * store → token → change feed → local site (runtime driver, HAProxy data
 * plane, reconciler) → Kubernetes sites (one driver, reconciler and health
 * prober each, following the Site resources) → HTTP server. Placement decides
 * every site's share; one status writer merges the sites' views of each App.
 * Shutdown runs in reverse and is awaited.
 */
import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { PinoLogger } from '../util/logger.ts';
import { HaproxyDataPlane } from '../dataplane/haproxy/haproxy-dataplane.ts';
import { parseMemory } from '../model/defaults.ts';
import { API_VERSION, type SiteResource } from '../model/types.ts';
import { LocalDriver } from '../runtime/local/local-driver.ts';
import { openStore } from '../store/open.ts';
import type { Store } from '../store/store.ts';
import type { ApiDeps, SiteHandle } from './api/deps.ts';
import { ensureInitialToken } from './auth.ts';
import { ChangeFeed } from './change-feed.ts';
import { setCondition } from './controllers/conditions.ts';
import { SiteReconciler } from './controllers/site-reconciler.ts';
import { createLogger, type LogLevel } from '../util/logger.ts';
import { planCpus } from './cpu-plan.ts';
import { cpuCount, setAffinity } from '../util/cpus.ts';
import { TimeSlice } from '../util/time-slice.ts';
import { mkdirPrivateSync, tightenTree } from '../util/private-files.ts';
import { IsolationController } from '../isolation/controller/isolation-controller.ts';
import { siteSignalFeed } from '../isolation/controller/feed.ts';
import { rateLimited } from '../isolation/sources/base.ts';
import { buildServer } from './server.ts';
import { Observability } from '../observability/observability.ts';
import { registerAgentRoutes } from './api/agent-routes.ts';
import { registerDiagnoseRoutes } from './api/diagnose-routes.ts';
import { registerTopologyRoutes } from './api/topology-routes.ts';
import { registerTokenRoutes } from './api/token-routes.ts';
import { resolveServerTls, type ServerTls, type ServerTlsOptions } from './tls/server-tls.ts';
import { Placement } from './placement/placement.ts';
import { AppStatusWriter } from './placement/app-status-writer.ts';
import { isUsable } from './placement/site-health.ts';
import { KubernetesSites, type KubernetesDriverFactory } from './placement/kubernetes-sites.ts';
import { validateOtlpOptions, type OtlpOptions } from '../observability/otlp/exporter.ts';

export interface ControlPlaneOptions {
  /** Root for the embedded store, instance state, logs and HAProxy files. @default ".bulwark" */
  dataDir?: string;
  /** `postgres://...` to use a PostgreSQL server instead of the embedded PGlite. */
  storeUrl?: string;
  /** @default "127.0.0.1" — loopback unless told otherwise; any other address needs `tls` */
  host?: string;
  /**
   * Serve the API over HTTPS: own PEM files, or a self-signed pair generated
   * once into `<dataDir>/tls/`. Required when `host` is not loopback.
   */
  tls?: ServerTlsOptions;
  /** @default 7070; 0 picks a free port */
  port?: number;
  /** Name of the local site. @default "local" */
  siteName?: string;
  /** Port of the site's HTTP gateway (HAProxy). @default 8080 */
  gatewayPort?: number;
  /** Pin the gateway's HAProxy to these CPUs, one thread each (see RenderOptions.cpus). */
  gatewayCpus?: number[];
  /**
   * Pin this process (the control plane and the gateway's request-log
   * receiver) to these CPUs at start; with either option set the local
   * instances run on the CPUs neither uses (see cpu-plan.ts).
   */
  controlPlaneCpus?: number[];
  /** Force network namespaces and cgroups on or off; default: on when running as root on Linux. */
  privileged?: boolean;
  /** First API token to register (automation); otherwise one is generated and printed once. */
  bootstrapToken?: string;
  /** @default "info" */
  logLevel?: LogLevel;
  /** Write logs to this file instead of stdout. */
  logFile?: string;
  /** @default 5000 */
  resyncIntervalMs?: number;
  /** Called with the generated admin token on first start (show it once). */
  onInitialToken?: (token: string) => void;
  /** Export a span per gateway request to this OpenTelemetry collector (OTLP/HTTP JSON). */
  otlp?: OtlpOptions;
  /** How Kubernetes sites get their driver (tests may wrap it). Default: KubernetesDriver. */
  kubernetesDriverFactory?: KubernetesDriverFactory;
}

export class ControlPlane {
  readonly store: Store;
  readonly feed: ChangeFeed;
  readonly site: SiteHandle;
  /** Every site this control plane runs, by name: the local one and the Kubernetes ones. */
  readonly sites: ReadonlyMap<string, SiteHandle>;
  readonly kubernetesSites: KubernetesSites;
  readonly placement: Placement;
  readonly isolation: IsolationController;
  readonly server: FastifyInstance;
  readonly url: string;
  /** What the API serves over TLS (fingerprint to pin, files), undefined for plain HTTP on loopback. */
  readonly tls: Omit<ServerTls, 'cert' | 'key'> | undefined;
  readonly log: PinoLogger;
  private closed = false;

  constructor(parts: {
    store: Store;
    feed: ChangeFeed;
    site: SiteHandle;
    sites: ReadonlyMap<string, SiteHandle>;
    kubernetesSites: KubernetesSites;
    placement: Placement;
    isolation: IsolationController;
    server: FastifyInstance;
    url: string;
    tls?: ServerTls | undefined;
    log: PinoLogger;
  }) {
    this.store = parts.store;
    this.feed = parts.feed;
    this.site = parts.site;
    this.sites = parts.sites;
    this.kubernetesSites = parts.kubernetesSites;
    this.placement = parts.placement;
    this.isolation = parts.isolation;
    this.server = parts.server;
    this.url = parts.url;
    if (parts.tls) {
      // The key stays with the HTTP server; the handle only describes the certificate.
      const { cert: _c, key: _k, ...tls } = parts.tls;
      this.tls = tls;
    } else this.tls = undefined;
    this.log = parts.log;
  }

  static async create(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const dataDir = path.resolve(opts.dataDir ?? '.bulwark');
    // Before anything starts: a bad collector URL is a configuration error, not a runtime one.
    if (opts.otlp) validateOtlpOptions(opts.otlp);
    const host = opts.host ?? '127.0.0.1';
    // Before the store opens (and before the data dir is created): clear text beyond loopback,
    // or a bad certificate, is refused before any token is minted for a server that will not start.
    const tls = await resolveServerTls(opts.tls, dataDir, host);
    // Before the store, launch records (env, secrets), evidence and the gateway's sockets are
    // written: the data dir is this user's alone; an earlier version's files get the same modes
    // (the TLS pair a self-signed start just wrote there included).
    protectDataDir(dataDir);
    const cpuPlan = planCpus(cpuCount(), opts.gatewayCpus, opts.controlPlaneCpus);
    // Before the store, the driver and HAProxy start: helpers they spawn inherit the mask.
    if (opts.controlPlaneCpus) setAffinity(process.pid, opts.controlPlaneCpus);
    // Known secrets never reach a log line: the workloads' secret env values (from the isolation
    // controller's copy of the App specs, bound once it exists), the bootstrap token, the store's password.
    const fixedSecrets = [
      opts.bootstrapToken,
      ...(opts.storeUrl ? [storeUrlPassword(opts.storeUrl)] : []),
    ].filter((s): s is string => !!s);
    const workloadSecrets: { values: () => readonly string[] } = { values: () => [] };
    const log = createLogger({
      level: opts.logLevel ?? 'info',
      ...(opts.logFile ? { destination: opts.logFile } : {}),
      secrets: () => [...fixedSecrets, ...workloadSecrets.values()],
    });
    const siteName = opts.siteName ?? 'local';
    const gatewayPort = opts.gatewayPort ?? 8080;
    const store = await openStore({
      ...(opts.storeUrl ? { url: opts.storeUrl } : {}),
      dataDir: path.join(dataDir, 'store'),
    });
    const cleanups: (() => Promise<void>)[] = [() => store.close()];
    try {
      const token = await ensureInitialToken(store, opts.bootstrapToken);
      if (token) opts.onInitialToken?.(token);
      await ensureLocalSite(store, siteName, gatewayPort);

      const feed = new ChangeFeed(store);
      await feed.start();
      cleanups.unshift(() => feed.stop());

      const driver = await LocalDriver.create({
        stateDir: path.join(dataDir, 'sites', siteName, 'instances'),
        site: siteName,
        records: store,
        ...(opts.privileged !== undefined ? { privileged: opts.privileged } : {}),
        ...(cpuPlan.instances ? { cpus: cpuPlan.instances } : {}),
        // No instance sees the store, the gateway's sockets, evidence or other instances' state.
        sandbox: { hide: [dataDir] },
      });
      cleanups.unshift(() => driver.close());
      const hostIp = driver.hostIp;
      const binds = [{ address: '127.0.0.1', port: gatewayPort }];
      if (hostIp !== '127.0.0.1') binds.push({ address: hostIp, port: gatewayPort });
      const dataplane = await HaproxyDataPlane.create({
        workDir: path.join(dataDir, 'sites', siteName, 'haproxy'),
        binds,
        ...(opts.gatewayCpus ? { render: { cpus: opts.gatewayCpus } } : {}),
      });
      cleanups.unshift(() => dataplane.close());
      const sites = new Map<string, SiteHandle>();
      // Late-bound: the Kubernetes sites are created below, placement asks them for health.
      const kubeRef: { sites?: KubernetesSites } = {};
      const siteView = (name: string) =>
        name === siteName
          ? { state: 'healthy' as const, since: 0, reason: 'this machine' }
          : kubeRef.sites?.view(name);
      const placement = new Placement(
        {
          site: siteView,
          ready: (site, project, app, workload) =>
            (sites.get(site)?.driver.list() ?? []).filter(
              (i) =>
                i.project === project &&
                i.app === app &&
                i.workload === workload &&
                i.ready &&
                i.phase !== 'quarantined',
            ).length,
          log: log.child({ component: 'placement' }),
          // Kept for the operator's "what did the platform do" feed (GET /api/v1/actions).
          onAction: (action) => {
            store
              .putAction(action)
              .catch((err: unknown) =>
                log.warn(
                  { component: 'placement', action: action.id, err: String(err) },
                  'could not record action',
                ),
              );
          },
        },
        siteName,
      );
      const statusWriter = new AppStatusWriter({
        store,
        placement,
        defaultSite: siteName,
        usable: (name) => {
          const v = siteView(name);
          return v !== undefined && isUsable(v.state);
        },
      });
      const reconciler = new SiteReconciler({
        store,
        site: siteName,
        driver,
        dataplane,
        log: log.child({ component: 'reconciler', site: siteName }),
        platformEnv: { BULWARK_GATEWAY_URL: `http://${hostIp}:${gatewayPort}`, BULWARK_SITE: siteName },
        parseMemory,
        dataRoot: path.join(dataDir, 'sites', siteName, 'data'),
        ...(opts.resyncIntervalMs !== undefined ? { resyncIntervalMs: opts.resyncIntervalMs } : {}),
        replicasFor: (app) => placement.shareFor(app, siteName),
        reportStatus: statusWriter.report,
      });
      const isoLog = log.child({ component: 'isolation', site: siteName });
      // How long the isolation controller's last listing of every App took: its refreshes are
      // spaced by it (see refreshIsolation), so re-reading 10,000 Apps never takes the store's time.
      const appListing = { ms: 0 };
      const isolationStore = timedAppList(store, appListing);
      // The feed asks the controller for each instance's probe (its app's readiness probe).
      const isolation: IsolationController = new IsolationController({
        site: siteName,
        store: isolationStore,
        driver,
        dataplane,
        reconciler,
        feed: siteSignalFeed({
          site: siteName,
          driver,
          dataplane,
          probeTarget: (inst) => isolation.probeTargetOf(inst),
          onError: rateLimited((source, err) =>
            isoLog.warn({ source, err: String(err) }, 'signal source error'),
          ),
        }),
        evidenceDir: path.join(dataDir, 'sites', siteName, 'evidence'),
        log: isoLog,
      });
      workloadSecrets.values = () => isolation.secretValues();
      const site: SiteHandle = { name: siteName, driver, dataplane, reconciler };
      sites.set(siteName, site);
      const triggerAll = (): void => {
        for (const s of sites.values()) s.reconciler.trigger();
      };
      const kubeSites = new KubernetesSites({
        store,
        sites,
        dataDir,
        log: log.child({ component: 'sites' }),
        reconciler: (name) => ({
          // Inside a cluster services call each other through their Kubernetes Services.
          platformEnv: { BULWARK_SITE: name },
          ...(opts.resyncIntervalMs !== undefined ? { resyncIntervalMs: opts.resyncIntervalMs } : {}),
          replicasFor: (app) => placement.shareFor(app, name),
          reportStatus: statusWriter.report,
        }),
        onChange: triggerAll,
        ...(opts.kubernetesDriverFactory ? { factory: opts.kubernetesDriverFactory } : {}),
      });
      kubeRef.sites = kubeSites;
      const kick = (): void => {
        feed.poke();
        triggerAll();
      };
      // refresh() re-reads every App: once per burst, not once per event (a 1000-resource apply
      // is 1000 events; with 10,000 Apps that was minutes of CPU re-listing them).
      const refreshIsolation = throttled(
        () => isolation.refresh(),
        250,
        () => Math.max(2000, LISTING_SHARE * appListing.ms),
      );
      cleanups.unshift(async () => refreshIsolation.cancel());
      feed.subscribe((ev) => {
        if (ev.type === 'status') return;
        if (ev.key.kind === 'Site') void kubeSites.sync().catch(() => undefined);
        if (ev.key.kind === 'App' && ev.type === 'deleted') placement.forget(ev.key);
        triggerAll();
        if (ev.key.kind === 'App') refreshIsolation.call();
      });
      // Topology, eBPF agent, diagnosis and profiling of the local site; stopped with the HTTP server.
      const observability = Observability.create({
        site: siteName,
        driver,
        dataplane,
        // Asked every 5 s; with many Apps the listing is re-used until it is LISTING_SHARE times
        // as old as it took.
        apps: cachedFor(
          async () =>
            (await store.list('App')).map((a) => ({
              project: a.metadata.project ?? '',
              app: a.metadata.name,
            })),
          LISTING_SHARE,
        ),
        gatewayBinds: binds,
        dataDir: path.join(dataDir, 'sites', siteName),
        ...(opts.otlp ? { otlp: opts.otlp } : {}),
        otherSites: () => kubeSites.drivers(),
        onError: rateLimited((source, err) =>
          log.warn({ component: 'observability', source, err: String(err) }, 'observability error'),
        ),
      });
      const deps: ApiDeps = {
        store,
        feed,
        sites,
        kick,
        observability: observability.api(),
        isolation: {
          release: (id) => isolation.release(id),
          deleteQuarantined: (id) => isolation.deleteQuarantined(id),
          metrics: () => isolation.metrics(),
        },
        status: async () => ({
          store: store.description,
          changeFeed: feed.status(),
          sites: {
            [siteName]: {
              driver: { kind: driver.kind, capabilities: driver.capabilities(), hostIp },
              gateway: dataplane.gatewayUrl,
              dataplane: 'status' in dataplane ? (dataplane as { status(): unknown }).status() : undefined,
              reconciler: reconciler.status(),
              isolation: isolation.status(),
              observability: observability.status(),
            },
            ...kubeSites.status(),
          },
        }),
      };
      const server = await buildServer(deps, {
        logger: log,
        ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}),
        plugins: [
          (app, d) => {
            registerTopologyRoutes(app, () => d.observability);
            registerAgentRoutes(app, () => d.observability);
            registerDiagnoseRoutes(app, d, () => d.observability);
            registerTokenRoutes(app, d);
            app.addHook('onClose', async () => observability.stop());
          },
        ],
      });
      const address = await server.listen({ host, port: opts.port ?? 7070 });
      cleanups.unshift(() => server.close());
      // After listen (10,000 Apps are 10,000 status writes: health answers meanwhile), before the
      // first pass, whose fresh statuses it must not overwrite.
      await markAppsUnknown(store);
      reconciler.start();
      await isolation.start();
      cleanups.unshift(() => isolation.stop());
      await observability.start();
      await writeSiteStatus(store, siteName, driver, dataplane.gatewayUrl);
      const kube = kubeSites;
      await kube.sync();
      cleanups.unshift(() => kube.close());
      const cp = new ControlPlane({
        store,
        feed,
        site,
        sites,
        kubernetesSites: kube,
        placement,
        isolation,
        server,
        url: address,
        tls,
        log,
      });
      log.info(
        {
          url: address,
          store: store.description,
          gateway: dataplane.gatewayUrl,
          ...(tls ? { tls: { source: tls.source, fingerprint: tls.fingerprint } } : {}),
        },
        'control plane started',
      );
      return cp;
    } catch (err) {
      for (const c of cleanups) await c().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Ordered shutdown. By default instances and HAProxy keep running, so a
   * restarted control plane re-adopts them without dropping traffic;
   * `stopWorkloads` stops both (the demo's Ctrl-C).
   */
  async close(opts: { stopWorkloads?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.server.close();
    await this.isolation.stop();
    await this.kubernetesSites.close();
    await this.site.reconciler.stop();
    await this.feed.stop();
    await this.site.driver.close({ stopInstances: opts.stopWorkloads ?? false });
    await this.site.dataplane.close();
    await this.store.close();
    this.log.info({}, 'control plane stopped');
  }
}

/**
 * `fn` once `delayMs` after the first call of a burst, then at most every
 * `minIntervalMs` while calls keep coming; calls in between coalesce.
 */
function throttled(
  fn: () => void,
  delayMs: number,
  minIntervalMs: () => number,
): { call(): void; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  let lastRun = -Infinity;
  return {
    call() {
      if (timer) return;
      const wait = Math.max(delayMs, lastRun + minIntervalMs() - performance.now());
      timer = setTimeout(() => {
        timer = undefined;
        lastRun = performance.now();
        fn();
      }, wait);
      timer.unref();
    },
    cancel() {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}

/**
 * A periodic full listing of the Apps may take a 1/LISTING_SHARE share of the time at most:
 * after one that took t ms, the next waits LISTING_SHARE × t.
 */
const LISTING_SHARE = 10;

/** The store, with the duration of each `list('App')` recorded in `out.ms`. */
function timedAppList(store: Store, out: { ms: number }): Store {
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'list') {
        return async (...args: Parameters<Store['list']>) => {
          const t0 = performance.now();
          try {
            return await target.list(...args);
          } finally {
            if (args[0] === 'App') out.ms = performance.now() - t0;
          }
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** `fn`'s last result until it is `share` times as old as `fn` took (a call meanwhile gets it). */
function cachedFor<T>(fn: () => Promise<T>, share: number): () => Promise<T> {
  let last: { value: T; at: number; ms: number } | undefined;
  let running: Promise<T> | undefined;
  return async () => {
    if (last && performance.now() - last.at < share * last.ms) return last.value;
    running ??= (async () => {
      const t0 = performance.now();
      try {
        const value = await fn();
        const at = performance.now();
        last = { value, at, ms: at - t0 };
        return value;
      } finally {
        running = undefined;
      }
    })();
    return await running;
  };
}

async function ensureLocalSite(store: Store, name: string, gatewayPort: number): Promise<void> {
  const existing = await store.get({ kind: 'Site', project: '', name });
  if (existing) return;
  const site: SiteResource = {
    apiVersion: API_VERSION,
    kind: 'Site',
    metadata: { name },
    spec: { kind: 'local', displayName: 'This machine', gatewayPort },
  };
  await store.apply(site);
}

async function writeSiteStatus(
  store: Store,
  name: string,
  driver: LocalDriver,
  gatewayUrl: string,
): Promise<void> {
  const caps = driver.capabilities();
  const now = new Date().toISOString();
  const site = await store.get({ kind: 'Site', project: '', name });
  let conditions = site?.status?.conditions ?? [];
  conditions = setCondition(
    conditions,
    'Ready',
    'True',
    'RuntimeAndGatewayUp',
    `gateway at ${gatewayUrl}`,
    now,
  );
  conditions = setCondition(
    conditions,
    'Isolated',
    caps.networkNamespaces.available && caps.cgroups.available ? 'True' : 'False',
    caps.networkNamespaces.available ? 'NamespacesAndCgroups' : 'PlainProcesses',
    [
      `network namespaces: ${caps.networkNamespaces.available ? 'yes' : `no (${caps.networkNamespaces.reason})`}`,
      `cgroups: ${caps.cgroups.available ? 'yes' : `no (${caps.cgroups.reason})`}`,
    ].join('; '),
    now,
  );
  await store.updateStatus({ kind: 'Site', project: '', name }, { conditions, gateway: { url: gatewayUrl } });
}

/**
 * App conditions in the store were written by the previous process: until the first
 * reconcile pass of this one has looked at the instances, "Ready" is not known. Without
 * this, `apply --wait` right after a restart saw the old Ready=True and returned before
 * any instance was up.
 */
async function markAppsUnknown(store: Store): Promise<void> {
  const now = new Date().toISOString();
  const slice = new TimeSlice();
  for (const app of await store.list('App')) {
    await slice.yieldIfDue();
    const conditions = app.status?.conditions ?? [];
    if (!conditions.some((c) => c.type === 'Ready' && c.status !== 'Unknown')) continue;
    await store.updateStatus(
      { kind: 'App', project: app.metadata.project ?? '', name: app.metadata.name },
      {
        ...app.status,
        conditions: setCondition(
          conditions,
          'Ready',
          'Unknown',
          'ControlPlaneRestarted',
          'the control plane restarted; waiting for the first reconcile pass',
          now,
        ),
      },
    );
  }
}

/** What Bulwark itself puts in a data directory (`cli.json` and the log are `npm start`'s). */
const DATA_DIR_ENTRIES = new Set(['store', 'sites', 'tls', 'cli.json', 'control-plane.log']);

/**
 * The data directory 0700 (created so, or tightened), and what an earlier
 * version left in it with the umask's modes tightened: directories 0700,
 * files 0600. Only Bulwark's own entries are walked, and the directory
 * itself is tightened only when it holds nothing else, so a data directory
 * pointed at a shared one (`--data-dir /var/lib`) does not change others'
 * files. Instances' own data directories (`sites/<site>/data`, the
 * sandbox's `instances/volumes`) keep their modes: their uids and project
 * groups own them.
 */
function protectDataDir(dataDir: string): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const entries = readdirSync(dataDir);
  if (entries.every((n) => DATA_DIR_ENTRIES.has(n))) mkdirPrivateSync(dataDir);
  const instanceData = (p: string): boolean => {
    const rel = path.relative(dataDir, p).split(path.sep);
    return (
      rel[0] === 'sites' &&
      ((rel.length === 3 && rel[2] === 'data') ||
        (rel.length === 4 && rel[2] === 'instances' && rel[3] === 'volumes'))
    );
  };
  for (const name of entries.filter((n) => DATA_DIR_ENTRIES.has(n)))
    tightenTree(path.join(dataDir, name), { skip: instanceData });
}

function storeUrlPassword(url: string): string | undefined {
  try {
    return decodeURIComponent(new URL(url).password) || undefined;
  } catch {
    return undefined;
  }
}
