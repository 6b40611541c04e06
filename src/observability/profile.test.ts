/**
 * The Profiler against real Node.js processes (the driver is a lookup table:
 * what is under test is the inspector's exposure, closing and the audit log).
 */
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { InstanceStatus } from '../runtime/driver.ts';
import { listeningSocketsOf } from '../profiling/proc-net.ts';
import { startServer, type Fixture } from '../profiling/testdata/fixtures.ts';
import { Profiler, ProfileTargetError } from './profile.ts';

let dir: string;
const running: Fixture[] = [];
const instances = new Map<string, InstanceStatus>();
const caller = { tokenId: '3f1c0d2e-0000-4000-8000-000000000001', tokenName: 'ops-alice' };

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'bulwark-profiler-'));
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((f) => f.stop()));
  instances.clear();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function instance(id: string, opts: Parameters<typeof startServer>[0]): Promise<Fixture> {
  const f = await startServer(opts);
  running.push(f);
  instances.set(id, {
    id,
    site: 'local',
    project: 'p',
    app: 'a',
    workload: 'w',
    ordinal: 0,
    specHash: 'h',
    phase: 'running',
    ready: true,
    pid: f.pid,
    ip: '127.0.0.1',
    ports: { http: f.port },
    restarts: 0,
    isolation: {},
  });
  return f;
}

const profiler = (): Profiler =>
  new Profiler({
    dir,
    driver: { get: (id) => instances.get(id), logs: async () => [] },
  });

async function audit(): Promise<Record<string, unknown>[]> {
  const text = await readFile(path.join(dir, 'audit.jsonl'), 'utf8');
  return text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('Profiler', () => {
  it('profiles an unprivileged instance on a random port, closes it, and audits the caller', async () => {
    const f = await instance('i-random', { env: { NODE_OPTIONS: '--inspect-port=0' } });
    const rec = await profiler().profile({ instanceId: 'i-random', durationSeconds: 1, caller });
    expect(rec.via).toBe('host-loopback');
    expect(rec.inspectorPort).not.toBe(9229);
    expect(rec.inspectorClosed).toBe(true);
    expect(rec.caller).toEqual(caller);
    // The instance's own TCP table: only the app listens, no inspector is left open.
    expect((await listeningSocketsOf(f.pid)).map((s) => s.port)).toEqual([f.port]);
    const entries = (await audit()).filter((e) => e.profile === rec.id);
    expect(entries.map((e) => e.event)).toEqual(['started', 'finished']);
    for (const e of entries) expect(e.caller).toEqual(caller);
    expect(entries[1]).toMatchObject({
      via: 'host-loopback',
      inspectorPort: rec.inspectorPort,
      inspectorClosed: true,
      foreignClients: [],
    });
  });

  it('refuses an unprivileged instance without a random inspector port, audited as failed with the caller', async () => {
    const f = await instance('i-fixed', {});
    const err = await profiler()
      .profile({ instanceId: 'i-fixed', durationSeconds: 1, caller })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProfileTargetError);
    expect((err as ProfileTargetError).code).toBe('unsafe');
    expect((await listeningSocketsOf(f.pid)).map((s) => s.port)).toEqual([f.port]);
    const failed = (await audit()).filter((e) => e.instance === 'i-fixed' && e.event === 'failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ caller, code: 'unsafe' });
    expect(String(failed[0]?.error)).toMatch(/the default 9229/);
  });

  it('refuses a request without a caller: nothing is profiled unaudited', async () => {
    await instance('i-anon', { nodeArgs: ['--inspect-port=0'] });
    const req = { instanceId: 'i-anon', durationSeconds: 1 } as unknown as Parameters<Profiler['profile']>[0];
    await expect(profiler().profile(req)).rejects.toThrow(/caller \(tokenId, tokenName\) is required/);
  });
});
