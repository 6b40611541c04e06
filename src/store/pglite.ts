/**
 * Embedded PostgreSQL (PGlite, WebAssembly) with its data directory on disk:
 * the zero-setup default store. One process owns a data directory at a time;
 * PGlite serialises queries and transactions inside that process.
 */
import { PGlite } from '@electric-sql/pglite';
import type { Transaction } from '@electric-sql/pglite';
import fs from 'node:fs/promises';
import path from 'node:path';
import { lockDataDir } from './data-dir-lock.ts';
import type { DataDirLock } from './data-dir-lock.ts';
import type { SqlExecutor, SqlResult } from './sql.ts';

type Queryable = Pick<Transaction, 'query' | 'exec'>;

/**
 * Without params, use the simple query protocol (`exec`) like node-postgres
 * does, so multi-statement text such as a migration runs the same on both.
 */
async function run<T>(db: Queryable, text: string, params?: readonly unknown[]): Promise<SqlResult<T>> {
  if (!params) {
    const results = await db.exec(text);
    return { rows: (results.at(-1)?.rows ?? []) as T[] };
  }
  const res = await db.query<T>(text, [...params]);
  return { rows: res.rows };
}

/** A handle on an open PGlite transaction; nested `transaction` calls join it. */
class PgliteTx implements SqlExecutor {
  readonly description: string;
  readonly #tx: Transaction;

  constructor(description: string, tx: Transaction) {
    this.description = description;
    this.#tx = tx;
  }

  query<T>(text: string, params?: readonly unknown[]): Promise<SqlResult<T>> {
    return run<T>(this.#tx, text, params);
  }

  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return fn(this);
  }

  close(): Promise<void> {
    return Promise.reject(new Error('close() called on a transaction handle; close the executor instead'));
  }
}

export class PgliteExecutor implements SqlExecutor {
  readonly description: string;
  readonly dataDir: string;
  readonly #db: PGlite;
  readonly #lock: DataDirLock;

  /** Passive: use `PgliteExecutor.create()`. */
  constructor(dataDir: string, db: PGlite, lock: DataDirLock) {
    this.dataDir = dataDir;
    this.description = `pglite:${dataDir}`;
    this.#db = db;
    this.#lock = lock;
  }

  /**
   * Open (creating if needed) the database in `dataDir`. The first open of a
   * new directory runs initdb and takes a few seconds; later opens are fast.
   * Fails with a clear error when another live process has it open.
   */
  static async create(dataDir: string): Promise<PgliteExecutor> {
    const abs = path.resolve(dataDir);
    try {
      // The database holds token hashes and every App's env (secrets): this user's alone.
      await fs.mkdir(abs, { recursive: true, mode: 0o700 });
      const st = await fs.stat(abs);
      if ((st.mode & 0o077) !== 0) await fs.chmod(abs, st.mode & 0o700);
    } catch (err) {
      throw new Error(`cannot create the PGlite data directory ${abs}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const lock = await lockDataDir(abs);
    let db: PGlite;
    try {
      db = await PGlite.create(abs);
    } catch (err) {
      await lock.release();
      throw new Error(
        `cannot open the PGlite data directory ${abs}: ${String((err as Error).message ?? err)}; ` +
          'check that it is a PGlite data directory not used by another process, or point dataDir elsewhere',
        { cause: err },
      );
    }
    return new PgliteExecutor(abs, db, lock);
  }

  query<T>(text: string, params?: readonly unknown[]): Promise<SqlResult<T>> {
    return run<T>(this.#db, text, params);
  }

  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
    return this.#db.transaction((tx) => fn(new PgliteTx(this.description, tx)));
  }

  async close(): Promise<void> {
    try {
      if (!this.#db.closed) await this.#db.close();
    } finally {
      await this.#lock.release();
    }
  }
}
