import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { MIGRATIONS, migrate } from './migrations.ts';
import { openStore } from './open.ts';
import { PgliteExecutor } from './pglite.ts';
import { SqlStore } from './sql-store.ts';
import { runStoreContract } from './store.contract.ts';
import type { AppResource } from '../model/types.ts';
import type { ChangeEvent } from './store.ts';

describe('PGlite store', () => {
  let root = '';
  beforeAll(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'bulwark-pglite-'));
  });
  afterAll(async () => {
    if (root) await fs.rm(root, { recursive: true, force: true });
  });
  // One data directory for the whole file: the first open of a directory runs
  // initdb (seconds). The contract's reopen test proves data lives on disk.
  runStoreContract('pglite', () => openStore({ dataDir: path.join(root, 'data') }));
});

describe('PGlite schema upgrade', () => {
  it('turns tokens created before scopes existed (schema 3) into live admin tokens', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bulwark-pglite-upgrade-'));
    const db = await PgliteExecutor.create(path.join(dir, 'data'));
    try {
      await migrate(
        db,
        MIGRATIONS.filter((m) => m.version <= 3),
      );
      await db.query("INSERT INTO tokens (id, name, hash, created_at) VALUES ('t1', 'admin', $1, now())", [
        'a'.repeat(64),
      ]);
      expect((await migrate(db)).applied).toContain(4);
      const rec = await new SqlStore(db).findTokenByHash('a'.repeat(64));
      expect(rec).toMatchObject({ id: 't1', name: 'admin', scope: 'admin' });
      expect(rec?.revokedAt).toBeUndefined();
    } finally {
      await db.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('PGlite crash safety', () => {
  it('reopens consistently after the writing process is SIGKILLed mid-write: every resource matches its last change event', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bulwark-pglite-crash-'));
    const dataDir = path.join(dir, 'data');
    const child = spawn(
      process.execPath,
      [path.join(import.meta.dirname, 'testdata/crash-writer.ts'), dataDir],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    try {
      let lastAck = -1;
      let output = '';
      let buf = '';
      const onAck: (() => void)[] = [];
      child.stderr.on('data', (b: Buffer) => (output = (output + b.toString()).slice(-2000)));
      child.stdout.on('data', (b: Buffer) => {
        buf += b.toString();
        const lines = buf.split('\n');
        buf = lines.pop() ?? '';
        for (const l of lines) if (l.startsWith('ack ')) lastAck = Number(l.slice(4));
        for (const f of onAck.splice(0)) f();
      });
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const acked = (n: number): Promise<void> =>
        new Promise((resolve, reject) => {
          const check = (): void => {
            if (lastAck >= n) resolve();
            else if (child.exitCode !== null) reject(new Error(`crash writer exited early: ${output}`));
            else onAck.push(check);
          };
          check();
          void exited.then(check);
        });

      await acked(5);
      // While the writer runs, a second process must not open the directory.
      await expect(openStore({ dataDir })).rejects.toThrow(new RegExp(`in use by process ${child.pid}`));
      await acked(40);
      // Kill while the child is in the middle of its next write.
      child.kill('SIGKILL');
      await exited;

      // The dead writer's lock is taken over; recovery replays PGlite's WAL.
      const store = await openStore({ dataDir });
      try {
        const events = await store.changesSince(0, 100_000);
        // Gap-free from 1: no half-written event survived, none went missing.
        expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
        expect(await store.latestSeq()).toBe(events.length);

        const last = new Map<string, ChangeEvent>();
        for (const e of events) last.set(e.key.name, e);
        const stored = await store.list('App', { project: 'crash' });
        const live = [...last.values()].filter((e) => e.type !== 'deleted');
        expect(stored.map((r) => r.metadata.name).sort()).toEqual(live.map((e) => e.key.name).sort());
        for (const r of stored) expect(r).toEqual(last.get(r.metadata.name)!.resource);

        // Every write the child acknowledged before the kill is there.
        const newest = await store.get({ kind: 'App', project: 'crash', name: `a${lastAck}` });
        expect(newest?.status).toEqual({ conditions: [], observedGeneration: 1, workloads: [] });
        // The store is writable after recovery and continues the sequence.
        await store.apply({ ...(stored[0] as AppResource), spec: { workloads: [] } });
        expect(await store.latestSeq()).toBe(events.length + 1);
      } finally {
        await store.close();
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await fs.rm(dir, { recursive: true, force: true });
      await fs.rm(`${dataDir}.lock`, { force: true });
    }
  });
});
