/**
 * The one ordered list of schema migrations, shared by PGlite and PostgreSQL.
 * Append only: never edit a migration that has shipped, add a new version.
 */
import type { SqlExecutor } from './sql.ts';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema',
    sql: `
      CREATE TABLE resources (
        kind             text        NOT NULL,
        project          text        NOT NULL DEFAULT '',
        name             text        NOT NULL,
        spec             jsonb       NOT NULL,
        labels           jsonb       NOT NULL DEFAULT '{}'::jsonb,
        status           jsonb,
        generation       bigint      NOT NULL,
        resource_version bigint      NOT NULL,
        created_at       timestamptz NOT NULL,
        updated_at       timestamptz NOT NULL,
        PRIMARY KEY (kind, project, name)
      );
      CREATE INDEX resources_by_project ON resources (kind, project);

      -- seq is assigned from change_counter (not a sequence) inside the
      -- writing transaction: sequences leak values on rollback and hand them
      -- out in start order rather than commit order, so a feed reader could
      -- skip a change that commits late. A counter row is transactional and
      -- its row lock orders writers by commit, so seq is gap-free and a
      -- reader that saw seq N has seen everything below N.
      CREATE TABLE changes (
        seq      bigint      PRIMARY KEY,
        type     text        NOT NULL CHECK (type IN ('created', 'updated', 'status', 'deleted')),
        kind     text        NOT NULL,
        project  text        NOT NULL,
        name     text        NOT NULL,
        resource jsonb       NOT NULL,
        at       timestamptz NOT NULL
      );
      CREATE TABLE change_counter (
        id  integer PRIMARY KEY CHECK (id = 1),
        seq bigint  NOT NULL
      );
      INSERT INTO change_counter (id, seq) VALUES (1, 0);

      CREATE TABLE instances (
        id         text        PRIMARY KEY,
        site       text        NOT NULL,
        project    text        NOT NULL,
        app        text        NOT NULL,
        workload   text        NOT NULL,
        data       jsonb       NOT NULL,
        updated_at timestamptz NOT NULL
      );
      CREATE INDEX instances_by_site ON instances (site);

      CREATE TABLE tokens (
        id         text        PRIMARY KEY,
        name       text        NOT NULL,
        hash       text        NOT NULL UNIQUE,
        created_at timestamptz NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'incidents',
    // The whole Incident lives in `doc`; the columns beside it exist only to
    // filter and order without unpacking JSON, and are rewritten on every put.
    sql: `
      CREATE TABLE incidents (
        id          text        PRIMARY KEY,
        project     text        NOT NULL,
        app         text        NOT NULL,
        instance_id text        NOT NULL,
        state       text        NOT NULL,
        created_at  timestamptz NOT NULL,
        doc         jsonb       NOT NULL
      );
      CREATE INDEX incidents_by_created  ON incidents (created_at DESC, id DESC);
      CREATE INDEX incidents_by_app      ON incidents (project, app, created_at DESC);
      CREATE INDEX incidents_by_instance ON incidents (instance_id);
      CREATE INDEX incidents_by_state    ON incidents (state, created_at DESC);
    `,
  },
  {
    version: 3,
    name: 'actions',
    // What the platform did on its own (failovers, failbacks, rebalancing); the document in
    // `doc`, the columns to filter and order by.
    sql: `
      CREATE TABLE actions (
        id      text        PRIMARY KEY,
        project text        NOT NULL,
        app     text        NOT NULL,
        kind    text        NOT NULL,
        at      timestamptz NOT NULL,
        doc     jsonb       NOT NULL
      );
      CREATE INDEX actions_by_at  ON actions (at DESC, id DESC);
      CREATE INDEX actions_by_app ON actions (project, app, at DESC);
    `,
  },
  {
    version: 4,
    name: 'token scopes and revocation',
    // Tokens that existed before scopes were all-powerful, so they become 'admin'.
    // A revoked token keeps its row: the 401 can then say it was revoked, when and why.
    sql: `
      ALTER TABLE tokens ADD COLUMN scope text NOT NULL DEFAULT 'admin' CHECK (scope IN ('admin', 'agent'));
      ALTER TABLE tokens ADD COLUMN revoked_at timestamptz;
      ALTER TABLE tokens ADD COLUMN revoked_reason text;
    `,
  },
  {
    version: 5,
    name: 'audit trail',
    // Hash-chained entries (src/audit/chain.ts): body is the canonical JSON that was hashed;
    // the other columns are copies of its fields, to search by. audit_head is the chain's
    // end, locked by every append, so entries take seq numbers in commit order.
    sql: `
      CREATE TABLE audit_entries (
        seq       bigint      PRIMARY KEY,
        prev_hash text        NOT NULL,
        hash      text        NOT NULL,
        body      text        NOT NULL,
        at        timestamptz NOT NULL,
        tenant    text,
        actor     text        NOT NULL,
        action    text        NOT NULL,
        resource  text
      );
      CREATE INDEX audit_by_tenant ON audit_entries (tenant, seq);
      CREATE INDEX audit_by_actor  ON audit_entries (actor, seq);
      CREATE INDEX audit_by_at     ON audit_entries (at, seq);
      CREATE TABLE audit_head (
        id   integer PRIMARY KEY CHECK (id = 1),
        seq  bigint  NOT NULL,
        hash text    NOT NULL
      );
      INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '${'0'.repeat(64)}');
    `,
  },
  {
    version: 6,
    name: 'drop resources_by_project',
    // Redundant with the primary key (kind, project, name), whose prefix serves the same
    // lookups. PGlite never analyzes (no autovacuum), and without statistics the planner took
    // this index for key lookups and filtered by name: every get, apply and status write scanned
    // the whole project (10,000 Apps: a 1000-resource apply went from 8 s to 125 s).
    sql: `DROP INDEX IF EXISTS resources_by_project;`,
  },
];

/** Arbitrary constant key for pg_advisory_xact_lock: "bulwark" migrations. */
const MIGRATION_LOCK_KEY = 0x62756c77;

export interface MigrationReport {
  /** Versions applied by this call (empty when already up to date). */
  applied: number[];
  /** Schema version after the call. */
  version: number;
}

/**
 * Bring the schema up to date in one transaction. Idempotent. Two processes
 * starting at once against one PostgreSQL serialise on an advisory lock: the
 * second waits, then finds nothing left to do.
 */
export async function migrate(
  db: SqlExecutor,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<MigrationReport> {
  checkOrder(migrations);
  return await db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await tx.query(`
      CREATE TABLE IF NOT EXISTS schema_migrations (
        version    integer     PRIMARY KEY,
        name       text        NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
    const { rows } = await tx.query<{ version: number }>('SELECT version FROM schema_migrations');
    const done = new Set(rows.map((r) => Number(r.version)));
    const latestKnown = migrations.at(-1)?.version ?? 0;
    const newest = Math.max(0, ...done);
    if (newest > latestKnown) {
      throw new Error(
        `the database schema is at version ${newest} but this build only knows up to ${latestKnown}; ` +
          'upgrade Bulwark or point it at the right database',
      );
    }
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      try {
        await tx.query(m.sql);
      } catch (err) {
        throw new Error(`migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    return { applied, version: Math.max(newest, ...applied) };
  });
}

function checkOrder(migrations: readonly Migration[]): void {
  let prev = 0;
  for (const m of migrations) {
    if (!Number.isInteger(m.version) || m.version <= prev) {
      throw new Error(
        `migration versions must be increasing integers; ${m.version} (${m.name}) follows ${prev}`,
      );
    }
    prev = m.version;
  }
}
