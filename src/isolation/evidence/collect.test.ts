import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { InstanceStatus } from '../../runtime/driver.ts';
import { createNetns, deleteNetns, startServer, type Fixture } from '../../profiling/testdata/fixtures.ts';
import { processState } from '../../profiling/proc-net.ts';
import { waitFor } from '../../util/time.ts';
import { collectEvidence } from './collect.ts';
import { packBundle, readManifest } from './retention.ts';

let root: string;
const running: Fixture[] = [];
const netns = `bwev-${process.pid}`;
const cgParent = `bwev-${process.pid}`;
const cgroup = `${cgParent}/inst`;
const CG_ROOT = '/sys/fs/cgroup';
const controllers = ['memory', 'cpu', 'cpuacct'];
const MEMORY_LIMIT = 256 * 1024 * 1024;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'bulwark-evidence-'));
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((f) => f.stop()));
});
afterAll(async () => {
  await deleteNetns(netns);
  for (const c of controllers) {
    for (const d of [cgroup, cgParent]) await rmdir(path.join(CG_ROOT, c, d)).catch(() => undefined);
  }
  await rm(root, { recursive: true, force: true });
});

async function start(opts: Parameters<typeof startServer>[0] = {}): Promise<Fixture> {
  const f = await startServer(opts);
  running.push(f);
  return f;
}

function instanceOf(f: Fixture | undefined, isolation: InstanceStatus['isolation'] = {}): InstanceStatus {
  return {
    id: 'bank.accounts.api-0-test',
    site: 'local',
    project: 'bank',
    app: 'accounts',
    workload: 'api',
    ordinal: 0,
    specHash: 'h',
    phase: 'quarantined',
    ready: false,
    ...(f ? { pid: f.pid } : {}),
    ip: '127.0.0.1',
    ports: f ? { http: f.port } : {},
    restarts: 0,
    isolation,
  };
}

const logsOf = (f: Fixture) => async (): Promise<string[]> => [...f.lines];

describe('collectEvidence', () => {
  it('collects every part of a live Node.js instance in its own netns and cgroup, and packs it', async () => {
    await createNetns(netns);
    for (const c of controllers) await mkdir(path.join(CG_ROOT, c, cgroup), { recursive: true });
    await writeFile(path.join(CG_ROOT, 'memory', cgroup, 'memory.limit_in_bytes'), String(MEMORY_LIMIT));
    const f = await start({
      netns,
      cgroupProcs: controllers.map((c) => path.join(CG_ROOT, c, cgroup, 'cgroup.procs')),
    });

    const b = await collectEvidence({
      instance: instanceOf(f, { netns, cgroup }),
      logs: logsOf(f),
      requestHistory: [{ status: 503, at: 1 }],
      probeHistory: [{ ok: false, at: 2 }],
      outDir: root,
      profileDurationMs: 800,
    });

    expect(Object.fromEntries(Object.entries(b.parts).map(([k, p]) => [k, p.status]))).toEqual({
      instance: 'ok',
      logs: 'ok',
      process: 'ok',
      cgroup: 'ok',
      sockets: 'ok',
      history: 'ok',
      profile: 'ok',
    });
    expect(await readManifest(b.dir)).toEqual(b);
    expect(b).toMatchObject({ pid: f.pid, netns, cgroup, instanceId: 'bank.accounts.api-0-test' });
    for (const p of Object.values(b.parts))
      for (const file of p.files) expect(existsSync(path.join(b.dir, file))).toBe(true);

    expect(await readFile(path.join(b.dir, 'logs.txt'), 'utf8')).toContain(`listening ${f.port}`);
    expect(b.parts.process.data).toMatchObject({ state: expect.stringMatching(/^[RS]/) as unknown });
    const proc = b.parts.process.data as {
      threads: number;
      rssBytes: number;
      openFds: number;
      userCpuMs: number;
    };
    expect(proc.threads).toBeGreaterThan(1);
    expect(proc.rssBytes).toBeGreaterThan(10 * 1024 * 1024);
    expect(proc.openFds).toBeGreaterThan(3);
    const cg = b.parts.cgroup.data as {
      memory: { limitBytes: number; usageBytes: number; stat: Record<string, number> };
    };
    expect(cg.memory.limitBytes).toBe(MEMORY_LIMIT);
    expect(cg.memory.usageBytes).toBeGreaterThan(0);
    expect(cg.memory.stat.rss).toBeGreaterThan(0);
    expect((b.parts.cgroup.data as { cpuacctUsageNs: number }).cpuacctUsageNs).toBeGreaterThan(0);
    expect(await readFile(path.join(b.dir, 'sockets.txt'), 'utf8')).toMatch(
      new RegExp(`LISTEN .*127\\.0\\.0\\.1:${f.port} .*pid=${f.pid},`),
    );
    expect(JSON.parse(await readFile(path.join(b.dir, 'requests.json'), 'utf8'))).toEqual([
      { status: 503, at: 1 },
    ]);
    const prof = b.parts.profile.data as { inspectorClosed: boolean; samples: number };
    expect(prof.inspectorClosed).toBe(true);
    expect(prof.samples).toBeGreaterThan(100);
    expect(f.child.exitCode).toBeNull();

    const tgz = await packBundle(b.dir);
    const listing = execFileSync('tar', ['-tzf', tgz], { encoding: 'utf8' });
    expect(listing).toContain(`${path.basename(b.dir)}/manifest.json`);
    expect(listing).toMatch(/profile\/cpu-\d+-.*\.cpuprofile/);
  });

  it('produces the bundle of a SIGSTOPped process quickly, with the profile skipped and state T recorded', async () => {
    const f = await start({ nodeArgs: ['--inspect-port=0'] });
    process.kill(f.pid, 'SIGSTOP');
    // kill() returns before the kernel has stopped the target: wait for state T.
    await waitFor('state T', async () => (await processState(f.pid)) === 'T', {
      timeoutMs: 2000,
      intervalMs: 5,
    });
    const t0 = Date.now();
    const b = await collectEvidence({ instance: instanceOf(f), logs: logsOf(f), outDir: root });
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(b.parts.profile.status).toBe('skipped');
    expect(b.parts.profile.reason).toMatch(/is stopped \(state T\)/);
    expect(b.parts.process).toMatchObject({
      status: 'ok',
      data: { state: expect.stringMatching(/^T/) as unknown },
    });
    expect(b.parts.sockets.status).toBe('ok');
    expect(await readFile(path.join(b.dir, 'sockets.txt'), 'utf8')).toContain(`pid=${f.pid},`);
    expect(b.parts.cgroup).toMatchObject({
      status: 'skipped',
      reason: expect.stringMatching(/no cgroup/) as unknown,
    });
    expect(b.parts.history.status).toBe('skipped');
  });

  it('records an inspector timeout for a process whose main thread is blocked, within the budget', async () => {
    const f = await start({ env: { FIXTURE_BLOCK_AFTER_MS: '50' }, nodeArgs: ['--inspect-port=0'] });
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    const b = await collectEvidence({
      instance: instanceOf(f),
      logs: logsOf(f),
      outDir: root,
      inspectorTimeoutMs: 600,
    });
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(b.parts.profile.status).toBe('timeout');
    expect(b.parts.profile.reason).toMatch(/did not open within 600 ms/);
    expect(b.parts.process.status).toBe('ok');
    expect(b.parts.logs.status).toBe('ok');
  });

  it('still writes a bundle when the process is gone and the log reader fails or hangs', async () => {
    const failing = await collectEvidence({
      instance: { ...instanceOf(undefined), phase: 'failed' },
      logs: () => Promise.reject(new Error('log file unreadable')),
      outDir: root,
    });
    expect(failing.parts.logs).toMatchObject({ status: 'failed', reason: 'log file unreadable' });
    expect(failing.parts.process).toMatchObject({
      status: 'skipped',
      reason: 'instance has no process (phase failed)',
    });
    expect(failing.parts.profile.status).toBe('skipped');
    expect(failing.parts.instance.status).toBe('ok');

    const t0 = Date.now();
    const hanging = await collectEvidence({
      instance: instanceOf(undefined),
      logs: () => new Promise<string[]>(() => undefined),
      outDir: root,
      partBudgetMs: 300,
    });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(hanging.parts.logs).toMatchObject({ status: 'timeout', reason: 'did not finish within 300 ms' });
    expect(existsSync(path.join(hanging.dir, 'manifest.json'))).toBe(true);
  });
});
