/**
 * KubernetesDriver: the RuntimeDriver seam on a Kubernetes cluster.
 *
 * ```ts
 * const driver = new KubernetesDriver({ site: 'dc1', kubeconfigPath: '/etc/bulwark/dc1.kubeconfig' });
 * // or: new KubernetesDriver({ site: 'dc1', connection: { server, token, caCertPem } })
 * const h = await driver.health();      // { ok, message, latencyMs } - does the API server answer?
 * await driver.start();                  // informers listed and watching (ensure() also starts it)
 * await driver.ensure(spec);             // spec.image is what runs; spec.command is ignored here
 * ```
 *
 * Mapping (docs/kubernetes.md has the full story):
 * - a Namespace per project (`<namespacePrefix><project>`), per workload a Deployment (service),
 *   StatefulSet (stateful) or Indexed Job (job), a Service and a PodDisruptionBudget, all written
 *   with server-side apply under the field manager (`bulwark`), labelled `app.kubernetes.io/*`
 *   and annotated `bulwark.io/owner: <site>/<project>/<app>`;
 * - the ensured instances of a workload live in the workload object's `bulwark.io/instances`
 *   annotation (so a restarted driver recovers them) and set its replicas;
 * - pods are bound to instance ids by the `bulwark.io/instance-id` annotation (binding.ts);
 * - quarantine relabels the pod (`bulwark.io/pool: quarantined`) so neither the Service nor the
 *   ReplicaSet selects it: the ReplicaSet starts a replacement, the EndpointSlice drops the pod,
 *   the pod keeps running;
 * - deletion goes through the garbage collector (propagationPolicy Background).
 *
 * Status flows back through informers (LIST + WATCH, 410 relist, periodic resync) on pods and
 * the three workload kinds, all filtered to `app.kubernetes.io/managed-by=bulwark` and this site,
 * and on the kubelet's `Killing` events (a liveness kill is only said there).
 */
import type {
  DriverCapabilities,
  DriverEvent,
  InstanceSpec,
  InstanceStatus,
  LogListener,
  LogQuery,
  QuarantineOptions,
  RuntimeDriver,
  InstanceStats,
} from '../driver.ts';
import { bindPods } from './binding.ts';
import { KubeApiError, KubeClient, type KindName } from './client.ts';
import { Informer, type InformerStatus, type ListWatcher } from './informer.ts';
import { KubeCredentials } from './credentials.ts';
import type { KubeConnection, KubeSource } from './kubeconfig.ts';
import {
  ANNOTATION,
  BIND_GATE,
  LABEL,
  MANAGER,
  POOL,
  labelValue,
  namespaceName,
  workloadName,
} from './names.ts';
import {
  decodeInstances,
  renderNamespace,
  renderPdb,
  renderService,
  renderWorkload,
  templateHash,
  workloadKind,
  workloadType,
  type InstanceEntry,
  type WorkloadKind,
  type WorkloadState,
} from './render.ts';
import { instanceStatus } from './status.ts';
import type { KubeObject, Pod, WorkloadObject } from './types.ts';

export interface KubernetesDriverOptions {
  /** The Bulwark Site this cluster is; every object is labelled `bulwark.io/site=<site>`. */
  site: string;
  /** A kubeconfig file; its current context (or `context`) is used. */
  kubeconfigPath?: string;
  context?: string;
  /** Or the connection parts directly (takes precedence over kubeconfigPath). */
  connection?: KubeConnection;
  /**
   * Or the pod's in-cluster config (service-account token, re-read as it rotates);
   * `root` prefixes /var/run/secrets/kubernetes.io/serviceaccount (tests).
   */
  inCluster?: { root?: string };
  /** Server-side apply field manager. @default "bulwark" */
  fieldManager?: string;
  /** Project namespaces are `<namespacePrefix><project>`. @default "bulwark-" */
  namespacePrefix?: string;
  /** Informer relist period. @default 60000 */
  resyncMs?: number;
  /**
   * Bind each pod to its instance before it starts, so the container gets BULWARK_INSTANCE_ID:
   * pod templates carry the scheduling gate `bulwark.io/instance-id`, which the driver removes
   * once the binding annotation is written (the env var comes from that annotation through
   * the downward API, resolved when the container is created). The cost: a pod no instance
   * is bound to does not start (a quarantine's replacement waits for the controller to ensure
   * the new instance instead of starting at once), nor do new pods while no driver runs.
   * @default false
   */
  bindBeforeStart?: boolean;
  /** Per-request timeout. @default 15000 */
  requestTimeoutMs?: number;
  /** Extra time `remove` waits beyond the grace period for the pod to be gone. @default 15000 */
  removeWaitMs?: number;
  onError?: (err: Error) => void;
}

export interface KubernetesHealth {
  ok: boolean;
  /** `API server v1.36.3 answered in 4 ms`, or why it did not. */
  message: string;
  latencyMs?: number;
  version?: string;
}

export interface KubernetesDriverStatus {
  site: string;
  server: string;
  started: boolean;
  workloads: number;
  instances: number;
  informers: Record<string, InformerStatus>;
}

const WORKLOAD_KINDS: WorkloadKind[] = ['Deployment', 'StatefulSet', 'Job'];
const wkey = (ns: string, kind: WorkloadKind, name: string): string => `${ns}/${kind}/${name}`;
/** Deletion cost of a pod remove() hands to its ReplicaSet: below every other pod (serving 100, others -100). */
const REMOVE_COST = '-1000';
/** pods/log `stream` values (PodLogsQuerySplitStreams). */
const LOG_STREAM = { stdout: 'Stdout', stderr: 'Stderr' } as const;
const SPLIT_GATE = 'PodLogsQuerySplitStreams';
const INTERLEAVED = `stdout and stderr arrive interleaved from pods/log and are reported as stdout`;
/** On every cluster, started or not. */
const NO_PIDS = { available: false, reason: 'the Kubernetes API exposes no container PID' };

/** `2026-12-07T20:59:01.123456789Z` (RFC 3339, any fraction) -> ns since the epoch; undefined if not one. */
export function timestampNs(ts: string): bigint | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(ts);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

/**
 * Why a per-stream pods/log request was refused for the feature gate, or undefined for any
 * other error. The API server without the gate rejects `stream` in validation (422, before it
 * looks the pod up); with it but a kubelet without it, the kubelet's 400 says to enable it.
 */
export function splitLogsUnsupported(err: unknown): string | undefined {
  if (!(err instanceof KubeApiError)) return undefined;
  if (err.status === 422 && /stream: Forbidden: may not be specified/i.test(err.message))
    return `the API server does not have the ${SPLIT_GATE} feature gate (alpha, off by default up to 1.36; set --feature-gates=${SPLIT_GATE}=true on kube-apiserver and kubelets): ${INTERLEAVED}`;
  if (err.status === 400 && err.message.includes(SPLIT_GATE))
    return `a kubelet does not have the ${SPLIT_GATE} feature gate (set featureGates: {${SPLIT_GATE}: true} in its KubeletConfiguration): ${INTERLEAVED}`;
  return undefined;
}

/**
 * Where a log follow is, by the kubelet's line timestamps (ns): the newest delivered and how
 * many lines carried exactly that stamp (lines of one write can share one). A connection
 * replays from `sinceTime` (rounded down to the second): `take` drops what came before the
 * cursor and the lines at its stamp already delivered, and passes every line after.
 */
export class LogCursor {
  /** Newest stamp delivered (at first: when the follow began), and lines delivered with it. */
  private at: bigint;
  private atCount = 0;
  /** The cursor when this connection began, and lines at that stamp skipped in it so far. */
  private from: bigint;
  private fromCount = 0;
  private skipped = 0;

  constructor(start: bigint) {
    this.at = start;
    this.from = start;
  }

  /** A (re)connection begins: the `sinceTime` to ask for. */
  connect(): string {
    this.from = this.at;
    this.fromCount = this.atCount;
    this.skipped = 0;
    return new Date(Number(this.at / 1_000_000n)).toISOString();
  }

  /** Whether the line stamped `ns` is new (then it counts as delivered). */
  take(ns: bigint): boolean {
    if (ns < this.from) return false;
    if (ns === this.from && this.skipped < this.fromCount) {
      this.skipped++;
      return false;
    }
    if (ns === this.at) this.atCount++;
    else if (ns > this.at) {
      this.at = ns;
      this.atCount = 1;
    }
    return true;
  }
}

export class KubernetesDriver implements RuntimeDriver {
  readonly kind = 'kubernetes' as const;
  readonly client: KubeClient;
  private readonly o: KubernetesDriverOptions & { namespacePrefix: string; fieldManager: string };
  private readonly workloads = new Map<string, WorkloadState>();
  private readonly byId = new Map<string, string>();
  private readonly last = new Map<string, string>();
  private readonly listeners = new Set<(ev: DriverEvent) => void>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly namespaces = new Set<string>();
  /** Pod bindings being written: `<ns>/<pod>` -> the instance id and the write. */
  private readonly pendingBinds = new Map<string, { id: string; done: Promise<unknown> }>();
  private readonly followers = new Set<AbortController>();
  /** Pods whose scheduling gate is being removed (`<ns>/<pod>`). */
  private readonly ungating = new Set<string>();
  private pods: Informer<Pod> | undefined;
  /** The kubelet's "failed liveness probe" kills by pod uid (epoch ms), from Killing events. */
  private readonly livenessKills = new Map<string, number[]>();
  private events: Informer<KubeObject> | undefined;
  private workloadInformers = new Map<WorkloadKind, Informer<WorkloadObject>>();
  private starting: Promise<void> | undefined;
  private caps: DriverCapabilities = {
    networkNamespaces: { available: false, reason: 'not started: the cluster has not been asked yet' },
    cgroups: { available: false, reason: 'not started' },
    pids: NO_PIDS,
  };

  /** Passive: reads and checks the kubeconfig, builds the client; no request until start()/health(). */
  constructor(opts: KubernetesDriverOptions) {
    if (!opts.site) throw new Error('site is required: the Bulwark Site name of this cluster');
    const source: KubeSource = opts.connection
      ? { kind: 'static', connection: opts.connection }
      : opts.kubeconfigPath
        ? {
            kind: 'kubeconfig',
            path: opts.kubeconfigPath,
            ...(opts.context ? { context: opts.context } : {}),
          }
        : opts.inCluster
          ? { kind: 'in-cluster', ...(opts.inCluster.root ? { root: opts.inCluster.root } : {}) }
          : (() => {
              throw new Error(
                `site ${opts.site}: set kubeconfigPath, inCluster or connection {server, token, caCertPem}`,
              );
            })();
    this.o = { namespacePrefix: 'bulwark-', fieldManager: MANAGER, ...opts };
    this.client = new KubeClient(new KubeCredentials(source), {
      fieldManager: this.o.fieldManager,
      ...(opts.requestTimeoutMs ? { requestTimeoutMs: opts.requestTimeoutMs } : {}),
    });
  }

  static async create(opts: KubernetesDriverOptions): Promise<KubernetesDriver> {
    const d = new KubernetesDriver(opts);
    await d.start();
    return d;
  }

  /** Does the API server answer (GET /readyz, then /version)? Never throws. */
  async health(timeoutMs = 3000): Promise<KubernetesHealth> {
    const t0 = performance.now();
    try {
      await this.client.request('GET', '/readyz', { raw: true, timeoutMs });
      const v = await this.client.request<{ gitVersion?: string }>('GET', '/version', { timeoutMs });
      const latencyMs = Math.round(performance.now() - t0);
      return {
        ok: true,
        message: `API server ${v?.gitVersion ?? ''} answered in ${latencyMs} ms`.replace('  ', ' '),
        latencyMs,
        ...(v?.gitVersion ? { version: v.gitVersion } : {}),
      };
    } catch (err) {
      return {
        ok: false,
        message: `API server ${this.client.server} does not answer: ${(err as Error).message}`,
      };
    }
  }

  /** List and watch (idempotent); resolves once the caches are filled. */
  start(): Promise<void> {
    this.starting ??= this.doStart().catch((err: unknown) => {
      this.starting = undefined;
      throw err;
    });
    return this.starting;
  }

  private selector(): string {
    return `${LABEL.managedBy}=${MANAGER},${LABEL.site}=${labelValue(this.o.site)}`;
  }

  private lw<T extends KubeObject>(kind: KindName): ListWatcher<T> {
    const labelSelector = this.selector();
    return {
      list: () => this.client.list<T>(kind, undefined, { labelSelector }),
      watch: (resourceVersion, onEvent, signal) =>
        this.client.watch<T>(
          kind,
          undefined,
          { labelSelector, resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 300 },
          onEvent,
          signal,
        ),
    };
  }

  private async doStart(): Promise<void> {
    await this.detectCapabilities();
    const opts = {
      resyncMs: this.o.resyncMs ?? 60_000,
      ...(this.o.onError ? { onError: this.o.onError } : {}),
    };
    for (const kind of WORKLOAD_KINDS) {
      const inf = new Informer<WorkloadObject>(this.lw(kind), (ev) => this.onWorkloadObject(kind, ev), opts);
      this.workloadInformers.set(kind, inf);
    }
    this.pods = new Informer<Pod>(this.lw('Pod'), (ev) => this.onPod(ev.object), opts);
    // Workloads first, so the pods that arrive next find their instance entries.
    await Promise.all([...this.workloadInformers.values()].map((i) => i.start()));
    await this.pods.start();
    for (const k of this.workloads.keys()) this.refresh(k);
    await this.startEvents(opts);
  }

  /**
   * Why a container restarted is not in its status: a liveness kill ends as Completed or
   * Error like any exit. The kubelet says it in a `Killing` event ("... failed liveness
   * probe, will be restarted"), recorded before the restart, so an informer on those events
   * lets the status say liveness-failed. Optional: without permission to read events
   * cluster-wide, such restarts are reported as exits.
   */
  private async startEvents(opts: { resyncMs: number; onError?: (err: Error) => void }): Promise<void> {
    const fieldSelector = 'involvedObject.kind=Pod,reason=Killing';
    try {
      await this.client.list<KubeObject>('Event', undefined, { fieldSelector, limit: 1 });
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 403) return;
      throw err;
    }
    this.events = new Informer<KubeObject>(
      {
        list: () => this.client.list<KubeObject>('Event', undefined, { fieldSelector }),
        watch: (resourceVersion, onEvent, signal) =>
          this.client.watch<KubeObject>(
            'Event',
            undefined,
            { fieldSelector, resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 300 },
            onEvent,
            signal,
          ),
      },
      (ev) => this.onKillEvent(ev.object),
      opts,
    );
    await this.events.start();
  }

  private onKillEvent(ev: KubeObject): void {
    const e = ev as KubeObject & {
      involvedObject?: { uid?: string; namespace?: string };
      message?: string;
      lastTimestamp?: string;
      eventTime?: string;
      firstTimestamp?: string;
    };
    const uid = e.involvedObject?.uid;
    if (!uid || !/liveness probe/i.test(e.message ?? '')) return;
    if (!(e.involvedObject?.namespace ?? '').startsWith(this.o.namespacePrefix)) return;
    const at = Date.parse(e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? '');
    if (Number.isNaN(at)) return;
    const now = Date.now();
    // Events live an hour in the apiserver; so do these.
    for (const [k, v] of this.livenessKills)
      if (v.every((t) => now - t > 3_600_000)) this.livenessKills.delete(k);
    const list = this.livenessKills.get(uid) ?? [];
    if (!list.includes(at)) list.push(at);
    this.livenessKills.set(uid, list.slice(-20));
    const pod = this.pods?.list().find((p) => p.metadata.uid === uid);
    if (pod) this.onPod(pod);
  }

  /** Simulated (kwok) nodes have no containers: say so instead of failing later. */
  private async detectCapabilities(): Promise<void> {
    // Listing nodes needs a cluster-scoped permission a namespaced deployer may lack: then
    // assume real nodes (what a production cluster has) rather than refuse to start.
    const nodes = await this.client.list<KubeObject>('Node').catch((err: unknown) => {
      if (err instanceof KubeApiError && err.status === 403) return { items: [] as KubeObject[] };
      throw err;
    });
    const fake = (n: KubeObject): boolean =>
      n.metadata.annotations?.['kwok.x-k8s.io/node'] === 'fake' || n.metadata.labels?.type === 'kwok';
    const simulated = nodes.items.length > 0 && nodes.items.every(fake);
    const runtime = 'pods get them from the nodes (kubelet, container runtime and CNI), not from Bulwark';
    if (simulated) {
      const why = `every node of ${this.client.server} is kwok-simulated: pods have no container`;
      this.caps = {
        networkNamespaces: { available: false, reason: `${why}, so no network namespace` },
        cgroups: { available: false, reason: `${why}, so no cgroup` },
        processes: { available: false, reason: `${why}: nothing listens on the pod IP, exits or restarts` },
        logs: { available: false, reason: `${why}: the pods/log subresource has nothing to read` },
        pids: NO_PIDS,
        quarantineSuspendsSupervision: {
          available: false,
          reason: 'the kubelet keeps probing and restarting a quarantined pod (pod probes are immutable)',
        },
      };
    } else {
      this.caps = {
        networkNamespaces: { available: true, reason: runtime },
        cgroups: {
          available: true,
          reason: `${runtime}; quarantine cpu/memory caps are not applied (needs in-place pod resize)`,
        },
        quarantineSuspendsSupervision: {
          available: false,
          reason: 'the kubelet keeps probing and restarting a quarantined pod (pod probes are immutable)',
        },
        pids: NO_PIDS,
        logStreams: await this.probeSplitLogs(),
      };
    }
  }

  /**
   * Does the API server take `stream` on pods/log? Asked for a pod that does not exist: with
   * the gate the request passes validation and is a 404, without it a 422. The kubelets are
   * only known at the first real request (a refusal then turns the capability off).
   */
  private async probeSplitLogs(): Promise<{ available: boolean; reason: string }> {
    const ns = `${this.o.namespacePrefix}probe`.slice(0, 63);
    try {
      await this.client.request('GET', `/api/v1/namespaces/${ns}/pods/bulwark-no-such-pod/log`, {
        raw: true,
        query: { stream: LOG_STREAM.stderr },
      });
    } catch (err) {
      const why = splitLogsUnsupported(err);
      if (why) return { available: false, reason: why };
    }
    // 404 (the gate is on), or unknown (403 without permission): try per stream and fall back.
    return {
      available: true,
      reason: `pods/log takes stream=Stdout|Stderr (${SPLIT_GATE}); a kubelet without the gate turns this off at the first refusal`,
    };
  }

  capabilities(): DriverCapabilities {
    return structuredClone(this.caps);
  }

  status(): KubernetesDriverStatus {
    const informers: Record<string, InformerStatus> = {};
    if (this.pods) informers.Pod = this.pods.status();
    for (const [k, i] of this.workloadInformers) informers[k] = i.status();
    return {
      site: this.o.site,
      server: this.client.server,
      started: this.pods !== undefined,
      workloads: this.workloads.size,
      instances: this.byId.size,
      informers,
    };
  }

  // ---- state from the cluster ----

  private onWorkloadObject(kind: WorkloadKind, ev: { type: string; object: WorkloadObject }): void {
    const obj = ev.object;
    const ns = obj.metadata.namespace ?? '';
    const name = obj.metadata.labels?.[LABEL.instance] ?? obj.metadata.name;
    const key = wkey(ns, kind, name);
    // An object on its way out (deletionTimestamp set) is as good as deleted.
    if (ev.type === 'deleted' || obj.metadata.deletionTimestamp) {
      // Deleted behind our back (or by us): its instances are gone; the controller will ensure them again.
      const w = this.workloads.get(key);
      if (w && !this.locks.has(key) && (kind !== 'Job' || obj.metadata.name === this.objectName(w))) {
        for (const e of w.instances) this.forget(e.id);
        this.workloads.delete(key);
      }
      return;
    }
    if (this.workloads.has(key) && this.locks.has(key)) return; // our own write in flight
    const instances = decodeInstances(obj.metadata.annotations?.[ANNOTATION.instances]);
    let template: InstanceSpec;
    try {
      template = JSON.parse(obj.metadata.annotations?.['bulwark.io/spec'] ?? '') as InstanceSpec;
    } catch {
      return; // not written by this driver version; leave it alone
    }
    const w: WorkloadState = {
      namespace: ns,
      name,
      kind,
      site: this.o.site,
      project: template.project,
      app: template.app,
      workload: template.workload,
      template,
      templateHash: obj.metadata.labels?.[LABEL.templateHash] ?? templateHash(template),
      instances,
    };
    const cur = this.workloads.get(key);
    if (kind === 'Job' && cur && this.objectName(cur) !== obj.metadata.name) return; // an old Job being deleted
    this.workloads.set(key, w);
    for (const e of instances) this.byId.set(e.id, key);
    for (const e of cur?.instances ?? []) if (!instances.some((i) => i.id === e.id)) this.forget(e.id);
    this.refresh(key);
  }

  private onPod(pod: Pod): void {
    const ns = pod.metadata.namespace ?? '';
    const name = pod.metadata.labels?.[LABEL.instance];
    if (!name) return;
    for (const kind of WORKLOAD_KINDS)
      if (this.workloads.has(wkey(ns, kind, name))) this.refresh(wkey(ns, kind, name));
  }

  private podsOf(w: WorkloadState): Pod[] {
    return (this.pods?.list() ?? [])
      .filter((p) => p.metadata.namespace === w.namespace && p.metadata.labels?.[LABEL.instance] === w.name)
      .map((p) => {
        // A binding still being written counts as written: otherwise a refresh in that window
        // could pair the instance with another pod, and two pods would claim one instance.
        const pending = this.pendingBinds.get(`${w.namespace}/${p.metadata.name}`);
        if (!pending || p.metadata.annotations?.[ANNOTATION.instanceId] === pending.id) return p;
        return {
          ...p,
          metadata: {
            ...p.metadata,
            annotations: { ...p.metadata.annotations, [ANNOTATION.instanceId]: pending.id },
          },
        };
      });
  }

  private objectName(w: WorkloadState): string {
    return renderWorkload(w).metadata.name;
  }

  /** Recompute bindings and statuses of one workload; emit what changed; write new bindings. */
  private refresh(key: string): void {
    const w = this.workloads.get(key);
    if (!w) return;
    const pods = this.podsOf(w);
    const { bound, patches } = bindPods(w.kind, w.instances, pods, w.name);
    // An instance of an older template whose pod the rollout already removed is gone.
    const gone = w.instances.filter(
      (e) => e.templateHash !== w.templateHash && !bound.has(e.id) && !e.quarantined,
    );
    for (const e of gone) {
      w.instances = w.instances.filter((i) => i.id !== e.id);
      this.forget(e.id);
    }
    for (const e of w.instances)
      this.emitIfChanged(instanceStatus(w, e, bound.get(e.id), this.livenessKills));
    // Bound pods still gated (a binding written before the gate could be lifted): lift it.
    for (const [id, pod] of bound)
      if (
        pod.metadata.annotations?.[ANNOTATION.instanceId] === id &&
        !this.pendingBinds.has(`${w.namespace}/${pod.metadata.name}`)
      )
        this.ungate(key, pod);
    for (const p of patches) {
      const pod = pods.find((x) => x.metadata.name === p.pod);
      const k = `${w.namespace}/${p.pod}`;
      if (pod && !this.pendingBinds.has(k)) {
        const done = this.applyPod(pod, { id: p.id, pool: POOL.serving })
          .then((updated) => this.ungate(key, updated))
          .catch((err: unknown) => {
            this.o.onError?.(err as Error);
            // A quiet pod may bring no further event: try the binding again shortly.
            setTimeout(() => this.refresh(key), 1000).unref();
          })
          .finally(() => this.pendingBinds.delete(k));
        this.pendingBinds.set(k, { id: p.id, done });
      }
    }
  }

  /**
   * Remove the pod's scheduling gate (bindBeforeStart), once its binding annotation is
   * stored: the kubelet then creates the container with BULWARK_INSTANCE_ID from it. A
   * strategic merge patch: the gate came with the pod the controller created, so a server-side
   * apply of ours could not drop it.
   */
  private ungate(key: string, pod: Pod): void {
    if (!pod.spec?.schedulingGates?.some((g) => g.name === BIND_GATE)) return;
    const ns = pod.metadata.namespace ?? '';
    const k = `${ns}/${pod.metadata.name}`;
    if (this.ungating.has(k)) return;
    this.ungating.add(k);
    this.client
      .request<Pod>('PATCH', `/api/v1/namespaces/${ns}/pods/${pod.metadata.name}`, {
        contentType: 'application/strategic-merge-patch+json',
        body: { spec: { schedulingGates: [{ $patch: 'delete', name: BIND_GATE }] } },
      })
      .then((updated) => {
        this.pods?.upsert(updated);
        this.onPod(updated);
      })
      .catch((err: unknown) => {
        // Gone meanwhile is fine; anything else: the next refresh tries again.
        if (err instanceof KubeApiError && err.status === 404) return;
        this.o.onError?.(err as Error);
        setTimeout(() => this.refresh(key), 1000).unref();
      })
      .finally(() => this.ungating.delete(k));
  }

  private emitIfChanged(s: InstanceStatus): void {
    const json = JSON.stringify(s);
    if (this.last.get(s.id) === json) return;
    this.last.set(s.id, json);
    this.emit({ type: 'changed', instance: s });
  }

  private forget(id: string): void {
    this.byId.delete(id);
    if (this.last.delete(id)) this.emit({ type: 'removed', id });
  }

  private emit(ev: DriverEvent): void {
    for (const l of this.listeners) {
      try {
        l(ev);
      } catch (err) {
        this.o.onError?.(err as Error);
      }
    }
  }

  // ---- writes ----

  /** Serialise writes per workload: the instances annotation is read-modify-write. */
  private async locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const run = prev.catch(() => {}).then(fn);
    this.locks.set(key, run);
    try {
      return await run;
    } finally {
      if (this.locks.get(key) === run) this.locks.delete(key);
    }
  }

  /**
   * Everything Bulwark owns on a pod, in one apply: server-side apply drops fields the
   * manager stops stating, so the binding, the pool label and the quarantine note go
   * together every time.
   */
  private async applyPod(
    pod: Pod,
    want: {
      id: string;
      pool: string;
      quarantine?: { since: string; reason: string };
      /** Override the deletion cost the pool implies (remove() makes its pod the cheapest). */
      deletionCost?: string;
    },
  ): Promise<Pod> {
    const updated = await this.client.apply<Pod>({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: pod.metadata.name,
        namespace: pod.metadata.namespace ?? '',
        labels: { [LABEL.pool]: want.pool },
        annotations: {
          [ANNOTATION.instanceId]: want.id,
          // Bound pods are the last the ReplicaSet picks when it has one too many.
          [ANNOTATION.deletionCost]: want.deletionCost ?? (want.pool === POOL.serving ? '100' : '-100'),
          ...(want.quarantine ? { [ANNOTATION.quarantine]: JSON.stringify(want.quarantine) } : {}),
        },
      },
    });
    this.pods?.upsert(updated);
    this.onPod(updated);
    return updated;
  }

  private async ensureNamespace(ns: string, project: string): Promise<void> {
    if (this.namespaces.has(ns)) return;
    await this.client.apply(renderNamespace(this.o.namespacePrefix, ns, project, this.o.site));
    this.namespaces.add(ns);
  }

  /** Apply the Service, PDB and workload object from the state (the Service first: it is ready when pods come). */
  private async applyWorkload(w: WorkloadState): Promise<void> {
    const obj = renderWorkload(w, { bindBeforeStart: this.o.bindBeforeStart === true });
    obj.metadata.labels = { ...obj.metadata.labels, [LABEL.templateHash]: w.templateHash };
    const svc = renderService(w);
    if (svc) await this.client.apply(svc);
    const pdb = renderPdb(w);
    if (pdb) await this.client.apply(pdb);
    const applied = await this.client.apply<WorkloadObject>(obj);
    this.workloadInformers.get(w.kind)?.upsert(applied);
  }

  private async deleteWorkload(w: WorkloadState, objectName = this.objectName(w)): Promise<void> {
    // Background: the object goes now, the garbage collector removes ReplicaSets and pods after it.
    await this.client.delete(w.kind, w.namespace, objectName, { propagationPolicy: 'Background' });
    if (w.kind !== 'Job') {
      await this.client.delete('Service', w.namespace, w.name);
      await this.client.delete('PodDisruptionBudget', w.namespace, w.name);
    }
  }

  async ensure(spec: InstanceSpec): Promise<InstanceStatus> {
    await this.start();
    if (spec.site !== this.o.site)
      throw new Error(
        `instance ${spec.id}: site is "${spec.site}" but this driver runs site "${this.o.site}"`,
      );
    if (!spec.image)
      throw new Error(
        `instance ${spec.id}: image is required on Kubernetes (set workloads[].image in the manifest; run.command is for the local runtime)`,
      );
    const type = workloadType(spec);
    const kind = workloadKind(type);
    const ns = namespaceName(this.o.namespacePrefix, spec.project);
    const name = workloadName(spec.app, spec.workload);
    const key = wkey(ns, kind, name);
    const other = this.byId.get(spec.id);
    if (other && other !== key)
      throw new Error(`instance ${spec.id} already runs as ${other}; remove it before ensuring it elsewhere`);
    return this.locked(key, async () => {
      await this.ensureNamespace(ns, spec.project);
      const th = templateHash(spec);
      const cur = this.workloads.get(key);
      const existing = cur?.instances.find((e) => e.id === spec.id);
      const obj = this.workloadInformers.get(kind)?.get(`${ns}/${cur ? this.objectName(cur) : name}`);
      if (cur && existing && existing.specHash === spec.specHash && obj) return this.statusOf(key, spec.id);
      const entry: InstanceEntry = {
        id: spec.id,
        ordinal: spec.ordinal,
        specHash: spec.specHash,
        templateHash: th,
      };
      const next: WorkloadState = cur
        ? { ...cur, instances: [...cur.instances.filter((e) => e.id !== spec.id), entry] }
        : {
            namespace: ns,
            name,
            kind,
            site: spec.site,
            project: spec.project,
            app: spec.app,
            workload: spec.workload,
            template: spec,
            templateHash: th,
            instances: [entry],
          };
      const oldJob = cur && kind === 'Job' && cur.templateHash !== th ? this.objectName(cur) : undefined;
      if (!cur || cur.templateHash !== th || !obj) {
        // The newest spec is the template: a changed template is a rollout.
        next.template = spec;
        next.templateHash = th;
      }
      if (oldJob) {
        // A Job's pod template is immutable: the new template is a new Job, the old one goes.
        next.instances = next.instances.filter((e) => e.templateHash === th);
        await this.deleteWorkload({ ...cur!, kind: 'Job' }, oldJob);
      }
      this.workloads.set(key, next);
      this.byId.set(spec.id, key);
      try {
        await this.applyWorkload(next);
      } catch (err) {
        if (cur) this.workloads.set(key, cur);
        else this.workloads.delete(key);
        if (!cur?.instances.some((e) => e.id === spec.id)) this.byId.delete(spec.id);
        throw err;
      }
      this.refresh(key);
      return this.statusOf(key, spec.id);
    });
  }

  private statusOf(key: string, id: string): InstanceStatus {
    const w = this.workloads.get(key)!;
    const e = w.instances.find((i) => i.id === id)!;
    const { bound } = bindPods(w.kind, w.instances, this.podsOf(w), w.name);
    return instanceStatus(w, e, bound.get(id), this.livenessKills);
  }

  private find(
    id: string,
  ): { key: string; w: WorkloadState; e: InstanceEntry; pod: Pod | undefined } | undefined {
    const key = this.byId.get(id);
    const w = key ? this.workloads.get(key) : undefined;
    const e = w?.instances.find((i) => i.id === id);
    if (!key || !w || !e) return undefined;
    return { key, w, e, pod: bindPods(w.kind, w.instances, this.podsOf(w), w.name).bound.get(id) };
  }

  async remove(id: string): Promise<void> {
    await this.start();
    const key = this.byId.get(id);
    if (!key) return;
    await this.locked(key, async () => {
      const f = this.find(id);
      if (!f) return;
      const { w, pod } = f;
      const rest = w.instances.filter((e) => e.id !== id);
      const live = pod && !pod.metadata.deletionTimestamp ? pod : undefined;
      // A Deployment's pod: made the cheapest to delete, then the replicas lowered, so the
      // ReplicaSet itself removes exactly this pod (it ranks by deletion cost once every pod is
      // Ready). Relabelling it out first would make the ReplicaSet start a surplus pod at once
      // and delete one again when the replicas drop.
      const byController =
        live !== undefined &&
        live.metadata.labels?.[LABEL.pool] === POOL.serving &&
        w.kind === 'Deployment' &&
        rest.length > 0;
      if (live && byController)
        await this.applyPod(live, { id, pool: POOL.serving, deletionCost: REMOVE_COST });
      // Otherwise out of the Service and the controller first, so no traffic reaches it while
      // it stops and the controller cannot pick another pod to delete when replicas go down.
      if (live && !byController) await this.applyPod(live, { id, pool: POOL.removing });
      if (rest.length === 0) {
        await this.deleteWorkload(w);
        this.workloads.delete(key);
      } else {
        const next = { ...w, instances: rest };
        this.workloads.set(key, next);
        await this.applyWorkload(next);
      }
      if (live && byController && !(await this.waitPodTerminating(w.namespace, live, 5000))) {
        // The ReplicaSet chose another pod (one not Ready ranks first): take ours out as before.
        // It will replace the one it deleted, which was not serving anyway.
        await this.applyPod(live, { id, pool: POOL.removing });
      }
      const graceMs = w.template.terminationGracePeriodMs ?? 10_000;
      if (pod) {
        await this.client.delete('Pod', w.namespace, pod.metadata.name, {
          gracePeriodSeconds: Math.ceil(graceMs / 1000),
          ...(pod.metadata.uid ? { preconditions: { uid: pod.metadata.uid } } : {}),
        });
      }
      this.forget(id);
      if (pod) await this.waitPodGone(w.namespace, pod, graceMs + (this.o.removeWaitMs ?? 15_000));
    });
  }

  /** Whether the pod is being deleted (or gone) within timeoutMs, from the watch. */
  private async waitPodTerminating(ns: string, pod: Pod, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const p = this.pods?.get(`${ns}/${pod.metadata.name}`);
      if (!p || p.metadata.uid !== pod.metadata.uid || p.metadata.deletionTimestamp) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  }

  private async waitPodGone(ns: string, pod: Pod, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 1; Date.now() < deadline; i++) {
      const p = this.pods?.get(`${ns}/${pod.metadata.name}`);
      if (!p || p.metadata.uid !== pod.metadata.uid) return;
      // The watch may lag (a reconnect under load): ask the server itself now and then.
      if (i % 20 === 0) {
        const live = await this.client.tryGet<Pod>('Pod', ns, pod.metadata.name);
        if (!live || live.metadata.uid !== pod.metadata.uid) return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`pod ${ns}/${pod.metadata.name} still exists ${timeoutMs} ms after its deletion`);
  }

  get(id: string): InstanceStatus | undefined {
    const key = this.byId.get(id);
    return key && this.workloads.get(key)?.instances.some((e) => e.id === id)
      ? this.statusOf(key, id)
      : undefined;
  }

  list(): InstanceStatus[] {
    const out: InstanceStatus[] = [];
    for (const w of this.workloads.values()) {
      const { bound } = bindPods(w.kind, w.instances, this.podsOf(w), w.name);
      for (const e of w.instances) out.push(instanceStatus(w, e, bound.get(e.id), this.livenessKills));
    }
    return out;
  }

  watch(listener: (ev: DriverEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private need(id: string): { key: string; w: WorkloadState; e: InstanceEntry; pod: Pod | undefined } {
    const f = this.find(id);
    if (!f) throw new Error(`instance ${id} is not known to the Kubernetes driver of site ${this.o.site}`);
    return f;
  }

  async quarantine(id: string, opts: QuarantineOptions): Promise<InstanceStatus> {
    await this.start();
    const key = this.need(id).key;
    return this.locked(key, async () => {
      const { w, e, pod } = this.need(id);
      if (!pod) throw new Error(`instance ${id} has no pod yet; nothing to quarantine`);
      if (pod.metadata.labels?.[LABEL.pool] === POOL.quarantined && e.quarantined)
        return this.statusOf(key, id);
      // Relabel: the Service's EndpointSlice drops the pod, the ReplicaSet releases it and
      // starts a replacement; the pod itself is untouched and keeps running.
      await this.applyPod(pod, {
        id,
        pool: POOL.quarantined,
        quarantine: { since: new Date().toISOString(), reason: opts.reason },
      });
      const next = {
        ...w,
        instances: w.instances.map((i) => (i.id === id ? { ...i, quarantined: true } : i)),
      };
      this.workloads.set(key, next);
      await this.applyWorkload(next);
      return this.statusOf(key, id);
    });
  }

  async unquarantine(id: string): Promise<InstanceStatus> {
    await this.start();
    const key = this.need(id).key;
    return this.locked(key, async () => {
      const { w, e, pod } = this.need(id);
      if (!e.quarantined && pod?.metadata.labels?.[LABEL.pool] !== POOL.quarantined)
        return this.statusOf(key, id);
      const next = {
        ...w,
        instances: w.instances.map((i) => (i.id === id ? { ...i, quarantined: false } : i)),
      };
      this.workloads.set(key, next);
      await this.applyWorkload(next);
      // Back into the selector: the ReplicaSet adopts it again and, with one pod too many,
      // deletes the cheapest - the unbound replacement (deletion cost 0 < 100).
      if (pod) await this.applyPod(pod, { id, pool: POOL.serving });
      return this.statusOf(key, id);
    });
  }

  async logs(id: string, query: LogQuery = {}): Promise<string[]> {
    const { w, pod } = this.need(id);
    if (!pod) throw new Error(`instance ${id} has no pod yet, so no logs`);
    if (this.caps.logs && !this.caps.logs.available)
      throw new Error(`logs of ${id}: ${this.caps.logs.reason}`);
    const path = `/api/v1/namespaces/${w.namespace}/pods/${pod.metadata.name}/log`;
    const tail = query.tail ?? 100;
    const lines = (text: string): string[] =>
      text.split('\n').filter((l, i, a) => l !== '' || i < a.length - 1);
    const one = query.stream === 'stdout' || query.stream === 'stderr' ? query.stream : undefined;
    if (one && this.splitLogs()) {
      try {
        // `tailLines` and a single `stream` are mutually exclusive (1.36): tail here.
        const text = await this.client.request<string>('GET', path, {
          raw: true,
          query: { stream: LOG_STREAM[one] },
        });
        return lines(text).slice(-tail);
      } catch (err) {
        if (!this.noteSplitLogsUnsupported(err)) throw err;
      }
    }
    // Both streams (or no split streams on this cluster: then `stream` cannot be honoured).
    const text = await this.client.request<string>('GET', path, { raw: true, query: { tailLines: tail } });
    return lines(text);
  }

  /** Whether to ask pods/log for one stream (not known to be unsupported). */
  private splitLogs(): boolean {
    return this.caps.logStreams?.available !== false;
  }

  /**
   * A per-stream log request the cluster refused for the feature gate (the API server: 422
   * "stream: may not be specified"; a kubelet: 400 "enable PodLogsQuerySplitStreams"):
   * from now on both streams are read interleaved and reported as stdout. False for
   * other errors.
   */
  private noteSplitLogsUnsupported(err: unknown): boolean {
    const why = splitLogsUnsupported(err);
    if (!why) return false;
    this.caps = { ...this.caps, logStreams: { available: false, reason: why } };
    return true;
  }

  stats(_id: string): InstanceStats | undefined {
    // metrics.k8s.io (metrics-server) is optional and polled; not wired yet.
    return undefined;
  }

  followLogs(id: string, listener: LogListener): () => void {
    const { w, pod } = this.need(id);
    if (!pod) throw new Error(`instance ${id} has no pod yet, so no logs to follow`);
    if (this.caps.logs && !this.caps.logs.available)
      throw new Error(`logs of ${id}: ${this.caps.logs.reason}`);
    const ac = new AbortController();
    this.followers.add(ac);
    const path = `/api/v1/namespaces/${w.namespace}/pods/${pod.metadata.name}/log`;
    const t0 = BigInt(Date.now()) * 1_000_000n;
    // One follow per stream where the cluster splits them; else one of both, as stdout.
    // `stream` undefined: the interleaved follow (this loop also takes over when a split
    // request is refused). Each (re)connection asks from the cursor and drops what it has seen.
    const loop = async (stream: 'stdout' | 'stderr' | undefined, cursor: LogCursor): Promise<void> => {
      while (!ac.signal.aborted && this.byId.has(id)) {
        try {
          if (stream && !this.splitLogs()) {
            if (stream === 'stdout') return loop(undefined, cursor);
            return;
          }
          await this.streamLog(path, cursor, stream, listener, ac.signal);
        } catch (err) {
          if (stream && this.noteSplitLogsUnsupported(err)) continue;
          this.o.onError?.(err as Error);
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    };
    if (this.splitLogs()) {
      void loop('stdout', new LogCursor(t0));
      void loop('stderr', new LogCursor(t0));
    } else void loop(undefined, new LogCursor(t0));
    return () => {
      ac.abort();
      this.followers.delete(ac);
    };
  }

  /**
   * Follow one log from the cursor. `sinceTime` has one-second resolution on its way to the
   * kubelet, so lines come with the kubelet's timestamps (`timestamps=true`, RFC 3339 with
   * nanoseconds) and the cursor drops those already delivered: no line is delivered twice,
   * none printed between two connections is lost.
   */
  private streamLog(
    path: string,
    cursor: LogCursor,
    stream: 'stdout' | 'stderr' | undefined,
    listener: LogListener,
    signal: AbortSignal,
  ): Promise<void> {
    return this.client.streamLines(
      path,
      {
        follow: true,
        sinceTime: cursor.connect(),
        timestamps: true,
        ...(stream ? { stream: LOG_STREAM[stream] } : {}),
      },
      (raw) => {
        const sp = raw.indexOf(' ');
        const ns = sp > 0 ? timestampNs(raw.slice(0, sp)) : undefined;
        if (ns === undefined) return listener(stream ?? 'stdout', raw, Date.now());
        if (cursor.take(ns)) listener(stream ?? 'stdout', raw.slice(sp + 1), Date.now());
      },
      signal,
      3_600_000,
    );
  }

  async close(opts: { stopInstances?: boolean } = {}): Promise<void> {
    if (opts.stopInstances && this.starting) {
      await this.starting.catch(() => {});
      const ids = [...this.byId.keys()];
      await Promise.all(
        ids.map((id) => this.remove(id).catch((err: unknown) => this.o.onError?.(err as Error))),
      );
    }
    // Bindings in flight must land: a restarted driver reads them from the pods.
    await Promise.all([...this.pendingBinds.values()].map((b) => b.done));
    for (const f of this.followers) f.abort();
    await Promise.all([
      this.pods?.stop(),
      this.events?.stop(),
      ...[...this.workloadInformers.values()].map((i) => i.stop()),
    ]);
    this.client.close();
  }
}

export { KubeApiError };
