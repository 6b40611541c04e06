/**
 * The Store over any SqlExecutor. Every write runs in one transaction together
 * with its change event, so the change log never misses or invents a change:
 * either both the row and the event commit, or neither does.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { API_VERSION, formatKey, keyOf } from '../model/types.ts';
import type { Kind, Resource, ResourceKey } from '../model/types.ts';
import { sameJson } from '../util/canonical-json.ts';
import { sqlState, UNIQUE_VIOLATION } from './sql.ts';
import type { SqlExecutor } from './sql.ts';
import type { Incident, IncidentQuery } from '../model/incidents.ts';
import { DEFAULT_ACTION_LIMIT, MAX_ACTION_LIMIT } from '../model/actions.ts';
import type { ActionQuery, ActionRecord } from '../model/actions.ts';
import type { AuditEntry, AuditQuery, AuditRecord } from '../model/audit.ts';
import { chainEntry } from '../audit/chain.ts';
import {
  ConflictError,
  DEFAULT_INCIDENT_LIMIT,
  INCIDENT_STATES,
  MAX_INCIDENT_LIMIT,
  TOKEN_SCOPES,
} from './store.ts';
import type {
  ApplyResult,
  ChangeEvent,
  ChangeType,
  InstanceRecord,
  Store,
  TokenRecord,
  TokenScope,
} from './store.ts';

const KINDS: readonly Kind[] = ['Site', 'Project', 'App'];
/** Kinds that live inside a project; the others are cluster-scoped (project ''). */
const PROJECT_SCOPED: ReadonlySet<Kind> = new Set(['App']);

/** @default page size of `changesSince` when no limit is given. */
export const DEFAULT_CHANGES_LIMIT = 1000;

/** Rows per query of `list` (see there). @default 100 */
export const LIST_PAGE = 100;

interface ResourceRow {
  kind: Kind;
  project: string;
  name: string;
  spec: unknown;
  labels: Record<string, string> | null;
  status: unknown;
  generation: number | string;
  resource_version: number | string;
  created_at: Date | string;
  updated_at: Date | string;
}

interface ChangeRow {
  seq: number | string;
  type: ChangeType;
  kind: Kind;
  project: string;
  name: string;
  resource: Resource;
  at: Date | string;
}

interface InstanceRow {
  id: string;
  site: string;
  project: string;
  app: string;
  workload: string;
  data: Record<string, unknown>;
  updated_at: Date | string;
}

interface TokenRow {
  id: string;
  name: string;
  hash: string;
  created_at: Date | string;
  scope: TokenScope;
  revoked_at: Date | string | null;
  revoked_reason: string | null;
}

const TOKEN_COLS = 'id, name, hash, created_at, scope, revoked_at, revoked_reason';

function tokenFromRow(r: TokenRow): TokenRecord {
  return {
    id: r.id,
    name: r.name,
    hash: r.hash,
    createdAt: iso(r.created_at),
    scope: r.scope,
    ...(r.revoked_at !== null ? { revokedAt: iso(r.revoked_at) } : {}),
    ...(r.revoked_reason !== null ? { revokedReason: r.revoked_reason } : {}),
  };
}

const RESOURCE_COLS =
  'kind, project, name, spec, labels, status, generation, resource_version, created_at, updated_at';

/** Thrown inside a create transaction that lost a race with a concurrent create; the apply retries. */
class CreateRace extends Error {}

export interface SqlStoreStatus {
  backend: string;
  closed: boolean;
}

export class SqlStore implements Store {
  readonly description: string;
  /** Exposed for the contract tests' fault injection and for diagnostics. */
  readonly executor: SqlExecutor;
  #closed = false;

  /** Passive; the schema must already be migrated (see `openStore`). */
  constructor(executor: SqlExecutor) {
    this.executor = executor;
    this.description = executor.description;
  }

  status(): SqlStoreStatus {
    return { backend: this.description, closed: this.#closed };
  }

  async apply(
    resource: Resource,
    opts: { expectedResourceVersion?: number; audit?: AuditRecord } = {},
  ): Promise<ApplyResult> {
    const key = validateResource(resource);
    const expected = opts.expectedResourceVersion;
    if (expected !== undefined && (!Number.isInteger(expected) || expected < 0)) {
      throw new TypeError(`expectedResourceVersion must be a non-negative integer, got ${String(expected)}`);
    }
    // Round-trip through JSON so what we return is exactly what a later get()
    // reads back (no undefined members, no references into the caller's object).
    const spec = jsonCopy(resource.spec);
    const labels = jsonCopy(resource.metadata.labels ?? {});
    // One retry budget for the create race: two writers both see "absent",
    // one INSERT wins, the loser re-reads and takes the update path.
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.executor.transaction(async (tx) => {
          const now = new Date().toISOString();
          const row = await selectForUpdate(tx, key);
          if (!row) {
            if (expected !== undefined && expected !== 0) {
              throw new ConflictError(
                `${formatKey(key)} does not exist but resourceVersion ${expected} was expected; re-read and retry`,
              );
            }
            const inserted = await tx.query(
              `INSERT INTO resources (${RESOURCE_COLS})
               VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, NULL, 1, 1, $6, $6)
               ON CONFLICT (kind, project, name) DO NOTHING
               RETURNING kind`,
              [key.kind, key.project, key.name, JSON.stringify(spec), JSON.stringify(labels), now],
            );
            if (inserted.rows.length === 0) throw new CreateRace();
            const created = envelope({
              ...key,
              spec,
              labels,
              status: null,
              generation: 1,
              resource_version: 1,
              created_at: now,
              updated_at: now,
            });
            await appendChange(tx, 'created', key, created, now);
            if (opts.audit) await appendAuditEntry(tx, opts.audit);
            return { action: 'created' as const, resource: created };
          }
          const current = envelope(row);
          if (expected !== undefined && expected !== current.metadata.resourceVersion) {
            throw new ConflictError(
              `${formatKey(key)} is at resourceVersion ${current.metadata.resourceVersion}, ` +
                `not the expected ${expected}; re-read and retry`,
            );
          }
          if (sameJson(row.spec, spec) && sameJson(row.labels ?? {}, labels)) {
            if (opts.audit) await appendAuditEntry(tx, opts.audit);
            return { action: 'unchanged' as const, resource: current };
          }
          const next: ResourceRow = {
            ...row,
            spec,
            labels,
            generation: Number(row.generation) + 1,
            resource_version: Number(row.resource_version) + 1,
            updated_at: now,
          };
          await tx.query(
            `UPDATE resources SET spec = $4::jsonb, labels = $5::jsonb, generation = $6,
               resource_version = $7, updated_at = $8
             WHERE kind = $1 AND project = $2 AND name = $3`,
            [
              key.kind,
              key.project,
              key.name,
              JSON.stringify(spec),
              JSON.stringify(labels),
              next.generation,
              next.resource_version,
              now,
            ],
          );
          const updated = envelope(next);
          await appendChange(tx, 'updated', key, updated, now);
          if (opts.audit) await appendAuditEntry(tx, opts.audit);
          return { action: 'updated' as const, resource: updated };
        });
      } catch (err) {
        if (err instanceof CreateRace && attempt < 3) continue;
        if (err instanceof CreateRace) {
          throw new ConflictError(`${formatKey(key)} is being created concurrently; retry`, { cause: err });
        }
        throw err;
      }
    }
  }

  async get(key: ResourceKey): Promise<Resource | undefined> {
    const { rows } = await this.executor.query<ResourceRow>(
      `SELECT ${RESOURCE_COLS} FROM resources WHERE kind = $1 AND project = $2 AND name = $3`,
      [key.kind, key.project, key.name],
    );
    return rows[0] ? envelope(rows[0]) : undefined;
  }

  /**
   * In pages of LIST_PAGE rows (keyset on the sort order), giving the event
   * loop a turn between pages: one query over 10,000 Apps held the thread for
   * ~300 ms (PGlite runs in it), stalling every other request. Not a snapshot:
   * a row written during the listing may or may not be in it, as if it had
   * been written just before or just after; none is listed twice.
   */
  async list(kind: Kind, opts: { project?: string } = {}): Promise<Resource[]> {
    const out: Resource[] = [];
    let after: { project: string; name: string } | undefined;
    for (;;) {
      const params: unknown[] = [kind];
      let where = 'kind = $1';
      if (opts.project !== undefined) {
        params.push(opts.project);
        where += ` AND project = $${params.length}`;
      }
      if (after) {
        params.push(after.project, after.name);
        where += ` AND (project, name) > ($${params.length - 1}, $${params.length})`;
      }
      params.push(LIST_PAGE);
      const { rows } = await this.executor.query<ResourceRow>(
        `SELECT ${RESOURCE_COLS} FROM resources WHERE ${where} ORDER BY project, name LIMIT $${params.length}`,
        params,
      );
      for (const r of rows) out.push(envelope(r));
      const last = rows.at(-1);
      if (rows.length < LIST_PAGE || !last) return out;
      after = { project: last.project, name: last.name };
      await nextTurn();
    }
  }

  async delete(key: ResourceKey, opts: { audit?: AuditRecord } = {}): Promise<Resource | undefined> {
    return await this.executor.transaction(async (tx) => {
      const { rows } = await tx.query<ResourceRow>(
        `DELETE FROM resources WHERE kind = $1 AND project = $2 AND name = $3 RETURNING ${RESOURCE_COLS}`,
        [key.kind, key.project, key.name],
      );
      // A delete of nothing is still a call that was made: recorded too.
      if (opts.audit) await appendAuditEntry(tx, opts.audit);
      if (!rows[0]) return undefined;
      const gone = envelope(rows[0]);
      await appendChange(tx, 'deleted', key, gone, new Date().toISOString());
      return gone;
    });
  }

  async appendAudit(record: AuditRecord): Promise<AuditEntry> {
    return await this.executor.transaction((tx) => appendAuditEntry(tx, record));
  }

  async listAudit(q: AuditQuery = {}): Promise<AuditEntry[]> {
    const limit = q.limit ?? DEFAULT_AUDIT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_AUDIT_LIMIT)
      throw new TypeError(`limit must be an integer from 1 to ${MAX_AUDIT_LIMIT}, got ${String(q.limit)}`);
    const where: string[] = ['seq > $1'];
    const params: unknown[] = [q.afterSeq ?? 0];
    const add = (sql: string, v: unknown): void => {
      params.push(v);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (q.tenant !== undefined) add('tenant = ?', q.tenant);
    if (q.actor !== undefined) add('actor = ?', q.actor);
    if (q.since !== undefined) add('at >= ?', q.since);
    if (q.until !== undefined) add('at <= ?', q.until);
    params.push(limit);
    const { rows } = await this.executor.query<{
      seq: string | number;
      prev_hash: string;
      hash: string;
      body: string;
    }>(
      `SELECT seq, prev_hash, hash, body FROM audit_entries WHERE ${where.join(' AND ')} ORDER BY seq LIMIT $${params.length}`,
      params,
    );
    return rows.map((r) => ({ seq: Number(r.seq), prevHash: r.prev_hash, hash: r.hash, body: r.body }));
  }

  async updateStatus(key: ResourceKey, status: Resource['status']): Promise<boolean> {
    return await this.executor.transaction(async (tx) => {
      const row = await selectForUpdate(tx, key);
      if (!row) return false;
      if (sameJson(row.status ?? null, status ?? null)) return true;
      const now = new Date().toISOString();
      const next: ResourceRow = {
        ...row,
        status: status === undefined ? null : jsonCopy(status),
        resource_version: Number(row.resource_version) + 1,
        updated_at: now,
      };
      await tx.query(
        `UPDATE resources SET status = $4::jsonb, resource_version = $5, updated_at = $6
         WHERE kind = $1 AND project = $2 AND name = $3`,
        [
          key.kind,
          key.project,
          key.name,
          status === undefined ? null : JSON.stringify(status),
          next.resource_version,
          now,
        ],
      );
      await appendChange(tx, 'status', key, envelope(next), now);
      return true;
    });
  }

  async changesSince(afterSeq: number, limit = DEFAULT_CHANGES_LIMIT): Promise<ChangeEvent[]> {
    if (!Number.isInteger(afterSeq) || afterSeq < 0) {
      throw new TypeError(`afterSeq must be a non-negative integer, got ${String(afterSeq)}`);
    }
    if (!Number.isInteger(limit) || limit < 1) {
      throw new TypeError(`limit must be a positive integer, got ${String(limit)}`);
    }
    const { rows } = await this.executor.query<ChangeRow>(
      'SELECT seq, type, kind, project, name, resource, at FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2',
      [afterSeq, limit],
    );
    return rows.map((r) => ({
      seq: Number(r.seq),
      type: r.type,
      key: { kind: r.kind, project: r.project, name: r.name },
      resource: r.resource,
      at: iso(r.at),
    }));
  }

  async latestSeq(): Promise<number> {
    const { rows } = await this.executor.query<{ seq: number | string }>(
      'SELECT seq FROM change_counter WHERE id = 1',
      [],
    );
    return Number(rows[0]?.seq ?? 0);
  }

  async putInstance(rec: InstanceRecord): Promise<void> {
    for (const field of ['id', 'site', 'project', 'app', 'workload'] as const) {
      if (typeof rec[field] !== 'string' || rec[field] === '') {
        throw new TypeError(`instance record ${field} must be a non-empty string`);
      }
    }
    await this.executor.query(
      `INSERT INTO instances (id, site, project, app, workload, data, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)
       ON CONFLICT (id) DO UPDATE SET site = EXCLUDED.site, project = EXCLUDED.project, app = EXCLUDED.app,
         workload = EXCLUDED.workload, data = EXCLUDED.data, updated_at = EXCLUDED.updated_at`,
      [
        rec.id,
        rec.site,
        rec.project,
        rec.app,
        rec.workload,
        JSON.stringify(rec.data ?? {}),
        new Date().toISOString(),
      ],
    );
  }

  async listInstances(site?: string): Promise<InstanceRecord[]> {
    const cols = 'id, site, project, app, workload, data, updated_at';
    const { rows } =
      site === undefined
        ? await this.executor.query<InstanceRow>(`SELECT ${cols} FROM instances ORDER BY id`, [])
        : await this.executor.query<InstanceRow>(
            `SELECT ${cols} FROM instances WHERE site = $1 ORDER BY id`,
            [site],
          );
    return rows.map((r) => ({
      id: r.id,
      site: r.site,
      project: r.project,
      app: r.app,
      workload: r.workload,
      data: r.data,
      updatedAt: iso(r.updated_at),
    }));
  }

  async deleteInstance(id: string): Promise<void> {
    await this.executor.query('DELETE FROM instances WHERE id = $1', [id]);
  }

  async putIncident(incident: Incident): Promise<void> {
    validateIncident(incident);
    const doc = jsonCopy(incident);
    await this.executor.query(
      `INSERT INTO incidents (id, project, app, instance_id, state, created_at, doc)
       VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
       ON CONFLICT (id) DO UPDATE SET project = EXCLUDED.project, app = EXCLUDED.app,
         instance_id = EXCLUDED.instance_id, state = EXCLUDED.state, created_at = EXCLUDED.created_at,
         doc = EXCLUDED.doc`,
      [doc.id, doc.project, doc.app, doc.instanceId, doc.state, doc.createdAt, JSON.stringify(doc)],
    );
  }

  async putAction(action: ActionRecord): Promise<void> {
    validateAction(action);
    const doc = jsonCopy(action);
    await this.executor.query(
      `INSERT INTO actions (id, project, app, kind, at, doc) VALUES ($1, $2, $3, $4, $5, $6::jsonb)
       ON CONFLICT (id) DO UPDATE SET project = EXCLUDED.project, app = EXCLUDED.app,
         kind = EXCLUDED.kind, at = EXCLUDED.at, doc = EXCLUDED.doc`,
      [doc.id, doc.project, doc.app, doc.kind, doc.at, JSON.stringify(doc)],
    );
  }

  async listActions(query: ActionQuery = {}): Promise<ActionRecord[]> {
    const limit = query.limit ?? DEFAULT_ACTION_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_ACTION_LIMIT) {
      throw new TypeError(
        `limit must be an integer from 1 to ${MAX_ACTION_LIMIT}, got ${String(query.limit)}`,
      );
    }
    const { where, params } = equalities([
      ['project', query.project],
      ['app', query.app],
    ]);
    params.push(limit);
    const { rows } = await this.executor.query<{ doc: ActionRecord }>(
      `SELECT doc FROM actions ${where} ORDER BY at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map((r) => r.doc);
  }

  async getIncident(id: string): Promise<Incident | undefined> {
    const { rows } = await this.executor.query<{ doc: Incident }>('SELECT doc FROM incidents WHERE id = $1', [
      id,
    ]);
    return rows[0]?.doc;
  }

  async listIncidents(query: IncidentQuery = {}): Promise<Incident[]> {
    const limit = query.limit ?? DEFAULT_INCIDENT_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_INCIDENT_LIMIT) {
      throw new TypeError(
        `limit must be an integer from 1 to ${MAX_INCIDENT_LIMIT}, got ${String(query.limit)}; ` +
          'page with filters (project, app, state, instanceId) for more',
      );
    }
    if (query.state !== undefined && !INCIDENT_STATES.includes(query.state)) {
      throw new TypeError(
        `state must be one of ${INCIDENT_STATES.join(', ')}, got ${JSON.stringify(query.state)}`,
      );
    }
    // "open" means one thing everywhere (API, CLI, console): not resolved yet, whatever stage
    // (detected, isolated, mitigated); the other states filter exactly.
    const open = query.state === 'open';
    const { where, params } = equalities([
      ['project', query.project],
      ['app', query.app],
      ['state', open ? undefined : query.state],
      ['instance_id', query.instanceId],
    ]);
    const filter = open ? (where ? `${where} AND state <> 'resolved'` : `WHERE state <> 'resolved'`) : where;
    params.push(limit);
    const { rows } = await this.executor.query<{ doc: Incident }>(
      `SELECT doc FROM incidents ${filter}
       ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map((r) => r.doc);
  }

  async addToken(rec: TokenRecord): Promise<void> {
    if (!/^[0-9a-f]{64}$/.test(rec.hash)) {
      throw new TypeError('token hash must be the sha256 of the secret as 64 lowercase hex characters');
    }
    if (!TOKEN_SCOPES.includes(rec.scope)) {
      throw new TypeError(`token scope must be one of ${TOKEN_SCOPES.join(', ')}; got ${String(rec.scope)}`);
    }
    try {
      await this.executor.query(
        'INSERT INTO tokens (id, name, hash, created_at, scope) VALUES ($1, $2, $3, $4, $5)',
        [rec.id, rec.name, rec.hash, rec.createdAt, rec.scope],
      );
    } catch (err) {
      if (sqlState(err) === UNIQUE_VIOLATION) {
        throw new ConflictError(`a token with id ${rec.id} or the same secret already exists`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  async findTokenByHash(hash: string): Promise<TokenRecord | undefined> {
    const { rows } = await this.executor.query<TokenRow>(`SELECT ${TOKEN_COLS} FROM tokens WHERE hash = $1`, [
      hash,
    ]);
    const r = rows[0];
    return r ? tokenFromRow(r) : undefined;
  }

  async listTokens(): Promise<TokenRecord[]> {
    const { rows } = await this.executor.query<TokenRow>(
      `SELECT ${TOKEN_COLS} FROM tokens ORDER BY created_at, id`,
      [],
    );
    return rows.map(tokenFromRow);
  }

  async revokeToken(
    id: string,
    revocation: { at: string; reason?: string },
  ): Promise<TokenRecord | undefined> {
    // COALESCE keeps the first revocation: a second call (a retry) does not rewrite history.
    const { rows } = await this.executor.query<TokenRow>(
      `UPDATE tokens SET revoked_at = COALESCE(revoked_at, $2),
         revoked_reason = CASE WHEN revoked_at IS NULL THEN $3 ELSE revoked_reason END
       WHERE id = $1 RETURNING ${TOKEN_COLS}`,
      [id, revocation.at, revocation.reason ?? null],
    );
    const r = rows[0];
    return r ? tokenFromRow(r) : undefined;
  }

  async countTokens(): Promise<number> {
    const { rows } = await this.executor.query<{ n: number | string }>(
      'SELECT count(*) AS n FROM tokens',
      [],
    );
    return Number(rows[0]?.n ?? 0);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.executor.close();
  }
}

async function selectForUpdate(tx: SqlExecutor, key: ResourceKey): Promise<ResourceRow | undefined> {
  const { rows } = await tx.query<ResourceRow>(
    `SELECT ${RESOURCE_COLS} FROM resources WHERE kind = $1 AND project = $2 AND name = $3 FOR UPDATE`,
    [key.kind, key.project, key.name],
  );
  return rows[0];
}

export const DEFAULT_AUDIT_LIMIT = 100;
export const MAX_AUDIT_LIMIT = 10_000;

/**
 * Append to the audit trail inside the caller's transaction. The head row is
 * locked until commit, so entries chain in commit order and a rolled-back
 * change leaves no entry (and no gap) behind.
 */
async function appendAuditEntry(tx: SqlExecutor, record: AuditRecord): Promise<AuditEntry> {
  const { rows } = await tx.query<{ seq: string | number; hash: string }>(
    'SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE',
    [],
  );
  const head = rows[0];
  if (!head) throw new Error('audit_head row is missing; the schema is not migrated');
  const entry = chainEntry({ seq: Number(head.seq), hash: head.hash }, record);
  const r = record.resource;
  await tx.query(
    `INSERT INTO audit_entries (seq, prev_hash, hash, body, at, tenant, actor, action, resource)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [
      entry.seq,
      entry.prevHash,
      entry.hash,
      entry.body,
      record.at,
      record.tenant ?? null,
      record.actor.id,
      record.action,
      r ? `${r.kind}/${r.project ? `${r.project}/` : ''}${r.name}` : null,
    ],
  );
  await tx.query('UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1', [entry.seq, entry.hash]);
  return entry;
}

/**
 * Append to the change log inside the caller's transaction. The counter row's
 * lock is held until commit, so writers take seq numbers in commit order.
 */
async function appendChange(
  tx: SqlExecutor,
  type: ChangeType,
  key: ResourceKey,
  resource: Resource,
  at: string,
): Promise<number> {
  const { rows } = await tx.query<{ seq: number | string }>(
    'UPDATE change_counter SET seq = seq + 1 WHERE id = 1 RETURNING seq',
    [],
  );
  const seq = Number(rows[0]?.seq);
  if (!Number.isInteger(seq)) throw new Error('change_counter row is missing; the schema is not migrated');
  await tx.query(
    'INSERT INTO changes (seq, type, kind, project, name, resource, at) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)',
    [seq, type, key.kind, key.project, key.name, JSON.stringify(resource), at],
  );
  return seq;
}

function jsonCopy<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

function iso(v: Date | string): string {
  return (v instanceof Date ? v : new Date(v)).toISOString();
}

/** Build the full API envelope from a row. */
function envelope(row: ResourceRow): Resource {
  const labels = row.labels ?? {};
  const metadata: Resource['metadata'] = { name: row.name };
  if (row.project) metadata.project = row.project;
  if (Object.keys(labels).length > 0) metadata.labels = labels;
  metadata.generation = Number(row.generation);
  metadata.resourceVersion = Number(row.resource_version);
  metadata.createdAt = iso(row.created_at);
  metadata.updatedAt = iso(row.updated_at);
  const out = { apiVersion: API_VERSION, kind: row.kind, metadata, spec: row.spec } as Resource;
  if (row.status !== null && row.status !== undefined) (out as { status?: unknown }).status = row.status;
  return out;
}

/** Key-level checks the store needs to be safe; full schema validation happens before the store. */
function validateResource(r: Resource): ResourceKey {
  if (!r || typeof r !== 'object') throw new TypeError('resource must be an object');
  if (!KINDS.includes(r.kind)) {
    throw new TypeError(`kind must be one of ${KINDS.join(', ')}, got ${JSON.stringify(r.kind)}`);
  }
  const md = r.metadata as Resource['metadata'] | undefined;
  if (!md || typeof md !== 'object') throw new TypeError(`${r.kind}: metadata is required`);
  if (typeof md.name !== 'string' || md.name === '') {
    throw new TypeError(`${r.kind}: metadata.name is required and must be a non-empty string`);
  }
  if (PROJECT_SCOPED.has(r.kind)) {
    if (typeof md.project !== 'string' || md.project === '') {
      throw new TypeError(`${r.kind}/${md.name}: metadata.project is required for kind ${r.kind}`);
    }
  } else if (md.project) {
    throw new TypeError(
      `${r.kind}/${md.name}: metadata.project must be absent, ${r.kind} is not inside a project`,
    );
  }
  if (
    md.labels !== undefined &&
    (md.labels === null || typeof md.labels !== 'object' || Array.isArray(md.labels))
  ) {
    throw new TypeError(`${r.kind}/${md.name}: metadata.labels must be an object of string values`);
  }
  const spec = r.spec as unknown;
  if (!spec || typeof spec !== 'object' || Array.isArray(spec)) {
    throw new TypeError(`${r.kind}/${md.name}: spec is required and must be an object`);
  }
  return keyOf(r);
}

/** `WHERE a = $1 AND b = $2` for the filters that are set (none: an empty clause). */
function equalities(filters: readonly (readonly [string, string | undefined])[]): {
  where: string;
  params: unknown[];
} {
  const clauses: string[] = [];
  const params: unknown[] = [];
  for (const [column, value] of filters) {
    if (value === undefined) continue;
    params.push(value);
    clauses.push(`${column} = $${params.length}`);
  }
  return { where: clauses.length > 0 ? `WHERE ${clauses.join(' AND ')}` : '', params };
}

const ACTION_KINDS = new Set(['failover', 'failback', 'rebalance']);

function validateAction(a: ActionRecord): void {
  if (!a || typeof a !== 'object') throw new TypeError('action must be an object');
  for (const field of ['id', 'project', 'app', 'summary'] as const) {
    if (typeof a[field] !== 'string' || a[field] === '')
      throw new TypeError(`action ${field} must be a non-empty string`);
  }
  if (!ACTION_KINDS.has(a.kind))
    throw new TypeError(
      `action ${a.id}: kind must be one of ${[...ACTION_KINDS].join(', ')}, got ${JSON.stringify(a.kind)}`,
    );
  if (typeof a.at !== 'string' || Number.isNaN(Date.parse(a.at)))
    throw new TypeError(`action ${a.id}: at must be an ISO-8601 time, got ${JSON.stringify(a.at)}`);
}

/** The fields the store indexes must be usable; the rest of the document is the writer's business. */
function validateIncident(inc: Incident): void {
  if (!inc || typeof inc !== 'object') throw new TypeError('incident must be an object');
  for (const field of ['id', 'project', 'app', 'instanceId'] as const) {
    if (typeof inc[field] !== 'string' || inc[field] === '') {
      throw new TypeError(`incident ${field} must be a non-empty string`);
    }
  }
  if (!INCIDENT_STATES.includes(inc.state)) {
    throw new TypeError(
      `incident ${inc.id}: state must be one of ${INCIDENT_STATES.join(', ')}, got ${JSON.stringify(inc.state)}`,
    );
  }
  if (typeof inc.createdAt !== 'string' || Number.isNaN(Date.parse(inc.createdAt))) {
    throw new TypeError(
      `incident ${inc.id}: createdAt must be an ISO-8601 time, got ${JSON.stringify(inc.createdAt)}`,
    );
  }
}
