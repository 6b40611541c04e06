import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { InstanceSpec, InstanceStatus } from '../driver.ts';
import { get } from '../driver.contract.ts';
import { affinityOf } from '../../util/cpus.ts';
import { sleep, waitFor } from '../../util/time.ts';
import { LocalDriver, type LocalDriverOptions } from './local-driver.ts';
import { identify, isAlive } from './proc.ts';
import { FileInstanceRecords, MemoryInstanceRecords } from './records.ts';
import { FILES, readJson, writeJsonAtomic, type ChildFile } from './shim-protocol.ts';
import { APP, DRIVER_A, isRoot, localTestEnv } from './testdata/test-env.ts';
import { removeEmptyScopeCgroups, scopeOf } from '../../../test/support/leftovers.ts';

// Privileged tests use their own bridge, subnet and cgroup parent so they never touch a real control plane's.
const BRIDGE = 'bwtest0';
const GATEWAY = '10.239.0.1';
const CG_PARENT = 'bulwark-test';
const { newDir, privilegedOpts } = localTestEnv({
  bridge: BRIDGE,
  subnet: '10.239.0.0/24',
  gateway: GATEWAY,
  cgroupParent: CG_PARENT,
});
const fastBackoff = { initialMs: 300, maxMs: 5000, resetAfterMs: 60_000 };

function spec(name: string, over: Partial<InstanceSpec> = {}): InstanceSpec {
  return {
    id: `lt-${name}-${process.pid}`,
    site: 'test',
    project: 'p',
    app: 'a',
    workload: name,
    ordinal: 0,
    command: [process.execPath, APP],
    env: {},
    ports: [{ name: 'http', port: 8080 }],
    readiness: { http: { path: '/healthz', port: 'http' }, intervalMs: 100, timeoutMs: 500 },
    restartPolicy: 'Always',
    terminationGracePeriodMs: 1000,
    specHash: 'h1',
    ...over,
  };
}

const MiB = 1024 * 1024;

/** Process state letter from /proc (R, S, T = stopped, Z, ...), undefined when gone. */
const procState = (pid: number): string | undefined => {
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
};

const appPids = (id: string): number[] =>
  execFileSync('ps', ['-eo', 'pid,args'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes(APP))
    .map((l) => Number(l.trim().split(/\s+/)[0]))
    .filter((pid) => {
      try {
        // The sandbox's wrappers (bwrap and its init inside the PID namespace) carry the same
        // argv and env; they are not the app and go with it.
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'bwrap') return false;
        return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`BULWARK_INSTANCE_ID=${id}`);
      } catch {
        return false;
      }
    });

describe('local driver basics', () => {
  let driver: LocalDriver | undefined;
  afterEach(async () => {
    await driver?.close({ stopInstances: true });
    driver = undefined;
  });

  it('reports netns and cgroups unavailable with the reason when privileged mode is off', async () => {
    driver = await LocalDriver.create({
      stateDir: newDir(),
      site: 'test',
      records: new MemoryInstanceRecords(),
      privileged: false,
    });
    const caps = driver.capabilities();
    expect(caps.networkNamespaces.available).toBe(false);
    expect(caps.cgroups.available).toBe(false);
    expect(caps.cgroups.reason).toMatch(/root|privileged/);
    expect(driver.status().mode).toBe('unprivileged');
  });

  it('rejects a spec without a command, naming the field', async () => {
    driver = await LocalDriver.create({
      stateDir: newDir(),
      site: 'test',
      records: new MemoryInstanceRecords(),
      privileged: false,
    });
    await expect(driver.ensure(spec('nocmd', { command: [] }))).rejects.toThrow(/command/);
    await expect(driver.ensure(spec('site', { site: 'other' }))).rejects.toThrow(/site/);
  });

  it('kills processes and removes state of an instance dir that has no record', async () => {
    const stateDir = newDir();
    const dir = path.join(stateDir, 'instances', 'orphan-x');
    mkdirSync(dir, { recursive: true });
    const p = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
    const id = await waitFor('sleep started', () => identify(p.pid!));
    writeJsonAtomic(path.join(dir, FILES.child), { ...id, at: new Date().toISOString() });
    driver = await LocalDriver.create({
      stateDir,
      site: 'test',
      records: new MemoryInstanceRecords(),
      privileged: false,
    });
    await waitFor('orphan killed', () => !isAlive(id));
    expect(existsSync(dir)).toBe(false);
    expect(driver.list()).toEqual([]);
  });

  it('runs instances on the CPUs it was given and refuses CPUs this machine lacks', async () => {
    const cpus = os.cpus().length;
    const want = [cpus - 1];
    driver = await LocalDriver.create({
      stateDir: newDir(),
      site: 'test',
      records: new MemoryInstanceRecords(),
      privileged: false,
      cpus: want,
    });
    const s = spec('cpus');
    await driver.ensure(s);
    await waitFor('ready', () => driver!.get(s.id)?.phase === 'ready');
    // The instance itself (not only its shim) is on those CPUs: taskset wraps its exec.
    expect(affinityOf(driver.get(s.id)!.pid!)).toEqual(want);
    await expect(
      LocalDriver.create({
        stateDir: newDir(),
        site: 'test',
        records: new MemoryInstanceRecords(),
        cpus: [cpus + 3],
      }),
    ).rejects.toThrow(/LocalDriver option cpus \[\d+\]: give distinct CPU numbers of this machine/);
  });

  it('exposes memory and cpu usage of an unprivileged instance from /proc', async () => {
    driver = await LocalDriver.create({
      stateDir: newDir(),
      site: 'test',
      records: new MemoryInstanceRecords(),
      privileged: false,
    });
    const s = spec('ustats');
    await driver.ensure(s);
    await waitFor('ready', () => driver!.get(s.id)?.phase === 'ready');
    const st = driver.stats(s.id);
    expect(st?.memoryBytes).toBeGreaterThan(1024 * 1024);
    expect(st?.cpuUsageNs).toBeGreaterThan(0);
  });

  it('quarantine without cgroups ignores the caps, says so, and rejects bad options naming them', async () => {
    driver = await LocalDriver.create({
      stateDir: newDir(),
      site: 'test',
      records: new MemoryInstanceRecords(),
      privileged: false,
    });
    const s = spec('qcaps-off', { readiness: undefined });
    await driver.ensure(s);
    const q = await driver.quarantine(s.id, { reason: 'leak', cpu: 0.1, memoryBytes: 512 * MiB });
    expect(q.phase).toBe('quarantined');
    expect(q.quarantine).toEqual({ since: q.quarantine!.since, reason: 'leak' });
    expect(q.message).toMatch(
      /quarantine caps \(cpu, memoryBytes\) ignored: cgroups unavailable \(.*(root|privileged)/,
    );
    await expect(driver.quarantine(s.id, { reason: '' })).rejects.toThrow(/reason/);
    await expect(driver.quarantine(s.id, { reason: 'x', cpu: 0 })).rejects.toThrow(/cpu/);
    await expect(driver.quarantine(s.id, { reason: 'x', memoryBytes: -1 })).rejects.toThrow(/memoryBytes/);
    const back = await driver.unquarantine(s.id);
    expect(back.message ?? '').not.toMatch(/quarantine/);
  });

  it('removes quarantined instances whose processes are SIGSTOPped: SIGTERM takes effect, SIGKILL follows the grace', async () => {
    driver = await LocalDriver.create({
      stateDir: newDir(),
      site: 'test',
      records: new MemoryInstanceRecords(),
      privileged: false,
    });
    const d = driver;
    const polite = spec('stopped-polite', { terminationGracePeriodMs: 20_000 });
    const stubborn = spec('stopped-stubborn', {
      terminationGracePeriodMs: 300,
      env: { APP_IGNORE_SIGTERM: '1' },
    });
    const pids: number[] = [];
    for (const s of [polite, stubborn]) {
      await d.ensure(s);
      const st = await waitFor('ready', () => (d.get(s.id)?.phase === 'ready' ? d.get(s.id) : undefined));
      await d.quarantine(s.id, { reason: 'frozen for inspection' });
      process.kill(st.pid!, 'SIGSTOP');
      await waitFor('stopped', () => procState(st.pid!) === 'T');
      pids.push(st.pid!);
    }
    const said: string[] = [];
    d.followLogs(polite.id, (_stream, line) => said.push(line));
    const t0 = Date.now();
    await d.remove(polite.id);
    // Continued after SIGTERM, it exits at once instead of sitting out the 20 s grace.
    expect(Date.now() - t0).toBeLessThan(10_000);
    // Followers get the last lines before the instance's files are removed.
    expect(said).toContain('got SIGTERM');
    const t1 = Date.now();
    await d.remove(stubborn.id);
    expect(Date.now() - t1).toBeLessThan(8_000);
    for (const pid of pids) expect(isAlive(identify(pid))).toBe(false);
    expect(appPids(polite.id)).toEqual([]);
    expect(appPids(stubborn.id)).toEqual([]);
    expect(d.list()).toEqual([]);
  });

  it('follows logs across rotations without losing or repeating lines, a fraction of a second behind', async () => {
    const stateDir = newDir();
    driver = await LocalDriver.create({
      stateDir,
      site: 'test',
      records: new MemoryInstanceRecords(),
      privileged: false,
      logMaxBytes: 4096,
      logFiles: 5,
    });
    const d = driver;
    const s = spec('follow-rot');
    await d.ensure(s);
    const st = await waitFor('ready', () => (d.get(s.id)?.phase === 'ready' ? d.get(s.id) : undefined));
    const got: string[] = [];
    const lagsMs: number[] = [];
    d.followLogs(s.id, (stream, line, at) => {
      if (stream !== 'stdout' || !line.startsWith('rot ')) return;
      got.push(line);
      lagsMs.push(Date.now() - at);
    });
    // ~40 bytes a stored line: 300 lines rotate the 4 KiB file about three times in one burst.
    await get(st.ip, st.ports.http!, '/say?text=rot&n=300');
    await waitFor('300 lines followed', () => got.length >= 300, { timeoutMs: 10_000 });
    await sleep(300);
    expect(got).toEqual(Array.from({ length: 300 }, (_, i) => `rot ${i + 1}`));
    expect(readdirSync(path.join(stateDir, 'instances', s.id, 'logs'))).toContain('stdout.log.2');
    // Polled every 100 ms; the margin is for a loaded 2-core machine.
    expect(Math.max(...lagsMs)).toBeLessThan(1000);
  });
});

describe.skipIf(!isRoot)('local driver, privileged: network namespaces and cgroups', () => {
  let driver: LocalDriver | undefined;
  afterEach(async () => {
    await driver?.close({ stopInstances: true });
    driver = undefined;
  });
  const create = async (extra: Partial<LocalDriverOptions> = {}) =>
    (driver = await LocalDriver.create({
      stateDir: newDir(),
      site: 'test',
      records: new MemoryInstanceRecords(),
      backoff: fastBackoff,
      ...privilegedOpts,
      ...extra,
    }));

  it('runs each instance in its own netns with its own IP, reachable from the host, reaching the host', async () => {
    const d = await create();
    const host = http.createServer((_req, res) => res.end('hello-from-host'));
    await new Promise<void>((r) => host.listen(0, GATEWAY, r));
    const hostPort = (host.address() as { port: number }).port;
    try {
      const a = spec('neta', { env: { APP_CALL_HOST_PORT: String(hostPort) } });
      const b = spec('netb');
      await d.ensure(a);
      await d.ensure(b);
      const sa = await waitFor('a ready', () => (d.get(a.id)?.phase === 'ready' ? d.get(a.id) : undefined));
      const sb = await waitFor('b ready', () => (d.get(b.id)?.phase === 'ready' ? d.get(b.id) : undefined));
      expect(sa.ip).toMatch(/^10\.239\.0\.\d+$/);
      expect(sb.ip).not.toBe(sa.ip);
      expect(sa.ports.http).toBe(8080); // same port in both: each has its own network stack
      expect(await get(sa.ip, 8080, '/live')).toBe('alive');
      const ns = execFileSync('ip', ['netns', 'identify', String(sa.pid)], { encoding: 'utf8' }).trim();
      expect(ns).toBe(sa.isolation.netns);
      const env = JSON.parse(await get(sa.ip, 8080, '/env')) as Record<string, string>;
      expect(env.BULWARK_HOST_IP).toBe(GATEWAY);
      await waitFor('host call logged', async () =>
        (await d.logs(a.id)).includes('host said hello-from-host'),
      );
      const vethHost = execFileSync('ip', ['-o', 'link', 'show', 'master', BRIDGE], { encoding: 'utf8' });
      expect(vethHost.split('\n').filter(Boolean)).toHaveLength(2);
      await d.remove(a.id);
      expect(existsSync(`/run/netns/${sa.isolation.netns}`)).toBe(false);
      expect(
        execFileSync('ip', ['-o', 'link', 'show', 'master', BRIDGE], { encoding: 'utf8' })
          .split('\n')
          .filter(Boolean),
      ).toHaveLength(1);
    } finally {
      host.close();
    }
  });

  it('gives instances ensured concurrently distinct addresses', async () => {
    const d = await create();
    const specs = ['para', 'parb', 'parc'].map((x) => spec(x, { readiness: undefined }));
    const sts = await Promise.all(specs.map((x) => d.ensure(x)));
    expect(new Set(sts.map((x) => x.ip)).size).toBe(3);
  });

  /** Another driver on the same bridge, as a second control plane on this host would run. */
  const secondDriver = (stateDir = newDir()): Promise<LocalDriver> =>
    LocalDriver.create({
      stateDir,
      site: 'test',
      records: new MemoryInstanceRecords(),
      backoff: fastBackoff,
      ...privilegedOpts,
    });

  it('takes over the address of a driver whose data dir is gone, removing its leftover namespace', async () => {
    const goneDir = newDir();
    const d1 = await secondDriver(goneDir);
    const x = spec('orphan');
    await d1.ensure(x);
    const s1 = await waitFor('1 ready', () => (d1.get(x.id)?.phase === 'ready' ? d1.get(x.id) : undefined));
    // The control plane dies and its data dir is deleted: the instance and its netns remain.
    await d1.close();
    rmSync(goneDir, { recursive: true, force: true });
    const d2 = await create();
    const y = spec('heir');
    await d2.ensure(y);
    const s2 = await waitFor('2 ready', () => (d2.get(y.id)?.phase === 'ready' ? d2.get(y.id) : undefined));
    expect(s2.ip).toBe(s1.ip);
    expect(existsSync(`/run/netns/${s1.isolation.netns}`)).toBe(false);
    expect(isAlive(identify(s1.pid!))).toBe(false);
    const env = JSON.parse(await get(s2.ip, 8080, '/env')) as Record<string, string>;
    expect(env.BULWARK_INSTANCE_ID).toBe(y.id);
    // The dead driver's cgroups (its scope, the killed instance's) are left as a deleted data
    // dir leaves them; this test made them, so it removes them.
    removeEmptyScopeCgroups(new Set([scopeOf(goneDir)]));
  });

  it('keeps two drivers on one bridge apart: distinct addresses and namespaces for the same instance id', async () => {
    const d1 = await create();
    const d2 = await secondDriver();
    try {
      const x = spec('twin');
      await d1.ensure(x);
      await d2.ensure(x);
      const s1 = await waitFor('1 ready', () => (d1.get(x.id)?.phase === 'ready' ? d1.get(x.id) : undefined));
      const s2 = await waitFor('2 ready', () => (d2.get(x.id)?.phase === 'ready' ? d2.get(x.id) : undefined));
      expect(s2.ip).not.toBe(s1.ip);
      expect(s2.isolation.netns).not.toBe(s1.isolation.netns);
      expect(s2.isolation.cgroup).not.toBe(s1.isolation.cgroup);
      // Each answers on its own address with its own identity.
      const id1 = JSON.parse(await get(s1.ip, 8080, '/env')) as Record<string, string>;
      expect(id1.BULWARK_HOST_IP).toBe(GATEWAY);
      expect(isAlive(identify(s1.pid!))).toBe(true);
      await d2.remove(x.id);
      // d1's instance survived d2 removing its twin.
      expect(d1.get(x.id)?.phase).toBe('ready');
      expect(existsSync(`/run/netns/${s1.isolation.netns}`)).toBe(true);
    } finally {
      await d2.close({ stopInstances: true });
    }
  });

  it('restarts an instance whose exec liveness probe fails, running the probe in its netns', async () => {
    const d = await create();
    // eth0 carries a bridge address only inside an instance's netns (the host's eth0 does not).
    const ok = spec('execok', {
      readiness: undefined,
      liveness: {
        exec: { command: ['sh', '-c', 'ip -o -4 addr show dev eth0 | grep -q " 10.239.0."'] },
        intervalMs: 100,
        failureThreshold: 1,
      },
    });
    const bad = spec('execbad', {
      readiness: undefined,
      liveness: { exec: { command: ['false'] }, intervalMs: 100, failureThreshold: 1 },
    });
    await d.ensure(ok);
    await d.ensure(bad);
    const b = await waitFor('bad restarted', () =>
      (d.get(bad.id)?.restarts ?? 0) >= 1 ? d.get(bad.id) : undefined,
    );
    expect(b.lastExit?.reason).toBe('liveness-failed');
    expect(d.get(ok.id)?.restarts).toBe(0);
  });

  it('applies cpu and memory limits in the instance cgroup and reports usage', async () => {
    const d = await create();
    const s = spec('limits', { cpu: 0.5, memoryBytes: 256 * 1024 * 1024 });
    await d.ensure(s);
    const st = await waitFor('ready', () => (d.get(s.id)?.phase === 'ready' ? d.get(s.id) : undefined));
    expect(st.isolation.cgroup).toMatch(new RegExp(`^${CG_PARENT}/[0-9a-f]{6}/${s.id}$`));
    const mem = `/sys/fs/cgroup/memory/${st.isolation.cgroup}`;
    const cpu = `/sys/fs/cgroup/cpu/${st.isolation.cgroup}`;
    expect(readFileSync(`${mem}/memory.limit_in_bytes`, 'utf8').trim()).toBe(String(256 * 1024 * 1024));
    expect(readFileSync(`${cpu}/cpu.cfs_quota_us`, 'utf8').trim()).toBe('50000');
    expect(readFileSync(`${cpu}/cpu.cfs_period_us`, 'utf8').trim()).toBe('100000');
    expect(readFileSync(`${mem}/cgroup.procs`, 'utf8').split('\n')).toContain(String(st.pid));
    expect(readFileSync(`${cpu}/cgroup.procs`, 'utf8').split('\n')).toContain(String(st.pid));
    const stats = d.stats(s.id);
    expect(stats?.memoryBytes).toBeGreaterThan(1024 * 1024);
    expect(stats?.memoryLimitBytes).toBe(256 * 1024 * 1024);
    expect(stats?.cpuUsageNs).toBeGreaterThan(0);
    await d.remove(s.id);
    expect(existsSync(mem)).toBe(false);
    expect(existsSync(cpu)).toBe(false);
  });

  it('applies quarantine caps to the instance cgroup (throttling it), and unquarantine restores the spec limits', async () => {
    const d = await create();
    const limited = spec('qcaps', { cpu: 0.5, memoryBytes: 256 * MiB });
    const open = spec('qcaps-open', { readiness: undefined });
    await d.ensure(limited);
    await d.ensure(open);
    const st = await waitFor('ready', () =>
      d.get(limited.id)?.phase === 'ready' ? d.get(limited.id) : undefined,
    );
    const cg = (s: InstanceStatus, controller: string, file: string): string =>
      readFileSync(`/sys/fs/cgroup/${controller}/${s.isolation.cgroup}/${file}`, 'utf8').trim();
    const q = await d.quarantine(limited.id, { reason: 'cpu hog', cpu: 0.1, memoryBytes: 512 * MiB });
    expect(q.quarantine).toMatchObject({ reason: 'cpu hog', cpu: 0.1, memoryBytes: 512 * MiB });
    expect(q.message).toBe('quarantined: cpu hog');
    expect(cg(st, 'cpu', 'cpu.cfs_quota_us')).toBe('10000');
    expect(cg(st, 'memory', 'memory.limit_in_bytes')).toBe(String(512 * MiB));
    expect(cg(st, 'memory', 'memory.memsw.limit_in_bytes')).toBe(String(512 * MiB));
    // The cap bites: 200 ms of CPU at 0.1 cores takes about 2 s, and the kernel counts the throttling.
    const before = d.stats(limited.id)!;
    const t0 = Date.now();
    await get(st.ip, 8080, '/burn?ms=200', 20_000);
    expect(Date.now() - t0).toBeGreaterThan(1000);
    const after = d.stats(limited.id)!;
    expect(after.cpuPeriods!).toBeGreaterThan(before.cpuPeriods!);
    expect(after.cpuThrottledPeriods!).toBeGreaterThan(before.cpuThrottledPeriods!);
    expect(after).toMatchObject({ memoryLimitBytes: 512 * MiB, oomKills: 0 });
    // A repeated call overrides only what it names, and keeps `since`.
    const q2 = await d.quarantine(limited.id, { reason: 'cpu hog', cpu: 0.2 });
    expect(q2.quarantine).toEqual({ ...q.quarantine, cpu: 0.2 });
    expect(cg(st, 'cpu', 'cpu.cfs_quota_us')).toBe('20000');
    expect(cg(st, 'memory', 'memory.limit_in_bytes')).toBe(String(512 * MiB));
    expect(d.get(limited.id)).toMatchObject({ pid: st.pid, restarts: 0 });
    await d.unquarantine(limited.id);
    expect(cg(st, 'cpu', 'cpu.cfs_quota_us')).toBe('50000');
    expect(cg(st, 'memory', 'memory.limit_in_bytes')).toBe(String(256 * MiB));
    expect(cg(st, 'memory', 'memory.memsw.limit_in_bytes')).toBe(String(256 * MiB));
    // Without limits in the spec, unquarantine lifts the caps entirely.
    const so = await waitFor('open running', () => (d.get(open.id)?.pid ? d.get(open.id) : undefined));
    await d.quarantine(open.id, { reason: 'x', cpu: 0.3, memoryBytes: 300 * MiB });
    expect(cg(so, 'cpu', 'cpu.cfs_quota_us')).toBe('30000');
    expect(cg(so, 'memory', 'memory.limit_in_bytes')).toBe(String(300 * MiB));
    await d.unquarantine(open.id);
    expect(cg(so, 'cpu', 'cpu.cfs_quota_us')).toBe('-1');
    expect(Number(cg(so, 'memory', 'memory.limit_in_bytes'))).toBeGreaterThan(2 ** 60);
  });

  it('reports an instance that exceeds its memory limit as oom-killed and restarts it with backoff', async () => {
    const d = await create();
    const s = spec('oom', {
      memoryBytes: 128 * 1024 * 1024,
      env: { APP_ALLOC_MB: '1024' },
      readiness: undefined,
    });
    await d.ensure(s);
    const st = await waitFor(
      'oom kill',
      () => (d.get(s.id)?.lastExit?.reason === 'oom-killed' ? d.get(s.id) : undefined),
      {
        timeoutMs: 15_000,
      },
    );
    expect(st.lastExit?.signal).toBe('SIGKILL');
    expect(['backoff', 'ready', 'starting']).toContain(st.phase);
    await waitFor(
      'second oom after a restart',
      () => (d.get(s.id)?.restarts ?? 0) >= 1 && d.get(s.id)?.lastExit?.reason === 'oom-killed',
      {
        timeoutMs: 15_000,
      },
    );
    const later = d.get(s.id)!;
    if (later.phase === 'backoff')
      expect(Date.parse(later.nextRestartAt!)).toBeGreaterThan(Date.parse(later.lastExit!.at));
  });

  it('keeps the instance running and counts dropped log lines when the log disk is full', async () => {
    const dir = newDir();
    mkdirSync(dir, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', dir]);
    try {
      const d = await create({ stateDir: dir });
      const s = spec('enospc', { env: { APP_LINES: '20000' } });
      await d.ensure(s);
      const st = await waitFor(
        'dropped lines reported',
        () => (d.status().droppedLogLines > 0 ? d.get(s.id) : undefined),
        {
          timeoutMs: 15_000,
        },
      );
      expect(st.message).toMatch(/log lines dropped/);
      expect(st.phase).toBe('ready');
      expect(await get(st.ip, 8080, '/live')).toBe('alive');
      await d.close({ stopInstances: true });
      driver = undefined;
    } finally {
      execFileSync('umount', ['-l', dir]);
    }
  });
});

describe.each(isRoot ? ['privileged', 'unprivileged'] : ['unprivileged'])(
  'adoption across control-plane restarts (%s)',
  (mode) => {
    const extra = mode === 'privileged' ? privilegedOpts : { privileged: false };
    let driverB: LocalDriver | undefined;
    afterEach(async () => {
      await driverB?.close({ stopInstances: true });
      driverB = undefined;
    });

    it('re-adopts running instances after the control plane is SIGKILLed, replaces one whose shim died, and leaves no orphans', async () => {
      const stateDir = newDir();
      const recordsDir = path.join(stateDir, 'records');
      const options = { stateDir, site: 'test', backoff: fastBackoff, ...extra };
      const keep = spec('keep');
      const lose = spec('lose');
      const dies = spec('dies', {
        restartPolicy: 'Never',
        env: { APP_EXIT_AFTER_MS: '1500', APP_EXIT_CODE: '7' },
      });
      const a = spawn(
        process.execPath,
        [DRIVER_A, JSON.stringify({ options: { ...options, recordsDir }, specs: [keep, lose, dies] })],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let out = '';
      a.stdout.on('data', (c: Buffer) => (out += c.toString()));
      try {
        await waitFor('driver A ready', () => out.includes('READY '), { timeoutMs: 30_000 });
      } catch (err) {
        a.kill('SIGKILL');
        throw err;
      }
      const before = JSON.parse(out.slice(out.indexOf('READY ') + 6).split('\n')[0]!) as InstanceStatus[];
      const pidOf = (id: string): number => before.find((s) => s.id === id)!.pid!;
      a.kill('SIGKILL');
      await new Promise((r) => a.once('exit', r));

      // While no control plane runs: the instances keep serving; one shim dies too.
      const keepStatus = before.find((s) => s.id === keep.id)!;
      expect(await get(keepStatus.ip, keepStatus.ports.http!, '/live')).toBe('alive');
      const loseShim = readJson<ChildFile>(path.join(stateDir, 'instances', lose.id, FILES.shim))!;
      process.kill(loseShim.pid, 'SIGKILL');
      await waitFor('dies exited unobserved', () => appPids(dies.id).length === 0, { timeoutMs: 5000 });
      await sleep(100);

      driverB = await LocalDriver.create({ ...options, records: new FileInstanceRecords(recordsDir) });
      const k = driverB.get(keep.id)!;
      expect(k.pid).toBe(pidOf(keep.id));
      expect(k.phase).toBe('ready'); // readiness restored from the record: no traffic flap on a control-plane restart
      expect(k.restarts).toBe(0);
      expect(appPids(keep.id)).toEqual([pidOf(keep.id)]);
      // The instance whose shim died was killed (no orphan) and is restarted under a new shim.
      expect(isAlive(identify(pidOf(lose.id)))).toBe(false);
      await waitFor(
        'lose restarted',
        () => driverB!.get(lose.id)?.phase === 'ready' && driverB!.get(lose.id)!.restarts === 1,
        {
          timeoutMs: 10_000,
        },
      );
      expect(appPids(lose.id)).toEqual([driverB.get(lose.id)!.pid]);
      expect(driverB.get(lose.id)!.lastExit?.message).toMatch(/shim died/);

      // The one that exited while nobody watched is reported with its real exit, not restarted (Never).
      expect(driverB.get(dies.id)).toMatchObject({
        phase: 'failed',
        restarts: 0,
        lastExit: { reason: 'exited', code: 7 },
      });
      expect(driverB.list()).toHaveLength(3);

      // Addresses come from the records: a new instance does not collide with adopted ones.
      const fresh = await driverB.ensure(spec('fresh', { readiness: undefined }));
      if (mode === 'privileged') expect(before.map((b) => b.ip)).not.toContain(fresh.ip);
      await driverB.remove(fresh.id);

      // Removal through the new driver works and leaves nothing behind.
      await driverB.remove(keep.id);
      await driverB.remove(lose.id);
      await driverB.remove(dies.id);
      expect(appPids(keep.id)).toEqual([]);
      expect(appPids(lose.id)).toEqual([]);
      expect(await new FileInstanceRecords(recordsDir).listInstances()).toEqual([]);
      if (isRoot) expect(existsSync(`/run/netns/bw-${keep.id}`)).toBe(false);
    });

    it('keeps quarantined instances quarantined, alive and unprobed after the control plane is SIGKILLed', async () => {
      const stateDir = newDir();
      const recordsDir = path.join(stateDir, 'records');
      const options = { stateDir, site: 'test', backoff: fastBackoff, ...extra };
      const flag = path.join(stateDir, 'fail-liveness');
      const held = spec('held', {
        liveness: {
          exec: { command: ['sh', '-c', `test ! -e ${flag}`] },
          intervalMs: 100,
          timeoutMs: 5000,
          failureThreshold: 1,
        },
      });
      const gone = spec('gone');
      const a = spawn(
        process.execPath,
        [
          DRIVER_A,
          JSON.stringify({
            options: { ...options, recordsDir },
            specs: [held, gone],
            quarantine: { [held.id]: 'incident 1', [gone.id]: 'incident 2' },
          }),
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      a.stdout.on('data', (c: Buffer) => (out += c.toString()));
      try {
        await waitFor('driver A ready', () => out.includes('READY '), { timeoutMs: 30_000 });
      } catch (err) {
        a.kill('SIGKILL');
        // Its instances would outlive it and confuse the next test that uses these ids.
        for (const pid of [...appPids(held.id), ...appPids(gone.id)]) process.kill(pid, 'SIGKILL');
        throw err;
      }
      const before = JSON.parse(out.slice(out.indexOf('READY ') + 6).split('\n')[0]!) as InstanceStatus[];
      const heldBefore = before.find((s) => s.id === held.id)!;
      const goneBefore = before.find((s) => s.id === gone.id)!;
      const gonePid = goneBefore.pid!;
      expect(heldBefore.phase).toBe('quarantined');
      a.kill('SIGKILL');
      await new Promise((r) => a.once('exit', r));

      // While no control plane runs: one quarantined process dies, the other's liveness would now fail.
      process.kill(gonePid, 'SIGKILL');
      await waitFor('gone exited', () => appPids(gone.id).length === 0, { timeoutMs: 5000 });
      writeFileSync(flag, '');

      driverB = await LocalDriver.create({ ...options, records: new FileInstanceRecords(recordsDir) });
      const d = driverB;
      expect(d.get(held.id)).toMatchObject({
        phase: 'quarantined',
        ready: false,
        pid: heldBefore.pid,
        restarts: heldBefore.restarts,
        quarantine: { reason: 'incident 1', since: heldBefore.quarantine!.since },
      });
      const g = await waitFor('exit of gone recorded', () =>
        d.get(gone.id)?.lastExit ? d.get(gone.id) : undefined,
      );
      expect(g).toMatchObject({
        phase: 'quarantined',
        restarts: goneBefore.restarts,
        lastExit: { reason: 'signaled', signal: 'SIGKILL' },
      });
      expect(g.pid).toBeUndefined();
      await sleep(1500); // 15 liveness intervals with the probe failing, 5 backoffs
      expect(d.get(held.id)).toMatchObject({
        phase: 'quarantined',
        pid: heldBefore.pid,
        restarts: heldBefore.restarts,
      });
      expect(appPids(held.id)).toEqual([heldBefore.pid]);
      expect(d.get(gone.id)).toMatchObject({ phase: 'quarantined', restarts: goneBefore.restarts });
      expect(appPids(gone.id)).toEqual([]);

      // Back under supervision, the liveness probe runs again and replaces the failing process.
      await d.unquarantine(held.id);
      const h = await waitFor('held replaced after its liveness probe failed', () =>
        d.get(held.id)?.lastExit?.reason === 'liveness-failed' ? d.get(held.id) : undefined,
      );
      expect(h.quarantine).toBeUndefined();
      await d.unquarantine(gone.id);
      await waitFor(
        'gone restarted',
        () => d.get(gone.id)?.phase === 'ready' && d.get(gone.id)!.restarts === goneBefore.restarts + 1,
      );
    });

    it('resumes a pending backoff restart after a graceful control-plane restart', async () => {
      const stateDir = newDir();
      const records = new MemoryInstanceRecords();
      const opts = {
        stateDir,
        site: 'test',
        records,
        backoff: { initialMs: 800, maxMs: 800, resetAfterMs: 60_000 },
        ...extra,
      };
      const a = await LocalDriver.create(opts);
      const s = spec('resume', { readiness: undefined, env: { APP_EXIT_AFTER_MS: '0' } });
      await a.ensure(s);
      const st = await waitFor('backoff', () => (a.get(s.id)?.phase === 'backoff' ? a.get(s.id) : undefined));
      await a.close();
      driverB = await LocalDriver.create(opts);
      expect(driverB.get(s.id)).toMatchObject({
        phase: 'backoff',
        nextRestartAt: st.nextRestartAt,
        restarts: st.restarts,
      });
      await waitFor('restarted by B', () => (driverB!.get(s.id)?.restarts ?? 0) > st.restarts);
    });

    it('kills the child when its shim is killed while the driver runs, and restarts it', async () => {
      driverB = await LocalDriver.create({
        stateDir: newDir(),
        site: 'test',
        records: new MemoryInstanceRecords(),
        backoff: fastBackoff,
        ...extra,
      });
      const s = spec('shimkill');
      await driverB.ensure(s);
      const st = await waitFor('ready', () =>
        driverB!.get(s.id)?.phase === 'ready' ? driverB!.get(s.id) : undefined,
      );
      const shim = readJson<ChildFile>(path.join(driverB.status().stateDir, 'instances', s.id, FILES.shim))!;
      process.kill(shim.pid, 'SIGKILL');
      await waitFor(
        'restarted',
        () => driverB!.get(s.id)?.phase === 'ready' && driverB!.get(s.id)!.restarts === 1,
      );
      expect(appPids(s.id)).toEqual([driverB.get(s.id)!.pid]);
      expect(driverB.get(s.id)!.pid).not.toBe(st.pid);
    });
  },
);
