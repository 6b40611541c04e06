/**
 * PostgreSQL server backend over a node-postgres pool. Transactions pin one
 * pooled client for BEGIN ... COMMIT/ROLLBACK.
 */
import pg from 'pg';
import type { SqlExecutor, SqlResult } from './sql.ts';

export interface PostgresOptions {
  /** postgres:// or postgresql:// connection URL. */
  url: string;
  /** Pool size. @default 10 */
  maxConnections?: number;
  /** Give up connecting after this long. @default 5000 */
  connectTimeoutMs?: number;
}

/** The URL without its password, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable URL>';
  }
}

/** node-postgres returns bigint (int8) as string; the store converts explicitly where it reads one. */
class PgClientTx implements SqlExecutor {
  readonly description: string;
  readonly #client: pg.PoolClient;

  constructor(description: string, client: pg.PoolClient) {
    this.description = description;
    this.#client = client;
  }

  async query<T>(text: string, params?: readonly unknown[]): Promise<SqlResult<T>> {
    const res = await this.#client.query(text, params ? [...params] : undefined);
    return { rows: res.rows as T[] };
  }

  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return fn(this);
  }

  close(): Promise<void> {
    return Promise.reject(new Error('close() called on a transaction handle; close the executor instead'));
  }
}

export class PostgresExecutor implements SqlExecutor {
  readonly description: string;
  readonly #pool: pg.Pool;
  /** Last error from an idle pooled client (e.g. server restarted); kept for diagnostics. */
  lastIdleError: Error | undefined;

  /** Passive: use `PostgresExecutor.create()`. */
  constructor(description: string, pool: pg.Pool) {
    this.description = description;
    this.#pool = pool;
    // An idle client losing its connection must not crash the process; the
    // pool drops it and the next query opens a fresh one.
    this.#pool.on('error', (err) => {
      this.lastIdleError = err;
    });
  }

  /** Connect and check the server answers; throws a clear error naming host and port when it does not. */
  static async create(opts: PostgresOptions): Promise<PostgresExecutor> {
    let parsed: URL;
    try {
      parsed = new URL(opts.url);
    } catch {
      throw new Error(
        `store URL is not a valid URL: ${redactUrl(opts.url)}; expected postgres://user@host:port/db`,
      );
    }
    const pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.maxConnections ?? 10,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
    });
    const exec = new PostgresExecutor(`postgres://${parsed.host}${parsed.pathname}`, pool);
    try {
      await pool.query('SELECT 1');
    } catch (err) {
      await pool.end().catch(() => undefined);
      const where = `${parsed.hostname || 'localhost'}:${parsed.port || '5432'}`;
      const reason = (err as Error).message || String(err);
      throw new Error(
        `cannot connect to PostgreSQL at ${where} (database ${parsed.pathname.slice(1) || '<default>'}): ${reason}; ` +
          `check the store URL ${redactUrl(opts.url)} and that the server is running and reachable`,
        { cause: err },
      );
    }
    return exec;
  }

  async query<T>(text: string, params?: readonly unknown[]): Promise<SqlResult<T>> {
    const res = await this.#pool.query(text, params ? [...params] : undefined);
    return { rows: res.rows as T[] };
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await fn(new PgClientTx(this.description, client));
      await client.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch {
        // The connection itself failed: do not return it to the pool.
        broken = true;
      }
      throw err;
    } finally {
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
