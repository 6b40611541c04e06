import { describe, expect, it } from 'vitest';
import { MIGRATIONS, migrate } from './migrations.ts';
import type { SqlExecutor } from './sql.ts';

/** Fails the test if the database is touched: ordering is checked before any I/O. */
const untouchable: SqlExecutor = {
  description: 'none',
  query: () => Promise.reject(new Error('database must not be touched')),
  transaction: () => Promise.reject(new Error('database must not be touched')),
  close: () => Promise.resolve(),
};

describe('migrations', () => {
  it('are numbered with strictly increasing integers', () => {
    const versions = MIGRATIONS.map((m) => m.version);
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
    expect(new Set(versions).size).toBe(versions.length);
  });

  it('refuse an out-of-order list before touching the database', async () => {
    const bad = [
      { version: 2, name: 'b', sql: 'SELECT 1' },
      { version: 1, name: 'a', sql: 'SELECT 1' },
    ];
    await expect(migrate(untouchable, bad)).rejects.toThrow(/increasing integers; 1 \(a\) follows 2/);
  });
});
