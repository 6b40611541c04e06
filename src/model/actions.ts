/**
 * Automatic actions: what the platform did on its own, for the operator's
 * "what just happened" view (console overview, `GET /api/v1/actions`).
 * Placement moves (failover, failback, rebalancing across sites) are stored as
 * `ActionRecord`s; isolation's actions live in incident timelines and are
 * merged in when the feed is read (see feed.ts).
 */

/** How many replicas of one workload a site runs, before and after. */
export interface ReplicaChange {
  workload: string;
  site: string;
  from: number;
  to: number;
}

export type PlacementActionKind = 'failover' | 'failback' | 'rebalance';

export interface ActionRecord {
  /** `act-<time>-<random>`: unique, sortable by time. */
  id: string;
  at: string;
  kind: PlacementActionKind;
  project: string;
  app: string;
  /** One line: why, and what moved. */
  summary: string;
  /** The scalings the move consists of (per site and workload). */
  changes: ReplicaChange[];
}

export type ActionKind = PlacementActionKind | 'isolated' | 'quarantined' | 'replaced' | 'restarted';

/** One entry of the merged feed. */
export interface ActionFeedItem {
  id: string;
  at: string;
  kind: ActionKind;
  project: string;
  app: string;
  summary: string;
  changes?: ReplicaChange[];
  /** For isolation actions: the incident and the instance it acted on. */
  incidentId?: string;
  instanceId?: string;
}

export interface ActionQuery {
  project?: string;
  app?: string;
  /** @default 50, at most 500 */
  limit?: number;
}

export const DEFAULT_ACTION_LIMIT = 50;
export const MAX_ACTION_LIMIT = 500;
