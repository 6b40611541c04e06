import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runDataPlaneContract } from '../dataplane.contract.ts';
import type { ServerSpec } from '../dataplane.ts';
import { request, startBackend, type BackendBehaviour, type TestBackend } from '../testing/backends.ts';
import { HaproxyDataPlane } from './haproxy-dataplane.ts';
import { ensureHaproxy, validateConfig } from './process.ts';
import { freePort } from '../../util/ports.ts';
import { waitFor } from '../../util/time.ts';

const workDirs: string[] = [];
function newWorkDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'bw-haproxy-'));
  workDirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of workDirs) rmSync(d, { recursive: true, force: true });
});

async function newDataPlane(): Promise<HaproxyDataPlane> {
  return await HaproxyDataPlane.create({
    workDir: newWorkDir(),
    binds: [{ address: '127.0.0.1', port: await freePort() }],
  });
}

const server = (b: TestBackend, over: Partial<ServerSpec> = {}): ServerSpec => ({
  name: b.name,
  address: '127.0.0.1',
  port: b.port,
  weight: 100,
  state: 'ready',
  ...over,
});

/** Running (a zombie, e.g. an orphan re-parented to a non-reaping init, counts as gone). */
function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** Cpus_allowed_list of every thread of a process. */
function threadCpus(pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`).map(
    (tid) =>
      /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))?.[1] ?? '?',
  );
}

describe('HaproxyDataPlane pinned to a CPU (render.cpus)', () => {
  it('runs master and worker on that CPU only, one worker thread, and keeps it over a reload', async () => {
    const cpu = os.availableParallelism() - 1;
    const dp = await HaproxyDataPlane.create({
      workDir: newWorkDir(),
      binds: [{ address: '127.0.0.1', port: await freePort() }],
      render: { cpus: [cpu] },
    });
    try {
      const check = () => {
        const st = dp.status().process;
        // The master may run a helper thread for a moment (seen in CI): every thread is pinned.
        expect([...new Set(threadCpus(st.masterPid!))]).toEqual([String(cpu)]);
        // The worker runs exactly one thread (nbthread 1), on that CPU.
        expect(threadCpus(st.workerPid!)).toEqual([String(cpu)]);
      };
      check();
      const before = dp.status().process.workerPid;
      // A structural change reloads: the new worker is forked by the pinned master.
      const r = await dp.sync({ backends: [{ name: 'pin.test.acme', aliases: [], servers: [] }] });
      expect(r.reloaded).toBe(true);
      await waitFor('new worker', () => dp.status().process.workerPid !== before);
      check();
    } finally {
      await dp.close();
    }
  });
});

describe('HaproxyDataPlane contract', () => {
  runDataPlaneContract({ newDataPlane });
});

describe('HaproxyDataPlane with a real HAProxy', () => {
  let dp: HaproxyDataPlane;
  const backends: TestBackend[] = [];
  const start = async (name: string, b?: BackendBehaviour): Promise<TestBackend> => {
    const x = await startBackend(name, b);
    backends.push(x);
    return x;
  };

  beforeAll(async () => {
    dp = await newDataPlane();
  });
  afterAll(async () => {
    await dp?.close();
  });
  afterEach(async () => {
    for (const b of backends.splice(0)) await b.close();
  });

  it('changes membership, weights and states without reloading HAProxy', async () => {
    const a = await start('a');
    const b = await start('b');
    const first = await dp.sync({ backends: [{ name: 'm.app.proj', aliases: [], servers: [server(a)] }] });
    expect(first.reloaded).toBe(true);
    const worker = dp.status().process.workerPid;
    const info = await dp.api.showInfo();
    const steps = [
      [server(a), server(b)],
      [server(a, { weight: 10 }), server(b, { state: 'drain' })],
      [server(a, { state: 'maint' }), server(b)],
      [server(b)],
    ];
    for (const servers of steps) {
      const r = await dp.sync({ backends: [{ name: 'm.app.proj', aliases: [], servers }] });
      expect(r.reloaded).toBe(false);
      expect(r.runtimeCommands).toBeGreaterThan(0);
    }
    expect(dp.status().process.workerPid).toBe(worker);
    expect((await dp.api.showInfo())['Pid']).toBe(info['Pid']);
    const rows = await dp.api.showServersState('m.app.proj');
    expect(rows.map((r) => r.server)).toEqual(['b']);
  });

  it('keeps servers and their states across a structural reload', async () => {
    const a = await start('a');
    const b = await start('b');
    await dp.sync({
      backends: [{ name: 'k.app.proj', aliases: [], servers: [server(a), server(b, { state: 'maint' })] }],
    });
    const r = await dp.sync({
      backends: [
        { name: 'k.app.proj', aliases: ['k.example'], servers: [server(a), server(b, { state: 'maint' })] },
      ],
    });
    expect(r.reloaded).toBe(true);
    const rows = await dp.api.showServersState('k.app.proj');
    expect(rows.map((x) => [x.server, x.adminState & 0x25 ? 'maint' : 'ready'])).toEqual([
      ['a', 'ready'],
      ['b', 'maint'],
    ]);
    const res = await request(`${dp.gatewayUrl}/`, { headers: { host: 'k.example' } });
    expect(res).toMatchObject({ status: 200, body: 'a GET /' });
  });

  it('retries GETs to another server when an instance is killed, with zero client errors', async () => {
    const a = await start('a');
    const b = await start('b');
    await dp.sync({ backends: [{ name: 'r.app.proj', aliases: [], servers: [server(a), server(b)] }] });
    await request(`${dp.gatewayUrl}/proj/app/r/`);
    await a.kill();
    const results = [];
    for (let i = 0; i < 30; i++) results.push(await request(`${dp.gatewayUrl}/proj/app/r/x`));
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    expect(results.every((r) => r.body.startsWith('b '))).toBe(true);
  });

  it('does not replay a POST without Idempotency-Key once the server has read it', async () => {
    const bad = await start('bad', 'reset-after-read');
    const good = await start('good');
    await dp.sync({ backends: [{ name: 'p.app.proj', aliases: [], servers: [server(bad), server(good)] }] });
    const results = [];
    for (let i = 0; i < 10; i++) {
      results.push(await request(`${dp.gatewayUrl}/proj/app/p/pay`, { method: 'POST', body: `{"n":${i}}` }));
    }
    const failed = results.filter((r) => r.status !== 200);
    // Every request reached exactly one server; each one the bad server swallowed failed.
    expect(bad.hits + good.hits).toBe(10);
    expect(bad.hits).toBeGreaterThan(0);
    expect(failed.length).toBe(bad.hits);
    // 502 on a fresh client connection; on a kept-alive one HAProxy closes it
    // silently instead (its "not first request" rule): an error either way.
    expect(failed.every((r) => r.status === 502 || (r.status === 0 && r.error !== undefined))).toBe(true);
  });

  it('retries a POST carrying an Idempotency-Key on another server', async () => {
    const bad = await start('bad', 'reset-after-read');
    const good = await start('good');
    await dp.sync({ backends: [{ name: 'q.app.proj', aliases: [], servers: [server(bad), server(good)] }] });
    const results = [];
    for (let i = 0; i < 10; i++) {
      results.push(
        await request(`${dp.gatewayUrl}/proj/app/q/pay`, {
          method: 'POST',
          headers: { 'idempotency-key': `k-${i}` },
          body: `{"n":${i}}`,
        }),
      );
    }
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    expect(bad.hits).toBeGreaterThan(0);
    expect(good.hits).toBe(10);
  });

  it('answers a GET and a keyed POST from another server when one answers 500, never replays an unkeyed POST', async () => {
    const bad = await start('bad', 'http-500');
    const good = await start('good');
    await dp.sync({ backends: [{ name: 'f.app.proj', aliases: [], servers: [server(bad), server(good)] }] });
    const url = `${dp.gatewayUrl}/proj/app/f/x`;
    const gets = [];
    const keyed = [];
    for (let i = 0; i < 6; i++) {
      gets.push(await request(url));
      keyed.push(
        await request(url, { method: 'POST', headers: { 'idempotency-key': `k-${i}` }, body: `${i}` }),
      );
    }
    expect([...gets, ...keyed].filter((r) => r.status !== 200)).toEqual([]);
    expect([...gets, ...keyed].every((r) => r.body.startsWith('good '))).toBe(true);
    // Round robin sent some first attempts to the failing server: those were retried.
    expect(bad.hits).toBeGreaterThan(0);

    const badBefore = bad.hits;
    const goodBefore = good.hits;
    const posts = [];
    for (let i = 0; i < 6; i++) posts.push(await request(url, { method: 'POST', body: `${i}` }));
    const failed = posts.filter((r) => r.status !== 200);
    // Each POST reached exactly one server; every one the failing server saw got its 500.
    expect(bad.hits - badBefore + (good.hits - goodBefore)).toBe(6);
    expect(failed.length).toBe(bad.hits - badBefore);
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.every((r) => r.status === 500 && r.body.startsWith('bad POST'))).toBe(true);
  });

  it('adds X-Request-Id and a W3C traceparent only when absent', async () => {
    const a = await start('a');
    await dp.sync({ backends: [{ name: 't.app.proj', aliases: [], servers: [server(a)] }] });
    await request(`${dp.gatewayUrl}/proj/app/t/`);
    expect(a.lastHeaders?.['traceparent']).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(a.lastHeaders?.['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    // Fresh ids per request, and a parent id that is not a piece of the trace id.
    const first = String(a.lastHeaders?.['traceparent']);
    await request(`${dp.gatewayUrl}/proj/app/t/`);
    const second = String(a.lastHeaders?.['traceparent']);
    expect(second).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(second.slice(3, 35)).not.toBe(first.slice(3, 35));
    expect(second.slice(36, 52)).not.toBe(first.slice(36, 52));
    expect(second.slice(3, 35)).not.toContain(second.slice(36, 52));
    // Only one header sent: the other is still generated, and random.
    await request(`${dp.gatewayUrl}/proj/app/t/`, { headers: { 'x-request-id': 'only-rid' } });
    expect(a.lastHeaders?.['x-request-id']).toBe('only-rid');
    expect(a.lastHeaders?.['traceparent']).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(String(a.lastHeaders?.['traceparent']).slice(3, 35)).not.toBe(second.slice(3, 35));
    const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    await request(`${dp.gatewayUrl}/proj/app/t/`, { headers: { traceparent: tp, 'x-request-id': 'r1' } });
    expect(a.lastHeaders?.['traceparent']).toBe(tp);
    expect(a.lastHeaders?.['x-request-id']).toBe('r1');
    expect(a.lastHeaders?.['x-forwarded-prefix']).toBe('/proj/app/t');
  });

  it('answers 503 naming the service when no instance is available', async () => {
    const a = await start('a');
    await dp.sync({
      backends: [{ name: 'u.app.proj', aliases: [], servers: [server(a, { state: 'maint' })] }],
    });
    const r = await request(`${dp.gatewayUrl}/proj/app/u/`);
    expect(r.status).toBe(503);
    expect(r.body).toContain("'u.app.proj'");
  });

  it('restarts HAProxy after a crash with the same servers', async () => {
    const a = await start('a');
    await dp.sync({ backends: [{ name: 'c.app.proj', aliases: [], servers: [server(a)] }] });
    const before = dp.status().process;
    process.kill(before.workerPid ?? 0, 'SIGKILL');
    await waitFor(
      'restart',
      () => dp.status().process.restarts === before.restarts + 1 && dp.status().process.state === 'running',
      {
        timeoutMs: 10_000,
      },
    );
    expect(dp.status().process.masterPid).not.toBe(before.masterPid);
    const r = await waitFor('traffic after restart', async () => {
      const x = await request(`${dp.gatewayUrl}/proj/app/c/`);
      return x.status === 200 ? x : undefined;
    });
    expect(r.body).toBe('a GET /');
  });
});

describe('HaproxyDataPlane request logs over UDP', () => {
  it('delivers parsed request logs with logTransport udp', async () => {
    const a = await startBackend('a');
    const dp = await HaproxyDataPlane.create({
      workDir: newWorkDir(),
      binds: [{ address: '127.0.0.1', port: await freePort() }],
      logTransport: 'udp',
    });
    try {
      const seen: string[] = [];
      dp.onRequest((l) => seen.push(`${l.server} ${l.status} ${l.path}`));
      await dp.sync({ backends: [{ name: 'l.app.proj', aliases: [], servers: [server(a)] }] });
      await request(`${dp.gatewayUrl}/proj/app/l/udp`);
      await waitFor('udp log', () => seen.includes('a 200 /proj/app/l/udp'), { timeoutMs: 3000 });
      expect(dp.status().syslog?.transport).toBe('udp');
    } finally {
      await dp.close();
      await a.close();
    }
  });
});

describe('HaproxyDataPlane request logs over a Unix socket', () => {
  it('delivers parsed request logs with logTransport unix, through a socket in its work dir', async () => {
    const a = await startBackend('a');
    const workDir = newWorkDir();
    const dp = await HaproxyDataPlane.create({
      workDir,
      binds: [{ address: '127.0.0.1', port: await freePort() }],
      logTransport: 'unix',
    });
    try {
      const seen: string[] = [];
      dp.onRequest((l) => seen.push(`${l.server} ${l.status} ${l.path}`));
      await dp.sync({ backends: [{ name: 'u.app.proj', aliases: [], servers: [server(a)] }] });
      for (let i = 0; i < 20; i++) await request(`${dp.gatewayUrl}/proj/app/u/unix${i}`);
      await waitFor('unix logs', () => seen.length === 20, { timeoutMs: 5000 });
      expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => `a 200 /proj/app/u/unix${i}`));
      expect(dp.status().syslog).toMatchObject({
        transport: 'unix',
        path: path.join(path.resolve(workDir), 'log.sock'),
        connections: 1,
        unparsable: 0,
      });
    } finally {
      await dp.close();
      await a.close();
    }
  });
});

describe('HAProxy process ownership', () => {
  it('replaces a stale HAProxy left on the same work dir by a previous run', async () => {
    const workDir = newWorkDir();
    const port = await freePort();
    const script = path.join(workDir, 'orphan.ts');
    writeFileSync(
      script,
      `import { HaproxyDataPlane } from ${JSON.stringify(path.resolve('src/dataplane/haproxy/haproxy-dataplane.ts'))};
const dp = await HaproxyDataPlane.create({ workDir: ${JSON.stringify(workDir)}, binds: [{ address: '127.0.0.1', port: ${port} }] });
console.log(dp.status().process.masterPid);
process.exit(0);`,
    );
    // A control plane that dies without closing its data plane leaves HAProxy running.
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => child.on('exit', r));
    const stalePid = Number(out.trim());
    expect(alive(stalePid)).toBe(true);

    const dp = await HaproxyDataPlane.create({ workDir, binds: [{ address: '127.0.0.1', port }] });
    try {
      expect(alive(stalePid)).toBe(false);
      expect(dp.status().process.staleStopped).toBeGreaterThanOrEqual(1);
      expect(dp.status().process.state).toBe('running');
    } finally {
      await dp.close();
    }
    expect(alive(dp.status().process.masterPid)).toBe(false);
  });

  it('reports a configuration HAProxy rejects with its own message', async () => {
    const dir = newWorkDir();
    const cfg = path.join(dir, 'bad.cfg');
    writeFileSync(cfg, 'defaults\n  mode http\n  bogus-keyword 1\n');
    await expect(validateConfig('/usr/sbin/haproxy', cfg)).rejects.toThrow(/bogus-keyword/);
  });

  it('names the install command when the haproxy binary is missing', async () => {
    await expect(ensureHaproxy({ binary: '/nonexistent/haproxy' })).rejects.toThrow(
      /apt-get install -y haproxy/,
    );
  });
});
