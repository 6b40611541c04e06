/**
 * The SQL executor seam: the only thing `SqlStore` and the migrations need
 * from a database. PGlite (embedded) and node-postgres (server) both
 * implement it, so one schema and one set of queries serve both backends.
 */

export interface SqlResult<T> {
  rows: T[];
}

export interface SqlExecutor {
  /** "pglite:/path" or "postgres://host:port/db" (never contains a password). */
  readonly description: string;
  /** Run one parameterised statement ($1, $2, ...). */
  query<T = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<SqlResult<T>>;
  /**
   * Run `fn` in one transaction: COMMIT when it resolves, ROLLBACK when it
   * throws (the error is re-thrown). Calling `transaction` on the `tx` handed
   * to `fn` joins the outer transaction rather than nesting.
   */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** SQLSTATE of a PostgreSQL error (same shape from pg and PGlite), or undefined. */
export function sqlState(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

export const UNIQUE_VIOLATION = '23505';
