import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../util/time.ts';
import { ProfileError, profileNodeProcess } from './inspector.ts';
import { listeningSocketsOf, processState } from './proc-net.ts';
import { createNetns, deleteNetns, runLoad, sh, startServer, type Fixture } from './testdata/fixtures.ts';

const SNOOP = fileURLToPath(new URL('./testdata/snoop.ts', import.meta.url));

let outDir: string;
const running: Fixture[] = [];
const netns = `bwprof-${process.pid}`;

beforeAll(async () => {
  outDir = await mkdtemp(path.join(tmpdir(), 'bulwark-profile-'));
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((f) => f.stop()));
});
afterAll(async () => {
  await deleteNetns(netns);
  await rm(outDir, { recursive: true, force: true });
});

let netnsCreated = false;
async function useNetns(): Promise<void> {
  if (!netnsCreated) await createNetns(netns);
  netnsCreated = true;
}

async function start(opts: Parameters<typeof startServer>[0] = {}): Promise<Fixture> {
  const f = await startServer(opts);
  running.push(f);
  return f;
}

async function expectValidProfile(cpuProfilePath: string, foldedPath: string): Promise<void> {
  const profile = JSON.parse(await readFile(cpuProfilePath, 'utf8')) as {
    nodes: unknown[];
    samples: number[];
  };
  expect(profile.nodes.length).toBeGreaterThan(1);
  expect(profile.samples.length).toBeGreaterThan(100);
  const folded = await readFile(foldedPath, 'utf8');
  expect(folded).toMatch(/^\S.* \d+$/m);
  // The request handler's own frame is in the profile: it really sampled the app under load.
  expect(folded).toMatch(/work \(.*server\.ts:\d+\)/);
}

describe('profileNodeProcess', () => {
  it('profiles a host process under load on a random inspector port: same pid, no failed request, port closed', async () => {
    // --inspect-port=0: SIGUSR1 opens the inspector on a random port, as Bulwark recommends without netns.
    const f = await start({ nodeArgs: ['--inspect-port=0'] });
    const load = runLoad(`http://127.0.0.1:${f.port}/`, 2500);
    await new Promise((r) => setTimeout(r, 300));
    const r = await profileNodeProcess({
      pid: f.pid,
      durationMs: 1500,
      outDir,
      logTail: async () => f.lines,
    });
    const l = await load;

    expect(l.failed, l.errors.join('; ')).toBe(0);
    expect(l.ok).toBeGreaterThan(50);
    expect(await processState(f.pid)).toMatch(/[RS]/);
    expect(f.child.exitCode).toBeNull();
    expect(r.inspectorClosed).toBe(true);
    expect(r.audit.via).toBe('host-loopback');
    expect(r.audit.inspectorPort).not.toBe(9229);
    expect((await listeningSocketsOf(f.pid)).map((s) => s.port)).toEqual([f.port]);
    expect(r.heap?.usedSize).toBeGreaterThan(0);
    expect(r.heap?.memoryUsage?.rss).toBeGreaterThan(0);
    expect(r.heap?.heapStatistics?.heap_size_limit).toBeGreaterThan(0);
    expect(r.durationMs).toBeGreaterThanOrEqual(1500);
    expect(r.warnings).toEqual([]);
    await expectValidProfile(r.cpuProfilePath, r.foldedPath);
    // Still serving after the profile.
    expect((await runLoad(`http://127.0.0.1:${f.port}/`, 200)).failed).toBe(0);
  });

  it('profiles a process inside its own network namespace on 9229 there, and nothing listens on 9229 afterwards', async () => {
    await useNetns();
    const f = await start({ netns });
    const load = runLoad(`http://127.0.0.1:${f.port}/`, 2500, netns);
    await new Promise((r) => setTimeout(r, 300));
    const r = await profileNodeProcess({ pid: f.pid, netns, durationMs: 1500, outDir });
    const l = await load;

    expect(l.failed, l.errors.join('; ')).toBe(0);
    expect(l.ok).toBeGreaterThan(50);
    expect(f.child.exitCode).toBeNull();
    expect(r.audit).toMatchObject({ via: 'netns', netns, inspectorPort: 9229 });
    expect(r.inspectorClosed).toBe(true);
    expect(await sh('ip', ['netns', 'exec', netns, 'ss', '-Htln', 'sport = :9229'])).toBe('');
    // The inspector was never on the host loopback.
    expect(f.lines.join('\n')).toContain('Debugger listening on ws://127.0.0.1:9229/');
    await expectValidProfile(r.cpuProfilePath, r.foldedPath);
  });

  it('profiles a process spinning in JavaScript (V8 interrupts still answer) and closes the inspector', async () => {
    const f = await start({ env: { FIXTURE_BUSY_AFTER_MS: '50' }, nodeArgs: ['--inspect-port=0'] });
    await new Promise((r) => setTimeout(r, 200));
    const r = await profileNodeProcess({ pid: f.pid, durationMs: 500, outDir });
    expect(r.inspectorClosed).toBe(true);
    // The heaviest stack is the spinning timer callback, not idle time.
    const top = (await readFile(r.foldedPath, 'utf8')).split('\n')[0] ?? '';
    expect(top).toMatch(/listOnTimeout/);
    expect(Number(top.split(' ').at(-1))).toBeGreaterThan(r.samples / 2);
  });

  it('refuses a stopped process at once and does not send SIGUSR1 (no inspector after SIGCONT)', async () => {
    const f = await start({ nodeArgs: ['--inspect-port=0'] });
    process.kill(f.pid, 'SIGSTOP');
    // kill() returns before the kernel has stopped the target: wait for state T.
    await waitFor('state T', async () => (await processState(f.pid)) === 'T', {
      timeoutMs: 2000,
      intervalMs: 5,
    });
    const t0 = Date.now();
    const err = await profileNodeProcess({ pid: f.pid, durationMs: 1000, outDir }).catch((e: unknown) => e);
    expect(Date.now() - t0).toBeLessThan(500);
    expect(err).toBeInstanceOf(ProfileError);
    expect((err as ProfileError).code).toBe('stopped');
    expect((err as Error).message).toMatch(/is stopped \(state T\)/);
    process.kill(f.pid, 'SIGCONT');
    await new Promise((r) => setTimeout(r, 300));
    expect((await listeningSocketsOf(f.pid)).map((s) => s.port)).toEqual([f.port]);
  });

  it('gives up with inspector-not-open when the main thread is blocked in native code', async () => {
    const f = await start({ env: { FIXTURE_BLOCK_AFTER_MS: '50' }, nodeArgs: ['--inspect-port=0'] });
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    const err = await profileNodeProcess({ pid: f.pid, durationMs: 1000, outDir, openTimeoutMs: 800 }).catch(
      (e: unknown) => e,
    );
    expect(Date.now() - t0).toBeLessThan(2000);
    expect((err as ProfileError).code).toBe('inspector-not-open');
    expect((err as Error).message).toMatch(/did not open within 800 ms/);
  });

  it('refuses a host process whose inspector port is fixed, without sending SIGUSR1', async () => {
    for (const nodeArgs of [[], ['--inspect-port=9230'], ['--inspect-port=0.0.0.0:0']]) {
      const f = await start({ nodeArgs });
      const err = await profileNodeProcess({ pid: f.pid, durationMs: 500, outDir }).catch((e: unknown) => e);
      expect(err, nodeArgs.join(' ')).toBeInstanceOf(ProfileError);
      expect((err as ProfileError).code).toBe('unsafe');
      expect((err as Error).message).toMatch(
        /shares the host's network namespace .* NODE_OPTIONS=--inspect-port=0/,
      );
      await new Promise((r) => setTimeout(r, 300));
      // No signal: nothing but the app listens, and Node never printed its inspector banner.
      expect((await listeningSocketsOf(f.pid)).map((s) => s.port)).toEqual([f.port]);
      expect(f.lines.join('\n')).not.toContain('Debugger listening');
    }
  });

  it('profiles a host process started with NODE_OPTIONS=--inspect-port=0 on a random port, closed afterwards', async () => {
    const f = await start({ env: { NODE_OPTIONS: '--inspect-port=0' } });
    const r = await profileNodeProcess({ pid: f.pid, durationMs: 500, outDir });
    expect(r.audit.via).toBe('host-loopback');
    expect(r.audit.inspectorPort).not.toBe(9229);
    expect(f.lines.join('\n')).toContain(`Debugger listening on ws://127.0.0.1:${r.audit.inspectorPort}/`);
    expect(r.inspectorClosed).toBe(true);
    expect(r.audit.foreignClients).toEqual([]);
    // /proc/<pid>/net/tcp of the instance: no inspector port listens any more.
    expect((await listeningSocketsOf(f.pid)).map((s) => s.port)).toEqual([f.port]);
  });

  it('reports another process that connects to the random inspector port while it is open', async () => {
    const f = await start({ nodeArgs: ['--inspect-port=0'] });
    // A local process watching the target's listening sockets, as any local user can from /proc/net/tcp.
    const snoop = spawn(process.execPath, [SNOOP], {
      env: { ...process.env, PORTS: await listeningPorts() },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const r = await profileNodeProcess({ pid: f.pid, durationMs: 800, outDir });
      expect(r.inspectorClosed).toBe(true);
      expect(r.audit.foreignClients).toHaveLength(1);
      expect(r.audit.foreignClients?.[0]?.owners.map((o) => o.pid)).toEqual([snoop.pid]);
      expect(r.warnings.join('\n')).toMatch(
        new RegExp(
          `another process connected to the inspector on 127\\.0\\.0\\.1:${r.audit.inspectorPort} .*pid ${snoop.pid}`,
        ),
      );
    } finally {
      snoop.kill('SIGKILL');
    }
  });

  it('profiles a process in its own network namespace by pid (nsenter) when no namespace name is given', async () => {
    await useNetns();
    const f = await start({ netns, nodeArgs: ['--inspect-port=0'] });
    const r = await profileNodeProcess({ pid: f.pid, durationMs: 500, outDir });
    expect(r.audit.via).toBe('netns');
    expect(r.inspectorClosed).toBe(true);
    expect(r.samples).toBeGreaterThan(10);
  });

  it('refuses when the process is not in the network namespace it is said to be in', async () => {
    await useNetns();
    const f = await start({ nodeArgs: ['--inspect-port=0'] });
    const err = await profileNodeProcess({ pid: f.pid, netns, durationMs: 500, outDir }).catch(
      (e: unknown) => e,
    );
    expect((err as ProfileError).code).toBe('unsafe');
    expect((err as Error).message).toMatch(new RegExp(`is not in network namespace '${netns}'`));
  });

  it('rejects a process that is not Node.js, a missing pid and bad options with the field named', async () => {
    const sleeper = await sh('sh', ['-c', 'sleep 5 >/dev/null 2>&1 & echo $!']);
    const pid = Number(sleeper.trim());
    try {
      await expect(profileNodeProcess({ pid, durationMs: 100, outDir })).rejects.toMatchObject({
        code: 'not-node',
        message: expect.stringMatching(/not a Node\.js process \(executable .*sleep\)/) as unknown,
      });
    } finally {
      process.kill(pid, 'SIGKILL');
    }
    await expect(profileNodeProcess({ pid: 2 ** 22 + 1, durationMs: 100, outDir })).rejects.toMatchObject({
      code: 'not-found',
    });
    await expect(profileNodeProcess({ pid: 1, durationMs: 0, outDir })).rejects.toThrow(/durationMs must be/);
    await expect(profileNodeProcess({ pid: 1, durationMs: 10, outDir, netns: 'nope-x' })).rejects.toThrow(
      /network namespace 'nope-x' does not exist/,
    );
  });
});

/** Ports listening on the host loopback now (the snoop ignores them, it waits for a new one). */
async function listeningPorts(): Promise<string> {
  const table = await readFile('/proc/net/tcp', 'utf8');
  return table
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((c) => c[3] === '0A')
    .map((c) => String(Number.parseInt((c[1] ?? '').split(':')[1] ?? '', 16)))
    .join(' ');
}
