import { spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../../util/time.ts';
import { wrapArgv } from '../launcher.ts';
import { detectCgroupHost } from './detect.ts';
import { CgroupsV1 } from './v1.ts';
import { CgroupsV2, enableControllers, type V2Controller } from './v2.ts';

const isRoot = process.getuid?.() === 0;

describe('cgroup v2 backend on files in a temp dir (pure logic)', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function fake(controllers?: V2Controller[]): CgroupsV2 {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bulwark-cgv2-'));
    return new CgroupsV2({ root: dir, parent: 'bulwark/abc123', ...(controllers ? { controllers } : {}) });
  }
  const read = (file: string): string => readFileSync(file, 'utf8');

  it('lays instances out as <root>/<parent>/<id> with one cgroup.procs to join', () => {
    const cg = fake();
    const p = cg.pathsFor('inst-1');
    expect(p).toEqual({ unified: path.join(dir, 'bulwark/abc123/inst-1') });
    expect(cg.procsFiles(p)).toEqual([path.join(dir, 'bulwark/abc123/inst-1/cgroup.procs')]);
  });

  it('create writes memory.max, memory.high=max, cpu.max (and swap 0 where accounted); unlimited is "max"', () => {
    const cg = fake();
    const p = cg.pathsFor('a');
    mkdirSync(p.unified, { recursive: true });
    writeFileSync(path.join(p.unified, 'memory.swap.max'), 'max\n');
    writeFileSync(path.join(p.unified, 'memory.high'), '1000\n'); // stale throttle of an earlier run
    cg.create('a', { cpu: 0.25, memoryBytes: 64 << 20 });
    expect(read(path.join(p.unified, 'memory.max'))).toBe(String(64 << 20));
    expect(read(path.join(p.unified, 'memory.high'))).toBe('max');
    expect(read(path.join(p.unified, 'memory.swap.max'))).toBe('0');
    expect(read(path.join(p.unified, 'cpu.max'))).toBe('25000 100000');
    expect(cg.limits(p)).toEqual({
      memoryMax: 64 << 20,
      memoryHigh: 'max',
      cpuMax: { quotaUs: 25000, periodUs: 100000 },
    });
    // quarantine: cap cpu hard (never below the kernel's 1 ms minimum), raise memory; then back to unlimited
    cg.setCpuLimit(p, 0.001);
    expect(read(path.join(p.unified, 'cpu.max'))).toBe('1000 100000');
    cg.setMemoryLimit(p, 128 << 20);
    expect(read(path.join(p.unified, 'memory.max'))).toBe(String(128 << 20));
    cg.setCpuLimit(p, undefined);
    cg.setMemoryLimit(p, undefined);
    expect(read(path.join(p.unified, 'cpu.max'))).toBe('max 100000');
    expect(read(path.join(p.unified, 'memory.max'))).toBe('max');
    expect(read(path.join(p.unified, 'memory.swap.max'))).toBe('max');
  });

  it('stats have the v1 shape: memory, limit, cpu ns from usage_usec, periods, throttling, OOM kills, and pressure', () => {
    const cg = fake();
    const p = cg.pathsFor('s');
    mkdirSync(p.unified, { recursive: true });
    const w = (f: string, t: string): void => writeFileSync(path.join(p.unified, f), t);
    w('memory.current', '5242880\n');
    w('memory.max', '16777216\n');
    w(
      'cpu.stat',
      'usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 7\nnr_throttled 3\nthrottled_usec 900\n',
    );
    w('memory.events', 'low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n');
    w(
      'cpu.pressure',
      'some avg10=2.00 avg60=1.00 avg300=0.50 total=1000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n',
    );
    w(
      'memory.pressure',
      'some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n',
    );
    expect(cg.stats(p)).toEqual({
      memoryBytes: 5242880,
      memoryLimitBytes: 16777216,
      cpuUsageNs: 2_500_000,
      cpuPeriods: 7,
      cpuThrottledPeriods: 3,
      oomKills: 1,
      pressure: {
        cpu: {
          some: { avg10: 2, avg60: 1, avg300: 0.5, totalUs: 1000 },
          full: { avg10: 0, avg60: 0, avg300: 0, totalUs: 0 },
        },
        memory: {
          some: { avg10: 0, avg60: 0, avg300: 0, totalUs: 0 },
          full: { avg10: 0, avg60: 0, avg300: 0, totalUs: 0 },
        },
      },
    });
    expect(cg.oomKills(p)).toBe(1);
    // "max" = unlimited: no limit reported, as v1 leaves out its huge "unlimited" number
    w('memory.max', 'max\n');
    expect(cg.stats(p)?.memoryLimitBytes).toBeUndefined();
    // gone (or no memory controller): no stats, zero OOM kills
    rmSync(p.unified, { recursive: true });
    expect(cg.stats(p)).toBeUndefined();
    expect(cg.oomKills(p)).toBe(0);
  });

  it('refuses limits whose controller is not delegated instead of dropping them', () => {
    const cg = fake([]);
    expect(() => cg.create('x', { memoryBytes: 1 << 20 })).toThrow(
      /cgroup v2 memory limit requested but the memory controller is not delegated/,
    );
    expect(() => cg.setCpuLimit(cg.pathsFor('x'), 0.5)).toThrow(/cpu controller is not delegated/);
    // without limits it still creates the cgroup (and writes no limit files)
    const p = cg.create('x', {});
    expect(existsSync(p.unified)).toBe(true);
    expect(existsSync(path.join(p.unified, 'cpu.max'))).toBe(false);
  });

  it('paths of the other hierarchy: v2 refuses to write limits and reads nothing; v1 does the same for v2 paths', async () => {
    const cg = fake();
    const v1Paths = { memory: path.join(dir, 'memory/x'), cpu: path.join(dir, 'cpu/x') };
    expect(() => cg.setMemoryLimit(v1Paths, 1)).toThrow(/belongs to the v1 hierarchies/);
    expect(cg.stats(v1Paths)).toBeUndefined();
    expect(cg.pids(v1Paths)).toEqual([]);
    await cg.remove(v1Paths); // no-op
    const v1 = new CgroupsV1({ root: dir, parent: 'p' });
    expect(() => v1.setCpuLimit(cg.pathsFor('x'), 1)).toThrow(/belongs to the v2 hierarchy/);
    expect(v1.stats(cg.pathsFor('x'))).toBeUndefined();
  });

  it('enableControllers checks every level offers them and names the level that does not', () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bulwark-cgv2-'));
    writeFileSync(path.join(dir, 'cgroup.controllers'), 'cpu memory io\n');
    mkdirSync(path.join(dir, 'a'));
    writeFileSync(path.join(dir, 'a', 'cgroup.controllers'), 'cpu\n');
    expect(() => enableControllers(dir, path.join(dir, 'a', 'b'), ['memory', 'cpu'])).toThrow(
      new RegExp(`cgroup ${path.join(dir, 'a')} does not offer 'memory' \\(cgroup.controllers: 'cpu'\\)`),
    );
    expect(read(path.join(dir, 'cgroup.subtree_control'))).toBe('+memory +cpu');
    expect(() => enableControllers(dir, '/elsewhere', ['cpu'])).toThrow(/is not under the cgroup root/);
  });
});

// The real kernel: the host's cgroup2 mount (on a hybrid host /sys/fs/cgroup/unified, where memory
// and cpu are bound to v1, so the limit tests below skip and say so).
const host = detectCgroupHost();
const v2Root = host.v2Root;
const offered = host.v2Controllers;
const limitsOffered = offered.includes('memory') && offered.includes('cpu');
const realV2 = isRoot && v2Root !== undefined;

/** Child cgroups of `dir`, deepest first (the order rmdir needs). */
function cgroupsBelow(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    out.push(...cgroupsBelow(path.join(dir, e.name)), path.join(dir, e.name));
  }
  return out;
}

describe('cgroup v2 backend on the real cgroup2 mount', () => {
  beforeEach((ctx) => {
    if (!realV2) ctx.skip(isRoot ? 'no cgroup2 mount on this host' : 'needs root: creates cgroups');
  });
  const parent = `bulwark-test-v2-${process.pid}`;
  const children: ChildProcess[] = [];
  let cg: CgroupsV2 | undefined;
  let rootHadHugetlb: boolean | undefined;

  afterEach(async () => {
    for (const c of children.splice(0)) c.kill('SIGKILL');
    if (!cg) return;
    // Everything this file created, deepest first; the real control plane's cgroups are never touched.
    const base = path.join(v2Root!, parent);
    for (const d of cgroupsBelow(base)) await cg.remove({ unified: d });
    if (existsSync(base)) rmdirSync(base);
    cg = undefined;
    // The root's subtree_control is the host's: put hugetlb back as it was.
    if (rootHadHugetlb === false) writeFileSync(path.join(v2Root!, 'cgroup.subtree_control'), '-hugetlb');
    rootHadHugetlb = undefined;
  });

  function open(controllers: V2Controller[]): CgroupsV2 {
    cg = new CgroupsV2({ root: v2Root!, parent: `${parent}/scope`, controllers });
    return cg;
  }

  /** A real process that joins the cgroup the way instances do (launcher's wrapArgv), then runs `script`. */
  function launchInto(procsFiles: string[], script: string): ChildProcess {
    const [cmd, ...args] = wrapArgv(['/bin/sh', '-c', script], undefined, procsFiles);
    const c = spawn(cmd!, args, { stdio: 'ignore' });
    children.push(c);
    return c;
  }

  const delegated = (): V2Controller[] => (limitsOffered ? ['memory', 'cpu'] : []);

  it('detect() creates the parent, moves a real process in via cgroup.procs, sees it populated, kills and removes it', async () => {
    const c = open(delegated());
    expect(c.detect()).toEqual({ available: true });
    expect(existsSync(path.join(v2Root!, parent, 'scope', 'cgroup.procs'))).toBe(true);
    const p = c.create('inst', {});
    expect(c.populated(p)).toBe(false);
    // grandchild too: cgroup.kill must take the whole tree, not just the pid we know
    const child = launchInto(c.procsFiles(p), 'sleep 60 & exec sleep 60');
    await waitFor('both sleeps in the cgroup', () => c.pids(p).length === 2, { timeoutMs: 5000 });
    expect(c.pids(p)).toContain(child.pid);
    expect(c.populated(p)).toBe(true);
    expect(readFileSync(`/proc/${child.pid}/cgroup`, 'utf8')).toMatch(
      new RegExp(`^0::/${parent}/scope/inst$`, 'm'),
    );
    // cpu.stat usage is kept by the core even without the cpu controller
    const st = readFileSync(path.join(p.unified, 'cpu.stat'), 'utf8');
    expect(st).toMatch(/^usage_usec \d+$/m);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    c.killAll(p);
    await exited;
    await waitFor('cgroup empty', () => !c.populated(p), { timeoutMs: 5000 });
    await c.remove(p);
    expect(existsSync(p.unified)).toBe(false);
    c.removeParentIfEmpty();
    expect(existsSync(path.join(v2Root!, parent))).toBe(false);
  });

  it('remove() kills what is left and waits for the cgroup to empty (rmdir EBUSY retried)', async () => {
    const c = open(delegated());
    expect(c.detect().available).toBe(true);
    const p = c.create('busy-rm', {});
    launchInto(c.procsFiles(p), 'exec sleep 60');
    await waitFor('process in the cgroup', () => c.populated(p), { timeoutMs: 5000 });
    await c.remove(p);
    expect(existsSync(p.unified)).toBe(false);
  });

  it('reads the per-cgroup pressure files the kernel keeps (PSI on)', async (ctx) => {
    if (!host.psi) ctx.skip('PSI is off on this kernel (psi=0 or CONFIG_PSI unset): no pressure files');
    const c = open(delegated());
    expect(c.detect().available).toBe(true);
    const p = c.create('psi', {});
    launchInto(c.procsFiles(p), 'exec sleep 60');
    await waitFor('process in the cgroup', () => c.populated(p), { timeoutMs: 5000 });
    const pr = c.pressure(p);
    expect(pr?.cpu?.some.totalUs).toBeGreaterThanOrEqual(0);
    expect(pr?.memory?.full).toBeDefined();
    expect(pr?.io?.some).toBeDefined();
    await c.remove(p);
  });

  it('enables a controller the v2 root offers down the path, and the kernel refuses it in a cgroup with processes', async (ctx) => {
    if (!offered.includes('hugetlb'))
      ctx.skip(`the v2 root offers no hugetlb (cgroup.controllers: '${offered.join(' ')}')`);
    // hugetlb is the one controller a hybrid host leaves to v2; the write path is the same as memory/cpu's.
    const base = path.join(v2Root!, parent);
    cg = new CgroupsV2({ root: v2Root!, parent });
    rootHadHugetlb = readFileSync(path.join(v2Root!, 'cgroup.subtree_control'), 'utf8')
      .trim()
      .split(' ')
      .includes('hugetlb');
    // base's children (busy) get hugetlb; busy itself delegates nothing, so it may hold processes.
    expect(enableControllers(v2Root!, base, ['hugetlb'])).toEqual(['hugetlb']);
    expect(readFileSync(path.join(v2Root!, 'cgroup.subtree_control'), 'utf8')).toMatch(/\bhugetlb\b/);
    mkdirSync(path.join(base, 'busy'));
    expect(readFileSync(path.join(base, 'busy', 'cgroup.controllers'), 'utf8').trim()).toBe('hugetlb');
    expect(existsSync(path.join(base, 'busy', 'hugetlb.2MB.max'))).toBe(true);
    // No internal processes: a cgroup holding a process cannot delegate controllers to children.
    launchInto([path.join(base, 'busy', 'cgroup.procs')], 'exec sleep 60');
    await waitFor(
      'process in busy',
      () => readFileSync(path.join(base, 'busy', 'cgroup.procs'), 'utf8').trim() !== '',
      {
        timeoutMs: 5000,
      },
    );
    expect(() => enableControllers(v2Root!, path.join(base, 'busy', 'child'), ['hugetlb'])).toThrow(
      /holds processes \(v2 allows controllers only above process-free cgroups\): move them out/,
    );
    await cg.remove({ unified: path.join(base, 'busy', 'child') });
    await cg.remove({ unified: path.join(base, 'busy') });
  });

  it('hybrid host: detect() with memory and cpu says they are not offered by the v2 root', (ctx) => {
    if (limitsOffered) ctx.skip('the v2 root offers memory and cpu: this host is not hybrid');
    const c = open(['memory', 'cpu']);
    const cap = c.detect();
    expect(cap.available).toBe(false);
    expect(cap.reason).toMatch(new RegExp(`cgroup ${v2Root} does not offer 'memory', 'cpu'`));
    // and the kernel's own answer to enabling one: ENOENT, turned into the reason
    expect(() => writeFileSync(path.join(v2Root!, 'cgroup.subtree_control'), '+memory')).toThrow(/ENOENT/);
  });

  it('writes memory.max, memory.high, cpu.max the kernel accepts and reads them back', async (ctx) => {
    if (!limitsOffered)
      ctx.skip(
        `memory and cpu are not offered by the v2 root ${v2Root} (hybrid host: bound to v1); run scripts/cgroup-v2-vm.sh`,
      );
    const c = open(['memory', 'cpu']);
    expect(c.detect()).toEqual({ available: true });
    const p = c.create('limits', { cpu: 0.5, memoryBytes: 64 << 20 });
    expect(c.limits(p)).toEqual({
      memoryMax: 64 << 20,
      memoryHigh: 'max',
      cpuMax: { quotaUs: 50000, periodUs: 100000 },
    });
    c.setCpuLimit(p, 0.05);
    c.setMemoryLimit(p, 128 << 20);
    expect(c.limits(p)).toMatchObject({
      memoryMax: 128 << 20,
      cpuMax: { quotaUs: 5000, periodUs: 100000 },
    });
    c.setMemoryLimit(p, undefined);
    c.setCpuLimit(p, undefined);
    expect(c.limits(p)).toMatchObject({ memoryMax: 'max', cpuMax: { quotaUs: 'max' } });
    await c.remove(p);
  });

  it('a process over memory.max is OOM-killed and memory.events counts it; stats report it', async (ctx) => {
    if (!limitsOffered)
      ctx.skip(
        `memory and cpu are not offered by the v2 root ${v2Root} (hybrid host: bound to v1); run scripts/cgroup-v2-vm.sh`,
      );
    const c = open(['memory', 'cpu']);
    expect(c.detect().available).toBe(true);
    const p = c.create('oom', { memoryBytes: 32 << 20 });
    expect(c.oomKills(p)).toBe(0);
    // A real allocation: node fills a buffer larger than the limit.
    const hog = launchInto(
      c.procsFiles(p),
      `exec ${process.execPath} -e "const a=[];for(;;){a.push(Buffer.alloc(4<<20,1))}"`,
    );
    const code = await new Promise<string | null>((resolve) => hog.once('exit', (_c, sig) => resolve(sig)));
    expect(code).toBe('SIGKILL');
    expect(c.oomKills(p)).toBeGreaterThanOrEqual(1);
    expect(c.stats(p)?.oomKills).toBeGreaterThanOrEqual(1);
    await c.remove(p);
  }, 20_000);

  it('a busy process under cpu.max is throttled: cpu.stat nr_throttled grows and stats carry it', async (ctx) => {
    if (!limitsOffered)
      ctx.skip(
        `memory and cpu are not offered by the v2 root ${v2Root} (hybrid host: bound to v1); run scripts/cgroup-v2-vm.sh`,
      );
    const c = open(['memory', 'cpu']);
    expect(c.detect().available).toBe(true);
    const p = c.create('thr', { cpu: 0.05, memoryBytes: 256 << 20 });
    launchInto(c.procsFiles(p), 'while :; do :; done');
    await waitFor('3 throttled periods', () => (c.stats(p)?.cpuThrottledPeriods ?? 0) >= 3, {
      timeoutMs: 10_000,
    });
    const s = c.stats(p)!;
    expect(s.cpuPeriods).toBeGreaterThanOrEqual(s.cpuThrottledPeriods!);
    expect(s.cpuUsageNs).toBeGreaterThan(0);
    expect(s.memoryBytes).toBeGreaterThan(0);
    expect(s.memoryLimitBytes).toBe(256 << 20);
    await c.remove(p);
  }, 20_000);
});
