import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startPostgres } from '../../test/support/postgres.ts';
import type { PostgresServer } from '../../test/support/postgres.ts';
import { freePort } from '../util/ports.ts';
import { MIGRATIONS, migrate } from './migrations.ts';
import { openStore } from './open.ts';
import { app, runStoreContract } from './store.contract.ts';

describe('PostgreSQL store', () => {
  let server: PostgresServer;

  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    await server?.stop();
  });

  runStoreContract('postgres', () => openStore({ url: server.url }));

  /** A fresh, empty database on the test server; returns its URL. */
  async function freshDatabase(name: string): Promise<string> {
    const c = new pg.Client({ connectionString: server.url });
    await c.connect();
    try {
      await c.query(`CREATE DATABASE ${name}`);
    } finally {
      await c.end();
    }
    return server.url.replace(/\/postgres$/, `/${name}`);
  }

  it('migrates once when two control planes start against an empty database at the same time', async () => {
    const url = await freshDatabase('race_migrate');
    const stores = await Promise.all([openStore({ url }), openStore({ url }), openStore({ url })]);
    try {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      const { rows } = await c.query<{ version: number }>(
        'SELECT version FROM schema_migrations ORDER BY version',
      );
      await c.end();
      expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
      expect((await stores[0]!.apply(app('p', 'api'))).action).toBe('created');
      expect(
        (await stores[1]!.get({ kind: 'App', project: 'p', name: 'api' }))?.metadata.resourceVersion,
      ).toBe(1);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('keeps the change log gap-free and in commit order when two store instances write concurrently', async () => {
    const url = await freshDatabase('race_writers');
    const [a, b] = await Promise.all([openStore({ url }), openStore({ url })]);
    try {
      const writes: Promise<unknown>[] = [];
      for (let i = 0; i < 10; i++) {
        writes.push(a.apply(app('p', 'shared', i + 1)));
        writes.push(b.apply(app('p', 'shared', 100 + i)));
        writes.push((i % 2 ? a : b).apply(app('p', `own${i}`)));
      }
      await Promise.all(writes);
      const events = await a.changesSince(0);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      const shared = events.filter((e) => e.key.name === 'shared');
      expect(shared.map((e) => e.resource.metadata.resourceVersion)).toEqual(shared.map((_, i) => i + 1));
      expect(await b.latestSeq()).toBe(events.length);
      expect(await b.get({ kind: 'App', project: 'p', name: 'shared' })).toEqual(shared.at(-1)!.resource);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('refuses to run against a schema newer than this build and applies a new migration exactly once', async () => {
    const url = await freshDatabase('schema_versions');
    const store = await openStore({ url });
    try {
      const latest = MIGRATIONS.at(-1)!.version;
      await expect(migrate(store.executor, [])).rejects.toThrow(
        new RegExp(`schema is at version ${latest} but this build only knows up to 0`),
      );
      const broken = [
        ...MIGRATIONS,
        {
          version: 999,
          name: 'half done',
          sql: 'CREATE TABLE half (x int); SELECT no_such_column FROM half',
        },
      ];
      await expect(migrate(store.executor, broken)).rejects.toThrow(/migration 999 \(half done\) failed/);
      const { rows } = await store.executor.query<{ t: string | null }>(
        "SELECT to_regclass('half')::text AS t",
        [],
      );
      expect(rows[0]!.t).toBeNull();
      const next = [
        ...MIGRATIONS,
        { version: 1000, name: 'test column', sql: 'ALTER TABLE tokens ADD COLUMN note text' },
      ];
      expect(await migrate(store.executor, next)).toEqual({ applied: [1000], version: 1000 });
      expect(await migrate(store.executor, next)).toEqual({ applied: [], version: 1000 });
    } finally {
      await store.close();
    }
  });

  it('names the host and port and says to check the URL when the server is unreachable', async () => {
    const port = await freePort();
    await expect(openStore({ url: `postgres://bulwark:s3cret@127.0.0.1:${port}/bulwark` })).rejects.toThrow(
      new RegExp(`cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${port}.*check the store URL`),
    );
    await expect(
      openStore({ url: `postgres://bulwark:s3cret@127.0.0.1:${port}/bulwark` }),
    ).rejects.not.toThrow(/s3cret/);
  });

  it('rejects a store URL that is not postgres:// with a clear error', async () => {
    await expect(openStore({ url: 'mysql://db:3306/x' })).rejects.toThrow(/must start with postgres:\/\//);
  });
});
