/**
 * cgroup v1 limits and accounting for instances: memory and cpu controllers
 * under `<root>/<controller>/<parent>/<id>`, cpu usage from cpuacct. The
 * child joins its cgroups itself before exec (see launcher.ts), so no
 * instance code ever runs outside its limits.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Capability, InstanceStats } from '../../driver.ts';
import { sleep } from '../../../util/time.ts';
import { readNum } from './files.ts';
import { isV2Paths, type CgroupPaths, type CgroupV1Paths, type Cgroups, type Limits } from './types.ts';

const CFS_PERIOD_US = 100_000;
/** Larger than any real limit: v1 reports "unlimited" as a huge page-aligned number. */
const UNLIMITED_THRESHOLD = 2 ** 60;

/** Paths of a record written by the v2 backend (the host changed mode meanwhile): nothing to act on here. */
function v1(p: CgroupPaths): CgroupV1Paths | undefined {
  return isV2Paths(p) ? undefined : p;
}

export class CgroupsV1 implements Cgroups {
  readonly version = 1;
  readonly root: string;
  readonly parent: string;

  constructor(opts: { root?: string; parent?: string } = {}) {
    this.root = opts.root ?? '/sys/fs/cgroup';
    this.parent = opts.parent ?? 'bulwark';
  }

  /** Whether limits can be applied here, and why not. Creates the parent cgroups when it can. */
  detect(): Capability {
    if (process.getuid?.() !== 0) {
      return {
        available: false,
        reason: 'not running as root: run the control plane as root to get cgroup limits',
      };
    }
    for (const c of ['memory', 'cpu'] as const) {
      const dir = path.join(this.root, c);
      if (!existsSync(path.join(dir, 'cgroup.procs'))) {
        return { available: false, reason: `cgroup v1 '${c}' controller not mounted at ${dir}` };
      }
      try {
        mkdirSync(path.join(dir, this.parent), { recursive: true });
      } catch (err) {
        return { available: false, reason: `cannot create ${path.join(dir, this.parent)}: ${String(err)}` };
      }
    }
    return { available: true };
  }

  /** Remove this driver's parent cgroups when no instance is left in them (rmdir refuses otherwise). */
  removeParentIfEmpty(): void {
    // cpuacct too: create() makes the parent there when cpuacct is mounted on its own.
    for (const c of ['memory', 'cpu', 'cpuacct'] as const) {
      try {
        rmdirSync(path.join(this.root, c, this.parent));
      } catch {
        // not empty, or already gone
      }
    }
  }

  pathsFor(id: string): CgroupV1Paths {
    const p: CgroupV1Paths = {
      memory: path.join(this.root, 'memory', this.parent, id),
      cpu: path.join(this.root, 'cpu', this.parent, id),
    };
    const acct = path.join(this.root, 'cpuacct');
    // With cpu,cpuacct co-mounted the cpu directory carries cpuacct.usage itself.
    if (
      existsSync(path.join(acct, 'cpuacct.usage')) &&
      !existsSync(path.join(this.root, 'cpu', 'cpuacct.usage'))
    ) {
      p.cpuacct = path.join(acct, this.parent, id);
    }
    return p;
  }

  /** Create (or reuse) the instance's cgroups and apply limits; undefined limit = unlimited. */
  create(id: string, limits: Limits): CgroupV1Paths {
    const p = this.pathsFor(id);
    for (const dir of this.dirs(p)) mkdirSync(dir, { recursive: true });
    if (limits.memoryBytes !== undefined) this.setMemoryLimit(p, limits.memoryBytes);
    writeFileSync(path.join(p.cpu, 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
    this.setCpuLimit(p, limits.cpu);
    return p;
  }

  /** CPU quota in cores (e.g. 0.1), undefined = unlimited. Takes effect immediately for running processes. */
  setCpuLimit(paths: CgroupPaths, cpu: number | undefined): void {
    const p = this.own(paths);
    const quota = cpu !== undefined ? Math.max(1000, Math.round(cpu * CFS_PERIOD_US)) : -1;
    writeFileSync(path.join(p.cpu, 'cpu.cfs_quota_us'), String(quota));
  }

  /**
   * Memory limit in bytes, undefined = unlimited; the swap-inclusive limit follows it so the
   * limit does not spill into swap. Lowering it below current usage makes the kernel reclaim,
   * then OOM-kill.
   */
  setMemoryLimit(paths: CgroupPaths, bytes: number | undefined): void {
    const p = this.own(paths);
    const value = bytes !== undefined ? String(bytes) : '-1';
    const mem = path.join(p.memory, 'memory.limit_in_bytes');
    const memsw = path.join(p.memory, 'memory.memsw.limit_in_bytes');
    const writeMemsw = (): void => {
      if (!existsSync(memsw)) return;
      try {
        writeFileSync(memsw, value);
      } catch {
        // swap accounting disabled in the kernel: the memory limit still holds
      }
    };
    // The kernel keeps memory <= memsw at every step: raise memsw first, lower it last.
    const currentMemsw = readNum(memsw);
    const raising = bytes === undefined || (currentMemsw !== undefined && bytes > currentMemsw);
    if (raising) writeMemsw();
    writeFileSync(mem, value);
    if (!raising) writeMemsw();
  }

  /** cgroup.procs files a process writes its pid into to join. */
  procsFiles(paths: CgroupPaths): string[] {
    return this.dirs(this.own(paths)).map((d) => path.join(d, 'cgroup.procs'));
  }

  /** Kernel OOM kills in this cgroup so far (monotonic; compare before/after a run). */
  oomKills(paths: CgroupPaths): number {
    const p = v1(paths);
    if (!p) return 0;
    try {
      const m = /oom_kill (\d+)/.exec(readFileSync(path.join(p.memory, 'memory.oom_control'), 'utf8'));
      if (m) return Number(m[1]);
    } catch {
      // cgroup gone
    }
    // Older kernels lack the counter: hitting the limit is the best evidence left.
    return readNum(path.join(p.memory, 'memory.failcnt')) ?? 0;
  }

  stats(paths: CgroupPaths): InstanceStats | undefined {
    const p = v1(paths);
    if (!p) return undefined;
    const memoryBytes = readNum(path.join(p.memory, 'memory.usage_in_bytes'));
    if (memoryBytes === undefined) return undefined;
    const s: InstanceStats = { memoryBytes };
    const limit = readNum(path.join(p.memory, 'memory.limit_in_bytes'));
    if (limit !== undefined && limit < UNLIMITED_THRESHOLD) s.memoryLimitBytes = limit;
    const cpu = readNum(path.join(p.cpuacct ?? p.cpu, 'cpuacct.usage'));
    if (cpu !== undefined) s.cpuUsageNs = cpu;
    try {
      const st = readFileSync(path.join(p.cpu, 'cpu.stat'), 'utf8');
      const periods = /^nr_periods (\d+)$/m.exec(st);
      const throttled = /^nr_throttled (\d+)$/m.exec(st);
      if (periods) s.cpuPeriods = Number(periods[1]);
      if (throttled) s.cpuThrottledPeriods = Number(throttled[1]);
    } catch {
      // cpu.stat missing (cgroup gone meanwhile)
    }
    try {
      const oom = /^oom_kill (\d+)$/m.exec(readFileSync(path.join(p.memory, 'memory.oom_control'), 'utf8'));
      if (oom) s.oomKills = Number(oom[1]);
    } catch {
      // older kernel without the counter, or cgroup gone
    }
    return s;
  }

  pids(paths: CgroupPaths): number[] {
    const p = v1(paths);
    if (!p) return [];
    try {
      return readFileSync(path.join(p.memory, 'cgroup.procs'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map(Number);
    } catch {
      return [];
    }
  }

  /** SIGKILL everything left in the cgroup (stragglers that escaped the process group). */
  killAll(p: CgroupPaths): void {
    for (const pid of this.pids(p)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  /** Kill what is left and remove the cgroups; retries while the kernel still reports members. */
  async remove(paths: CgroupPaths): Promise<void> {
    const p = v1(paths);
    if (!p) return;
    for (const dir of this.dirs(p)) {
      for (let i = 0; i < 40; i++) {
        try {
          rmdirSync(dir);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (code !== 'EBUSY' || i === 39) throw err;
          this.killAll(p);
          await sleep(50);
        }
      }
    }
  }

  /** Mutations refuse paths of the other hierarchy rather than write into directories that do not exist. */
  private own(p: CgroupPaths): CgroupV1Paths {
    const q = v1(p);
    if (!q)
      throw new Error(
        `cgroup ${JSON.stringify(p)} belongs to the v2 hierarchy; this host applies limits through v1`,
      );
    return q;
  }

  private dirs(p: CgroupV1Paths): string[] {
    return p.cpuacct ? [p.memory, p.cpu, p.cpuacct] : [p.memory, p.cpu];
  }
}
