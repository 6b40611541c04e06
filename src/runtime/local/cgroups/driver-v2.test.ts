import { readFileSync, existsSync } from 'node:fs';
import { beforeEach, describe, expect, it } from 'vitest';
import { get } from '../../driver.contract.ts';
import type { InstanceSpec } from '../../driver.ts';
import { waitFor } from '../../../util/time.ts';
import { LocalDriver, type LocalDriverOptions } from '../local-driver.ts';
import { MemoryInstanceRecords } from '../records.ts';
import { APP, isRoot, localTestEnv } from '../testdata/test-env.ts';
import { chooseHierarchy, detectCgroupHost } from './detect.ts';

// The local driver on a cgroup v2 host: limits, stats, quarantine caps and OOM detection through
// the unified hierarchy. A hybrid host (memory/cpu on v1) skips this file; scripts/cgroup-v2-vm.sh
// runs it on a v2-only kernel.
const host = detectCgroupHost();
const choice = chooseHierarchy(host);
const onV2 = isRoot && choice.version === 2;
const v2Root = choice.version === 2 ? choice.root : '';
const MiB = 1024 * 1024;
const CG_PARENT = 'bulwark-test-v2d';
const { newDir, privilegedOpts } = localTestEnv({
  bridge: 'bwtestv2',
  subnet: '10.239.64.0/24',
  gateway: '10.239.64.1',
  cgroupParent: CG_PARENT,
});

function spec(name: string, over: Partial<InstanceSpec> = {}): InstanceSpec {
  return {
    id: `v2-${name}-${process.pid}`,
    site: 'test',
    project: 'p',
    app: 'a',
    workload: name,
    ordinal: 0,
    command: [process.execPath, APP],
    env: {},
    ports: [{ name: 'http', port: 8080 }],
    readiness: { http: { path: '/healthz', port: 'http' }, intervalMs: 100, timeoutMs: 2000 },
    restartPolicy: 'Always',
    terminationGracePeriodMs: 1000,
    specHash: 'h1',
    ...over,
  };
}

describe('local driver on cgroup v2', () => {
  beforeEach((ctx) => {
    if (!isRoot) ctx.skip('needs root: network namespaces and cgroups');
    if (!onV2)
      ctx.skip(
        `limits go through cgroup ${choice.version ?? 'nothing'} here (mode ${host.mode}): run scripts/cgroup-v2-vm.sh`,
      );
  });
  async function withDriver(fn: (d: LocalDriver) => Promise<void>): Promise<void> {
    const opts: LocalDriverOptions = {
      stateDir: newDir(),
      site: 'test',
      records: new MemoryInstanceRecords(),
      ...privilegedOpts,
    };
    const d = await LocalDriver.create(opts);
    try {
      await fn(d);
    } finally {
      for (const s of d.list()) await d.remove(s.id);
      await d.close();
    }
  }
  const file = (cgroup: string | undefined, f: string): string =>
    readFileSync(`${v2Root}/${cgroup}/${f}`, 'utf8').trim();

  it('reports mode and version 2, applies memory.max and cpu.max, and stats have the v1 shape', async () => {
    await withDriver(async (d) => {
      expect(d.capabilities().cgroups).toMatchObject({ available: true, mode: 'v2', version: 2 });
      expect(d.capabilities().cgroups.controllers?.v2).toEqual(expect.arrayContaining(['cpu', 'memory']));
      const s = spec('limits', { cpu: 0.5, memoryBytes: 256 * MiB });
      await d.ensure(s);
      const st = await waitFor('ready', () => (d.get(s.id)?.phase === 'ready' ? d.get(s.id) : undefined), {
        timeoutMs: 60_000,
      });
      expect(st.isolation.cgroup).toMatch(new RegExp(`^${CG_PARENT}/[0-9a-f]{6}/${s.id}$`));
      expect(file(st.isolation.cgroup, 'memory.max')).toBe(String(256 * MiB));
      expect(file(st.isolation.cgroup, 'memory.high')).toBe('max');
      expect(file(st.isolation.cgroup, 'cpu.max')).toBe('50000 100000');
      expect(file(st.isolation.cgroup, 'cgroup.procs').split('\n')).toContain(String(st.pid));
      const stats = d.stats(s.id)!;
      expect(stats.memoryBytes).toBeGreaterThan(MiB);
      expect(stats).toMatchObject({ memoryLimitBytes: 256 * MiB, oomKills: 0 });
      expect(stats.cpuUsageNs).toBeGreaterThan(0);
      expect(stats.cpuPeriods).toBeGreaterThanOrEqual(0);
      expect(stats.cpuThrottledPeriods).toBeGreaterThanOrEqual(0);
      if (host.psi) expect(stats.pressure?.memory?.some.avg10).toBeGreaterThanOrEqual(0);
      await d.remove(s.id);
      expect(existsSync(`${v2Root}/${st.isolation.cgroup}`)).toBe(false);
    });
  }, 120_000);

  it('quarantine caps cpu.max and raises memory.max (throttling counted); unquarantine restores the spec', async () => {
    await withDriver(async (d) => {
      const s = spec('qcaps', { cpu: 0.5, memoryBytes: 256 * MiB });
      await d.ensure(s);
      const st = await waitFor('ready', () => (d.get(s.id)?.phase === 'ready' ? d.get(s.id) : undefined), {
        timeoutMs: 60_000,
      });
      const q = await d.quarantine(s.id, { reason: 'cpu hog', cpu: 0.1, memoryBytes: 512 * MiB });
      expect(q.quarantine).toMatchObject({ cpu: 0.1, memoryBytes: 512 * MiB });
      expect(q.quarantine).not.toHaveProperty('capsNote');
      expect(file(st.isolation.cgroup, 'cpu.max')).toBe('10000 100000');
      expect(file(st.isolation.cgroup, 'memory.max')).toBe(String(512 * MiB));
      const before = d.stats(s.id)!;
      await get(st.ip, 8080, '/burn?ms=200', 60_000);
      const after = d.stats(s.id)!;
      expect(after.cpuThrottledPeriods!).toBeGreaterThan(before.cpuThrottledPeriods!);
      expect(after.memoryLimitBytes).toBe(512 * MiB);
      await d.unquarantine(s.id);
      expect(file(st.isolation.cgroup, 'cpu.max')).toBe('50000 100000');
      expect(file(st.isolation.cgroup, 'memory.max')).toBe(String(256 * MiB));
    });
  }, 120_000);

  it('an instance over memory.max is reported oom-killed (memory.events oom_kill)', async () => {
    await withDriver(async (d) => {
      const s = spec('oom', { memoryBytes: 128 * MiB, env: { APP_ALLOC_MB: '1024' }, readiness: undefined });
      await d.ensure(s);
      const st = await waitFor(
        'oom kill',
        () => (d.get(s.id)?.lastExit?.reason === 'oom-killed' ? d.get(s.id) : undefined),
        { timeoutMs: 60_000 },
      );
      expect(st.lastExit?.signal).toBe('SIGKILL');
      expect(
        Number(/^oom_kill (\d+)$/m.exec(file(st.isolation.cgroup, 'memory.events'))?.[1]),
      ).toBeGreaterThan(0);
    });
  }, 120_000);
});

describe('local driver cgroup capability', () => {
  it('reports the host mode, controllers and PSI even with privileged mode off, and the version used when on', async (ctx) => {
    const expected = {
      mode: host.mode,
      controllers: { v1: Object.keys(host.v1).sort(), v2: [...host.v2Controllers].sort() },
      psi: choice.version === 2 && host.psi,
    };
    const off = await LocalDriver.create({
      stateDir: newDir(),
      site: 'test',
      records: new MemoryInstanceRecords(),
      privileged: false,
    });
    try {
      expect(off.capabilities().cgroups).toEqual({
        available: false,
        reason: expect.stringMatching(/privileged|root/),
        ...expected,
      });
      expect(off.status().capabilities.cgroups.mode).toBe(host.mode);
    } finally {
      await off.close();
    }
    if (!isRoot) ctx.skip('needs root for the privileged half');
    const on = await LocalDriver.create({
      stateDir: newDir(),
      site: 'test',
      records: new MemoryInstanceRecords(),
      ...privilegedOpts,
    });
    try {
      const cap = on.capabilities().cgroups;
      expect(cap).toMatchObject(expected);
      if (choice.version === undefined)
        expect(cap).toMatchObject({ available: false, reason: choice.reason });
      else expect(cap).toMatchObject({ available: true, version: choice.version });
    } finally {
      await on.close();
    }
  });
});
