/**
 * What the HTTP routes need from observability (topology, diagnosis,
 * profiling, metrics). Implemented by `Observability`; routes answer 503
 * when it is absent. Errors: throw `ObservabilityInputError` for bad input
 * (400), `ObservabilityNotFoundError` (404), `ProfileBusyError` (409).
 */
import type { Inventory } from './agent/attribution.ts';
import type { AgentStatus } from './agent/node-agent.ts';
import type { RemoteAgentStatus } from './agent/remote-agents.ts';
import type { AgentReport } from './agent/report.ts';
import type { Diagnosis } from './diagnose/types.ts';
import type { ProfileCaller, ProfileRecord } from './profile.ts';
import type { HistoryPoint, Topology } from './topology/types.ts';

export interface ObservabilityApi {
  sites(): string[];
  topology(q: { site?: string; project?: string; windowSeconds: number }): Topology;
  history(q: { site?: string; minutes: number }): HistoryPoint[];
  /** The default topology view of every site when it changed, at most every 2 s. */
  onTopology(listener: (t: Topology, site: string) => void): () => void;
  diagnose(q: { project: string; app: string; windowSeconds: number }): Promise<Diagnosis>;
  profile(q: { instanceId: string; durationSeconds: number; caller: ProfileCaller }): Promise<ProfileRecord>;
  profiles(): Promise<ProfileRecord[]>;
  profileFile(id: string, kind: 'cpuprofile' | 'folded'): Promise<string | undefined>;
  getProfile(id: string): Promise<ProfileRecord | undefined>;
  agent(): Record<string, AgentStatus>;
  /** Inventory for a node agent of the site (`bulwark agent`); ObservabilityNotFoundError for an unknown site. */
  agentInventory(site: string): Inventory;
  /** Ingest a validated node-agent report; ObservabilityNotFoundError for an unknown site. */
  agentReport(report: AgentReport): { site: string; node: string; flows: number };
  /** Node agents that reported (all sites, or one). */
  nodeAgents(site?: string): RemoteAgentStatus[];
  /** Prometheus text (format 0.0.4). */
  metrics(): string;
}

export class ObservabilityNotFoundError extends Error {}
