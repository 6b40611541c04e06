/**
 * The resource model: what users declare (spec) and what controllers report
 * (status). Every persisted resource has the same envelope so the store, the
 * API and the change stream treat all kinds alike.
 */

import type { RuleInput } from '../isolation/signatures/types.ts';

export const API_VERSION = 'bulwark.io/v1' as const;

export type Kind = 'Site' | 'Project' | 'App';

export interface Metadata {
  /** DNS-label name: lowercase letters, digits and '-', 1..63 chars. */
  name: string;
  /** Project the resource belongs to. Required for App, absent for Site and Project. */
  project?: string;
  labels?: Record<string, string>;
  /** Set by the server: bumps each time the spec changes. */
  generation?: number;
  /** Set by the server: bumps on every write (spec or status); used for optimistic concurrency. */
  resourceVersion?: number;
  createdAt?: string;
  updatedAt?: string;
}

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** Kubernetes-style condition: the controllers' explanation of what they see. */
export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  lastTransitionTime: string;
  /** When the condition was last checked (health probes), even when it did not change. */
  lastProbeTime?: string;
}

// ---------------------------------------------------------------- Site

/**
 * Where a Kubernetes site's kubeconfig comes from. Only a reference is stored: the file (or
 * the control plane's environment variable) holds the credentials, never the Site resource.
 */
export type KubeconfigRef = { path: string } | { env: string };

/** How the control plane decides whether a site is usable. */
export interface SiteHealthSpec {
  /** Time between health probes. @default 1000 */
  intervalMs?: number;
  /** One probe's timeout. @default 800 */
  timeoutMs?: number;
  /** Consecutive failed probes before the site is unreachable and its share moves. @default 3 */
  failureThreshold?: number;
  /** How long a returning site must stay healthy before it gets its share back (hysteresis). @default 30000 */
  failbackAfterMs?: number;
}

export interface SiteSpec {
  /** `local`: this machine's runtime driver. `kubernetes`: a cluster reached through its API server. */
  kind: 'local' | 'kubernetes';
  /** Human-readable data-center name, e.g. "Shanghai DC1". */
  displayName?: string;
  /** Port of the site's HAProxy HTTP gateway (local sites only). */
  gatewayPort?: number;
  /** Kubernetes sites: the kubeconfig to use (required for kind kubernetes). */
  kubeconfig?: KubeconfigRef;
  /** Kubernetes sites: the kubeconfig context; default: its current-context. */
  context?: string;
  /**
   * Kubernetes sites: pods start only once bound to an instance, so they see
   * BULWARK_INSTANCE_ID; the cost is that no pod starts while no control plane
   * runs (docs/kubernetes.md). Default false.
   */
  bindBeforeStart?: boolean;
  health?: SiteHealthSpec;
}

export type SiteHealthState = 'unknown' | 'healthy' | 'unreachable' | 'recovering';

export interface SiteStatus {
  conditions: Condition[];
  gateway?: { url: string };
  observedGeneration?: number;
  /** Live health of the site as the control plane's probes see it. */
  health?: {
    state: SiteHealthState;
    /** When the site entered `state`. */
    since: string;
    consecutiveFailures: number;
    lastProbeTime?: string;
    lastProbeMs?: number;
    /** Recovering sites: when they take their share back. */
    failbackAt?: string;
  };
  /** Kubernetes sites: the API server in use (never credentials). */
  server?: string;
}

// ---------------------------------------------------------------- Project

export interface ProjectSpec {
  /** Tenant (department) the team belongs to. */
  tenant: string;
  displayName?: string;
}

export interface ProjectStatus {
  conditions: Condition[];
  observedGeneration?: number;
}

// ---------------------------------------------------------------- App

export type WorkloadType = 'service' | 'stateful' | 'job';

export interface HttpProbe {
  http: { path: string; port: string };
}
export interface TcpProbe {
  tcp: { port: string };
}
export interface ExecProbe {
  exec: { command: string[] };
}
export type ProbeAction = HttpProbe | TcpProbe | ExecProbe;

export type Probe = ProbeAction & {
  /** @default 1000 */
  intervalMs?: number;
  /** @default 1000 */
  timeoutMs?: number;
  /** Consecutive failures before the probe is failing. @default 3 */
  failureThreshold?: number;
  /** Consecutive successes before the probe is passing. @default 1 */
  successThreshold?: number;
  /** @default 0 */
  initialDelayMs?: number;
};

export interface PortSpec {
  /** Name used by probes and routing, e.g. "http". */
  name: string;
  /** Port the instance listens on inside its network namespace (or a hint on loopback). */
  port: number;
  /** Only http is routed by the gateway for now. @default "http" */
  protocol?: 'http' | 'tcp';
  /**
   * How long the gateway waits for an instance's response before giving up on it and, for
   * a retryable request, asking another instance. Bounds what a hung instance costs the
   * requests it holds. @default 5000
   */
  timeoutMs?: number;
}

export interface Resources {
  /** CPU limit in cores, e.g. 0.5. */
  cpu?: number;
  /** Memory limit, e.g. "128Mi", "1Gi". */
  memory?: string;
}

export interface PlacementSite {
  name: string;
  /** Relative share: of traffic (strategy replicate) or of replicas (strategy spread). @default 100 */
  weight?: number;
  /** Strategy spread: replicas this site always gets while it is healthy. @default 0 */
  minReplicas?: number;
}

/**
 * `replicate` (the default, and what manifests without a strategy mean): every placed site
 * runs each workload's full `replicas`. `spread`: `replicas` is the total across the sites,
 * split by weight with per-site minimums; an unreachable site's share moves to the others.
 */
export type PlacementStrategy = 'replicate' | 'spread';

export interface Placement {
  /** @default "replicate" */
  strategy?: PlacementStrategy;
  sites: PlacementSite[];
}

export interface Workload {
  name: string;
  type: WorkloadType;
  /** @default 1 */
  replicas?: number;
  /** Command line for the local runtime (argv form). */
  run?: { command: string[]; cwd?: string };
  /** Container image for the Kubernetes driver. */
  image?: string;
  ports?: PortSpec[];
  env?: Record<string, string>;
  health?: { readiness?: Probe; liveness?: Probe };
  resources?: Resources;
  /** @default "Always" for service/stateful, "OnFailure" for job */
  restartPolicy?: 'Always' | 'OnFailure' | 'Never';
  /** Grace period between SIGTERM and SIGKILL. @default 10000 */
  terminationGracePeriodMs?: number;
}

export interface IsolationPolicy {
  /** @default true */
  enabled?: boolean;
  /** @default 1 */
  minHealthy?: number;
  /** @default 3 */
  maxIsolationsPerMinute?: number;
  /** @default 0.5 */
  massFaultRatio?: number;
  quarantine?: { cpu?: number; memoryFactor?: number; maxInstances?: number; ttlSeconds?: number };
  evidence?: { profile?: boolean; profileDurationMs?: number };
  signatures?: RuleInput[];
}

export interface AppSpec {
  workloads: Workload[];
  placement?: Placement;
  isolation?: IsolationPolicy;
}

export interface WorkloadStatus {
  name: string;
  replicas: number;
  readyReplicas: number;
  instances: InstanceSummary[];
}

export interface InstanceSummary {
  id: string;
  site: string;
  phase: string;
  ready: boolean;
  address?: string;
  pid?: number;
  restarts: number;
  lastExitReason?: string;
}

/** Where an App's replicas run and why, as decided by placement. */
export interface AppPlacementStatus {
  strategy: PlacementStrategy;
  sites: {
    name: string;
    /** The site's health as placement used it. */
    state: SiteHealthState;
    /** Replicas per workload this site is asked to run now. */
    replicas: Record<string, number>;
    /** Why the site has this share (e.g. "unreachable since ...: share moved to dc1, dc3"). */
    reason: string;
  }[];
  /** The last time the split changed, and why. */
  lastChange?: { at: string; reason: string };
}

export interface AppStatus {
  conditions: Condition[];
  observedGeneration?: number;
  workloads?: WorkloadStatus[];
  placement?: AppPlacementStatus;
}

// ---------------------------------------------------------------- envelope

export interface ResourceOf<K extends Kind, S, St> {
  apiVersion: typeof API_VERSION;
  kind: K;
  metadata: Metadata;
  spec: S;
  status?: St;
}

export type SiteResource = ResourceOf<'Site', SiteSpec, SiteStatus>;
export type ProjectResource = ResourceOf<'Project', ProjectSpec, ProjectStatus>;
export type AppResource = ResourceOf<'App', AppSpec, AppStatus>;
export type Resource = SiteResource | ProjectResource | AppResource;

/** Identity of a resource in the store. Site and Project are cluster-scoped (project = ''). */
export interface ResourceKey {
  kind: Kind;
  project: string;
  name: string;
}

export function keyOf(r: Resource): ResourceKey {
  return { kind: r.kind, project: r.metadata.project ?? '', name: r.metadata.name };
}

export function formatKey(k: ResourceKey): string {
  return k.project ? `${k.kind}/${k.project}/${k.name}` : `${k.kind}/${k.name}`;
}
