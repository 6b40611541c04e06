/**
 * The Store seam: desired state (specs), observed state (status), the change
 * log that feeds the SSE stream, API tokens and the runtime's instance
 * records. Implemented once over a tiny SQL executor so PGlite (embedded) and
 * PostgreSQL (server) share one schema, one migration set and one set of
 * queries; see `sql-store.ts`.
 */
import type { Kind, Resource, ResourceKey } from '../model/types.ts';
import type { Incident, IncidentQuery, IncidentState } from '../model/incidents.ts';
import type { ActionQuery, ActionRecord } from '../model/actions.ts';
import type { AuditEntry, AuditQuery, AuditRecord } from '../model/audit.ts';

export type ChangeType = 'created' | 'updated' | 'status' | 'deleted';

/** One entry of the change log. `seq` is strictly increasing and gap-free per store. */
export interface ChangeEvent {
  seq: number;
  type: ChangeType;
  key: ResourceKey;
  /** The resource after the change (before it, for `deleted`). */
  resource: Resource;
  at: string;
}

export interface ApplyResult {
  action: 'created' | 'updated' | 'unchanged';
  resource: Resource;
}

/** Record the local runtime keeps so a restarted control plane can re-adopt its processes. */
export interface InstanceRecord {
  id: string;
  site: string;
  project: string;
  app: string;
  workload: string;
  /** Opaque driver state (pid, start time, netns, cgroup path, ...), JSON. */
  data: Record<string, unknown>;
  updatedAt?: string;
}

/**
 * What a token may do. `admin` is everything; `agent` is what a node agent
 * needs (post reports, read its site's inventory) and nothing else.
 */
export type TokenScope = 'admin' | 'agent';
export const TOKEN_SCOPES: readonly TokenScope[] = ['admin', 'agent'];

export interface TokenRecord {
  id: string;
  name: string;
  /** sha256 hex of the secret; the secret itself is never stored. */
  hash: string;
  createdAt: string;
  scope: TokenScope;
  /** Set once by `revokeToken`; a revoked token stays listed so a refusal can say why. */
  revokedAt?: string;
  revokedReason?: string;
}

/** Every incident state in lifecycle order; what `listIncidents` (and the API) accept as a filter. */
export const INCIDENT_STATES: readonly IncidentState[] = ['open', 'isolated', 'mitigated', 'resolved'];
/** Page size of `listIncidents` when no limit is given. */
export const DEFAULT_INCIDENT_LIMIT = 100;
/** Largest `listIncidents` limit; a bigger one is refused rather than silently cut. */
export const MAX_INCIDENT_LIMIT = 1000;

export class ConflictError extends Error {
  readonly code = 'Conflict';
}
export class NotFoundError extends Error {
  readonly code = 'NotFound';
}

export interface Store {
  /** Human-readable backend name for logs and `status`: "pglite:/path" or "postgres://host:port/db". */
  readonly description: string;

  /**
   * Create-or-update by key in one transaction with its change event.
   * Metadata the server owns (generation, resourceVersion, timestamps) is
   * ignored on input. Unchanged spec and labels yield `unchanged` and no event.
   * `expectedResourceVersion`, when given, makes the write conditional
   * (ConflictError on mismatch). `audit`, when given, is appended to the
   * audit trail in the same transaction: the change and its record land
   * together or not at all (an `unchanged` apply is recorded too).
   */
  apply(
    resource: Resource,
    opts?: { expectedResourceVersion?: number; audit?: AuditRecord },
  ): Promise<ApplyResult>;
  get(key: ResourceKey): Promise<Resource | undefined>;
  list(kind: Kind, opts?: { project?: string }): Promise<Resource[]>;
  /** Returns the deleted resource, or undefined when it did not exist. `audit`: as for apply. */
  delete(key: ResourceKey, opts?: { audit?: AuditRecord }): Promise<Resource | undefined>;

  /** Append one record to the hash-chained audit trail (src/audit/chain.ts) on its own. */
  appendAudit(record: AuditRecord): Promise<AuditEntry>;
  /** Entries in seq order, as stored (a verifier reads exactly these). */
  listAudit(query?: AuditQuery): Promise<AuditEntry[]>;
  /**
   * Replace the status of a resource (not its spec). No-op returning false when
   * the resource is gone. Emits a `status` event only when the status changed.
   */
  updateStatus(key: ResourceKey, status: Resource['status']): Promise<boolean>;

  /** Change events with seq > `afterSeq`, oldest first, at most `limit`. */
  changesSince(afterSeq: number, limit?: number): Promise<ChangeEvent[]>;
  /** Highest seq written so far (0 when empty). */
  latestSeq(): Promise<number>;

  putInstance(rec: InstanceRecord): Promise<void>;
  listInstances(site?: string): Promise<InstanceRecord[]>;
  deleteInstance(id: string): Promise<void>;

  /** Insert or replace an incident by id (the whole document; the store indexes a few fields). */
  putIncident(incident: Incident): Promise<void>;
  getIncident(id: string): Promise<Incident | undefined>;
  /**
   * Newest first (by createdAt, then id), filtered by every field given.
   * `limit` defaults to DEFAULT_INCIDENT_LIMIT; above MAX_INCIDENT_LIMIT it is a TypeError.
   */
  listIncidents(query?: IncidentQuery): Promise<Incident[]>;

  /** Insert (or replace by id) one automatic action record. */
  putAction(action: ActionRecord): Promise<void>;
  /**
   * Newest first (by time, then id), filtered by project and app when given.
   * `limit` defaults to DEFAULT_ACTION_LIMIT; above MAX_ACTION_LIMIT it is a TypeError.
   */
  listActions(query?: ActionQuery): Promise<ActionRecord[]>;

  /** Insert a live token (`revokedAt` is ignored); a duplicate id or hash is a ConflictError. */
  addToken(rec: TokenRecord): Promise<void>;
  /** Revoked tokens are found too: the caller refuses them with the reason. */
  findTokenByHash(hash: string): Promise<TokenRecord | undefined>;
  countTokens(): Promise<number>;
  /** Every token, revoked ones included, oldest first (by creation time, then id). */
  listTokens(): Promise<TokenRecord[]>;
  /**
   * Mark a token revoked. Idempotent: revoking it again keeps the first time and
   * reason. Returns the record as stored, undefined when no token has this id.
   */
  revokeToken(id: string, revocation: { at: string; reason?: string }): Promise<TokenRecord | undefined>;

  close(): Promise<void>;
}
