/**
 * The shapes the console reads from /api/v1. Written out here (not imported
 * from src/) so the browser bundle does not depend on server modules; the
 * fields follow the API's JSON Schemas (src/controlplane/api/*schemas.ts).
 * src/api-types.conformance.ts checks at compile time that the server's
 * types are still assignable to these, so a server change that drops or
 * retypes a field the console reads fails `npm run typecheck`.
 */

export type Health = 'ok' | 'degraded' | 'down' | 'unknown';

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
}

export interface Metadata {
  name: string;
  project?: string;
  labels?: Record<string, string>;
  resourceVersion?: number;
  generation?: number;
  createdAt?: string;
  updatedAt?: string;
}

export interface Workload {
  name: string;
  type?: string;
  replicas?: number;
  resources?: { cpu?: number | string; memory?: string };
}

export interface InstanceSummary {
  id: string;
  site: string;
  phase: string;
  ready: boolean;
  restarts: number;
}

export interface Resource {
  apiVersion: string;
  kind: 'Site' | 'Project' | 'App';
  metadata: Metadata;
  /** Per kind; the console reads only the App's (AppResource). */
  spec: object;
  status?: {
    conditions?: Condition[];
    workloads?: { name: string; replicas: number; readyReplicas: number; instances: InstanceSummary[] }[];
  };
}

export interface AppResource extends Resource {
  kind: 'App';
  spec: { workloads: Workload[]; placement?: { sites?: { name: string }[] } };
}

export interface Instance {
  id: string;
  site: string;
  project: string;
  app: string;
  workload: string;
  ordinal: number;
  phase: string;
  ready: boolean;
  pid?: number;
  ip: string;
  ports: Record<string, number>;
  restarts: number;
  lastExit?: { reason: string; message: string; at?: string };
  quarantine?: { since: string; reason: string };
  startedAt?: string;
  message?: string;
}

export type IncidentState = 'open' | 'isolated' | 'mitigated' | 'resolved';

export interface Incident {
  id: string;
  site: string;
  project: string;
  app: string;
  workload: string;
  instanceId: string;
  signature: string;
  severity: 'critical' | 'major' | 'minor';
  evidenceSummary?: string;
  state: IncidentState;
  action: { kind: 'isolate' | 'restart' | 'alert' | 'none'; reason: string };
  replacementId?: string;
  evidenceDir?: string;
  onsetAt?: string;
  detectedAt: string;
  isolatedAt?: string;
  replacementReadyAt?: string;
  resolvedAt?: string;
  durations: { detectMs?: number; isolateMs?: number; replaceMs?: number; mttrMs?: number };
  timeline: { at: string; event: string; detail: string }[];
  /** How often this failure was seen while the incident was open (repeats are grouped). */
  occurrences?: number;
  lastSeenAt?: string;
  createdAt: string;
  updatedAt: string;
}

export interface EvidenceManifest {
  version: number;
  dir: string;
  instanceId: string;
  createdAt?: string;
  completedAt?: string;
  durationMs?: number;
  parts: Record<
    string,
    { status: 'ok' | 'skipped' | 'failed' | 'timeout'; reason?: string; files: string[]; durationMs: number }
  >;
}

export interface ErrorDetail {
  path: string;
  message: string;
  fix?: string;
  line?: number;
}

export interface ApplyChange {
  op: 'add' | 'remove' | 'change';
  path: string;
  from?: unknown;
  to?: unknown;
}

export interface ApplyResult {
  dryRun: boolean;
  results: {
    kind: string;
    project?: string;
    name: string;
    action: 'created' | 'updated' | 'unchanged';
    changes: ApplyChange[];
  }[];
}

export interface TopologyMetrics {
  rps: number;
  errorRate: number;
  p50Ms: number | null;
  p99Ms: number | null;
  cpu?: number | null;
  memoryBytes?: number | null;
  saturation?: number | null;
}

export interface TopologyNode {
  id: string;
  kind: 'app' | 'instance' | 'external';
  label: string;
  project?: string;
  app?: string;
  site?: string;
  instance?: string;
  parent?: string;
  health: Health;
  metrics: TopologyMetrics;
}

export interface TopologyEdge {
  id: string;
  from: string;
  to: string;
  layers: ('l7' | 'l4')[];
  health: Health;
  metrics: TopologyMetrics & {
    connections?: number | null;
    retransmits?: number | null;
    rttMs?: number | null;
    resets?: number | null;
  };
}

export interface Topology {
  at: string;
  windowSeconds: number;
  nodes: TopologyNode[];
  edges: TopologyEdge[];
}

export interface ChangeEvent {
  seq: number;
  type: 'created' | 'updated' | 'status' | 'deleted';
  key: { kind: string; project: string; name: string };
  resource: Resource;
  at: string;
}

/** GET /api/v1/actions (src/model/actions.ts). */
export type ActionKind =
  'failover' | 'failback' | 'rebalance' | 'isolated' | 'quarantined' | 'replaced' | 'restarted';

export interface ActionFeedItem {
  id: string;
  at: string;
  kind: ActionKind;
  project: string;
  app: string;
  summary: string;
  changes?: { workload: string; site: string; from: number; to: number }[];
  incidentId?: string;
  instanceId?: string;
}
