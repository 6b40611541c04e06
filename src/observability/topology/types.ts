/**
 * The Topology API shape (contract with the console, /work/notes/contracts.md).
 * Fields beyond the contract (`requests`, `errors` on L7 metrics, `bytes*`,
 * `opened`, `failed` on L4 metrics) are additions a client may ignore.
 */
export type Health = 'ok' | 'degraded' | 'down' | 'unknown';

export interface TopologyNode {
  id: string;
  kind: 'app' | 'instance' | 'external';
  label: string;
  project?: string;
  app?: string;
  site?: string;
  instance?: string;
  /** Instance -> its app node id. */
  parent?: string;
  health: Health;
  metrics: {
    rps: number;
    errorRate: number;
    p50Ms: number | null;
    p99Ms: number | null;
    cpu?: number | null;
    memoryBytes?: number | null;
    saturation?: number | null;
    requests?: number;
    errors?: number;
  };
}

export interface TopologyEdge {
  id: string;
  from: string;
  to: string;
  layers: Array<'l7' | 'l4'>;
  health: Health;
  metrics: {
    rps: number;
    errorRate: number;
    p50Ms: number | null;
    p99Ms: number | null;
    connections?: number | null;
    retransmits?: number | null;
    rttMs?: number | null;
    resets?: number | null;
    requests?: number;
    errors?: number;
    opened?: number | null;
    failed?: number | null;
    bytesToServer?: number | null;
    bytesToClient?: number | null;
  };
}

export interface Topology {
  at: string;
  windowSeconds: number;
  nodes: TopologyNode[];
  edges: TopologyEdge[];
}

export interface HistoryPoint {
  at: string;
  nodes: number;
  edges: number;
  rps: number;
  errorRate: number;
}
