/** Fault-layer localisation: what `bulwark diagnose <app>` and `GET /api/v1/apps/.../diagnosis` return. */
export type Layer = 'network' | 'container' | 'code';
export type Verdict = Layer | 'healthy' | 'unknown';

export interface Evidence {
  layer: Layer;
  /** Machine-readable kind, e.g. `tcp-retransmits`, `cpu-throttled`, `http-5xx`. */
  kind: string;
  instance?: string;
  /** Topology edge id, when the evidence is about one. */
  edge?: string;
  value: number;
  /** What a healthy value is (the rule's threshold). */
  threshold: number;
  detail: string;
}

export interface Suspect {
  layer: Layer;
  instance: string;
  score: number;
  reason: string;
}

export interface InstanceSignals {
  instance: string;
  phase: string;
  ready: boolean;
  restarts: number;
  requests: number;
  errors: number;
  errorRate: number;
  p99Ms: number | null;
  retransmits: number | null;
  resets: number | null;
  failedConnects: number | null;
  rttMs: number | null;
  cpu: number | null;
  throttled: number | null;
  memoryBytes: number | null;
  memoryLimitBytes: number | null;
  oomKills: number;
  errorLogLines: number;
}

export interface Diagnosis {
  app: string;
  at: string;
  windowSeconds: number;
  verdict: Verdict;
  /** The instance most at fault, when one is. */
  instance?: string;
  summary: string;
  suspects: Suspect[];
  evidence: Evidence[];
  instances: InstanceSignals[];
  /** Dependencies (callee apps) whose edges from this app fail or are slow. */
  downstream: { app: string; edge: string; requests: number; errorRate: number; p99Ms: number | null }[];
  /** Which evidence sources were available (no L4 without the eBPF agent, no throttling without cgroups). */
  sources: { l7: boolean; l4: boolean; resources: boolean; logs: boolean; l4Reason?: string };
}
