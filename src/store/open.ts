/**
 * Open the configured store: a postgres:// or postgresql:// URL selects a
 * PostgreSQL server, anything else the embedded PGlite at `dataDir`. The
 * schema is migrated before the store is returned.
 */
import { migrate } from './migrations.ts';
import { PgliteExecutor } from './pglite.ts';
import { PostgresExecutor } from './postgres.ts';
import type { SqlExecutor } from './sql.ts';
import { SqlStore } from './sql-store.ts';

export interface OpenStoreOptions {
  /** postgres://user:pass@host:port/db; when absent, the embedded store is used. */
  url?: string;
  /** PGlite data directory. @default ".bulwark/data" */
  dataDir?: string;
}

export const DEFAULT_DATA_DIR = '.bulwark/data';

export async function openStore(opts: OpenStoreOptions = {}): Promise<SqlStore> {
  const executor = await openExecutor(opts);
  try {
    await migrate(executor);
  } catch (err) {
    await executor.close().catch(() => undefined);
    throw new Error(`cannot prepare the store schema in ${executor.description}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return new SqlStore(executor);
}

async function openExecutor(opts: OpenStoreOptions): Promise<SqlExecutor> {
  const url = opts.url?.trim();
  if (url) {
    if (/^postgres(ql)?:\/\//i.test(url)) return await PostgresExecutor.create({ url });
    throw new Error(
      `store URL must start with postgres:// or postgresql://, got "${url.split('://')[0]}://..."; ` +
        'leave the URL empty to use the embedded store in dataDir',
    );
  }
  return await PgliteExecutor.create(opts.dataDir ?? DEFAULT_DATA_DIR);
}
