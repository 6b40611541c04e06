/**
 * cgroup v2 (unified hierarchy) limits and accounting for instances: one
 * directory `<root>/<parent>/<id>` carries memory.max, cpu.max, the
 * counters (memory.current, cpu.stat, memory.events) and, with PSI on, the
 * pressure files. The controllers are enabled in cgroup.subtree_control of
 * every level from the root down to the parent; the parents hold no
 * processes themselves (v2 allows processes only in leaves once
 * controllers are delegated). The child joins its cgroup before exec by
 * writing its pid to cgroup.procs, as on v1 (see launcher.ts).
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Capability, InstanceStats } from '../../driver.ts';
import { sleep } from '../../../util/time.ts';
import { parseCpuMax, parseMax, readFlatKeyed, readNum, readPressure, readText } from './files.ts';
import { isV2Paths, type CgroupPaths, type CgroupV2Paths, type Cgroups, type Limits } from './types.ts';

export const CPU_PERIOD_US = 100_000;
/** The kernel refuses quotas below 1 ms per period. */
const MIN_QUOTA_US = 1000;

export type V2Controller = 'memory' | 'cpu';

export interface CgroupsV2Options {
  /** The cgroup2 mount point: /sys/fs/cgroup on v2 hosts, /sys/fs/cgroup/unified on hybrid ones. */
  root?: string;
  /** Relative to the root; instances live in `<root>/<parent>/<id>`. @default "bulwark" */
  parent?: string;
  /**
   * Controllers to delegate to the instances. @default ["memory", "cpu"]
   * Fewer only where the kernel offers fewer (tests on hybrid hosts): limits whose
   * controller is left out are refused, never silently dropped.
   */
  controllers?: readonly V2Controller[];
}

function readLines(file: string): string[] {
  return (readText(file) ?? '').split(/\s+/).filter(Boolean);
}

/**
 * Write a cgroup interface file, turning the kernel's terse errors into the fix: ENOENT means
 * the controller is not enabled for this cgroup, EBUSY on subtree_control that the cgroup holds
 * processes, EINVAL a value the kernel does not accept.
 */
function writeCg(file: string, value: string): void {
  try {
    writeFileSync(file, value);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const base = path.basename(file);
    if (code === 'ENOENT' && base === 'cgroup.subtree_control')
      throw new Error(
        `cannot write '${value}' to ${file}: the controller is not in the parent's cgroup.controllers (bound to a v1 hierarchy on a hybrid host, or not enabled above)`,
      );
    if (code === 'ENOENT')
      throw new Error(
        `${file} does not exist: its controller is not enabled in ${path.join(path.dirname(path.dirname(file)), 'cgroup.subtree_control')}`,
      );
    if (code === 'EBUSY' && base === 'cgroup.subtree_control')
      throw new Error(
        `cannot write '${value}' to ${file}: ${path.dirname(file)} holds processes (v2 allows controllers only above process-free cgroups): move them out`,
      );
    throw new Error(`cannot write '${value}' to ${file}: ${String(err)}`);
  }
}

/**
 * Enable `controllers` for the children of every cgroup from `root` down to `dir` (inclusive),
 * creating the directories; each level must offer them in its cgroup.controllers. Returns the
 * controllers `dir`'s children actually get.
 */
export function enableControllers(root: string, dir: string, controllers: readonly string[]): string[] {
  const rel = path.relative(root, dir);
  if (rel.startsWith('..') || path.isAbsolute(rel))
    throw new Error(`${dir} is not under the cgroup root ${root}`);
  const levels = [root];
  for (const part of rel.split(path.sep).filter(Boolean)) levels.push(path.join(levels.at(-1)!, part));
  for (const level of levels) {
    mkdirSync(level, { recursive: true });
    const offered = readLines(path.join(level, 'cgroup.controllers'));
    const missing = controllers.filter((c) => !offered.includes(c));
    if (missing.length)
      throw new Error(
        `cgroup ${level} does not offer ${missing.map((c) => `'${c}'`).join(', ')} (cgroup.controllers: '${offered.join(' ')}')`,
      );
    const enabled = readLines(path.join(level, 'cgroup.subtree_control'));
    const todo = controllers.filter((c) => !enabled.includes(c));
    if (todo.length) writeCg(path.join(level, 'cgroup.subtree_control'), todo.map((c) => `+${c}`).join(' '));
  }
  return readLines(path.join(dir, 'cgroup.subtree_control')).filter((c) => controllers.includes(c));
}

function v2(p: CgroupPaths): CgroupV2Paths | undefined {
  return isV2Paths(p) ? p : undefined;
}

export class CgroupsV2 implements Cgroups {
  readonly version = 2;
  readonly root: string;
  readonly parent: string;
  readonly controllers: readonly V2Controller[];

  constructor(opts: CgroupsV2Options = {}) {
    this.root = opts.root ?? '/sys/fs/cgroup';
    this.parent = opts.parent ?? 'bulwark';
    this.controllers = opts.controllers ?? ['memory', 'cpu'];
  }

  get parentDir(): string {
    return path.join(this.root, this.parent);
  }

  detect(): Capability {
    if (process.getuid?.() !== 0) {
      return {
        available: false,
        reason: 'not running as root: run the control plane as root to get cgroup limits',
      };
    }
    if (!existsSync(path.join(this.root, 'cgroup.controllers'))) {
      return {
        available: false,
        reason: `no cgroup2 hierarchy at ${this.root} (no cgroup.controllers there)`,
      };
    }
    try {
      enableControllers(this.root, this.parentDir, this.controllers);
    } catch (err) {
      return { available: false, reason: err instanceof Error ? err.message : String(err) };
    }
    return { available: true };
  }

  /** Remove the parent levels below the root that no instance uses any more (rmdir refuses otherwise). */
  removeParentIfEmpty(): void {
    let dir = this.parentDir;
    while (dir !== this.root && dir.startsWith(this.root)) {
      try {
        rmdirSync(dir);
      } catch {
        return; // not empty (other scopes, or instances), or already gone
      }
      dir = path.dirname(dir);
    }
  }

  pathsFor(id: string): CgroupV2Paths {
    return { unified: path.join(this.parentDir, id) };
  }

  /**
   * Create (or reuse) the instance's cgroup and write every limit of the delegated controllers,
   * so a reused cgroup never keeps the limits of an earlier run. memory.high is reset to "max":
   * the hard limit alone decides, as on v1, and a leak shows as growth up to an OOM kill rather
   * than as a stall under reclaim throttling.
   */
  create(id: string, limits: Limits): CgroupV2Paths {
    this.require(limits);
    const p = this.pathsFor(id);
    mkdirSync(p.unified, { recursive: true });
    if (this.controllers.includes('memory')) {
      writeCg(path.join(p.unified, 'memory.high'), 'max');
      this.setMemoryLimit(p, limits.memoryBytes);
    }
    if (this.controllers.includes('cpu')) this.setCpuLimit(p, limits.cpu);
    return p;
  }

  /** cpu.max "<quota> <period>"; "max" = no quota. */
  setCpuLimit(paths: CgroupPaths, cpu: number | undefined): void {
    const p = this.own(paths);
    this.require({ cpu });
    const quota = cpu !== undefined ? String(Math.max(MIN_QUOTA_US, Math.round(cpu * CPU_PERIOD_US))) : 'max';
    writeCg(path.join(p.unified, 'cpu.max'), `${quota} ${CPU_PERIOD_US}`);
  }

  /**
   * memory.max, and memory.swap.max 0 with a limit (where swap is accounted) so the limit does
   * not spill into swap, like memsw on v1. v2 has no ordering rule between the two files.
   */
  setMemoryLimit(paths: CgroupPaths, bytes: number | undefined): void {
    const p = this.own(paths);
    this.require({ memoryBytes: bytes });
    writeCg(path.join(p.unified, 'memory.max'), bytes !== undefined ? String(bytes) : 'max');
    const swap = path.join(p.unified, 'memory.swap.max');
    if (existsSync(swap)) writeCg(swap, bytes !== undefined ? '0' : 'max');
  }

  procsFiles(paths: CgroupPaths): string[] {
    return [path.join(this.own(paths).unified, 'cgroup.procs')];
  }

  /** memory.events oom_kill: OOM kills of this cgroup's processes (a leaf, so no descendants). */
  oomKills(paths: CgroupPaths): number {
    const p = v2(paths);
    if (!p) return 0;
    return readFlatKeyed(path.join(p.unified, 'memory.events'))?.['oom_kill'] ?? 0;
  }

  /** The same shape as v1: memory, CPU time and throttling; plus pressure where PSI is on. */
  stats(paths: CgroupPaths): InstanceStats | undefined {
    const p = v2(paths);
    if (!p) return undefined;
    const dir = p.unified;
    const memoryBytes = readNum(path.join(dir, 'memory.current'));
    if (memoryBytes === undefined) return undefined;
    const s: InstanceStats = { memoryBytes };
    const limit = parseMax(readText(path.join(dir, 'memory.max')));
    if (typeof limit === 'number') s.memoryLimitBytes = limit;
    // cpu.stat is there even without the cpu controller (usage only); the nr_* lines need it.
    const st = readFlatKeyed(path.join(dir, 'cpu.stat'));
    if (st?.['usage_usec'] !== undefined) s.cpuUsageNs = st['usage_usec'] * 1000;
    if (st?.['nr_periods'] !== undefined) s.cpuPeriods = st['nr_periods'];
    if (st?.['nr_throttled'] !== undefined) s.cpuThrottledPeriods = st['nr_throttled'];
    const oom = readFlatKeyed(path.join(dir, 'memory.events'))?.['oom_kill'];
    if (oom !== undefined) s.oomKills = oom;
    const pressure = this.pressure(p);
    if (pressure) s.pressure = pressure;
    return s;
  }

  /** cpu/memory/io.pressure of the cgroup; undefined when PSI is off (the files are absent or unreadable). */
  pressure(paths: CgroupPaths): InstanceStats['pressure'] {
    const p = v2(paths);
    if (!p) return undefined;
    const out: NonNullable<InstanceStats['pressure']> = {};
    for (const r of ['cpu', 'memory', 'io'] as const) {
      const v = readPressure(path.join(p.unified, `${r}.pressure`));
      if (v) out[r] = v;
    }
    return Object.keys(out).length ? out : undefined;
  }

  /** The current limits as the kernel reports them (for checks and evidence). */
  limits(paths: CgroupPaths): {
    memoryMax?: number | 'max';
    memoryHigh?: number | 'max';
    cpuMax?: ReturnType<typeof parseCpuMax>;
  } {
    const dir = this.own(paths).unified;
    const out: ReturnType<CgroupsV2['limits']> = {};
    const memoryMax = parseMax(readText(path.join(dir, 'memory.max')));
    const memoryHigh = parseMax(readText(path.join(dir, 'memory.high')));
    const cpuMax = parseCpuMax(readText(path.join(dir, 'cpu.max')));
    if (memoryMax !== undefined) out.memoryMax = memoryMax;
    if (memoryHigh !== undefined) out.memoryHigh = memoryHigh;
    if (cpuMax !== undefined) out.cpuMax = cpuMax;
    return out;
  }

  /** cgroup.events "populated": any process left in the cgroup (or below it). */
  populated(paths: CgroupPaths): boolean {
    const p = v2(paths);
    if (!p) return false;
    return (readFlatKeyed(path.join(p.unified, 'cgroup.events'))?.['populated'] ?? 0) === 1;
  }

  pids(paths: CgroupPaths): number[] {
    const p = v2(paths);
    if (!p) return [];
    try {
      return readFileSync(path.join(p.unified, 'cgroup.procs'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map(Number);
    } catch {
      return [];
    }
  }

  /**
   * cgroup.kill (Linux 5.14+) SIGKILLs every process in the cgroup at once, including ones
   * forked while it runs; older kernels get the per-pid loop v1 uses.
   */
  killAll(paths: CgroupPaths): void {
    const p = v2(paths);
    if (!p) return;
    const kill = path.join(p.unified, 'cgroup.kill');
    if (existsSync(kill)) {
      try {
        writeFileSync(kill, '1');
        return;
      } catch {
        // cgroup removed meanwhile, or the write refused: fall back to signalling the pids
      }
    }
    for (const pid of this.pids(p)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  /** Kill what is left, wait for cgroup.events to say the cgroup is empty, and remove it. */
  async remove(paths: CgroupPaths): Promise<void> {
    const p = v2(paths);
    if (!p) return;
    for (let i = 0; i < 40; i++) {
      try {
        rmdirSync(p.unified);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return;
        if (code !== 'EBUSY' || i === 39) throw err;
        this.killAll(p);
        // Killed processes leave asynchronously: populated drops to 0 once the last is reaped.
        for (let j = 0; j < 10 && this.populated(p); j++) await sleep(10);
      }
    }
  }

  /** Limits whose controller is not delegated are refused, not dropped. */
  private require(limits: Limits): void {
    const missing: string[] = [];
    if (limits.cpu !== undefined && !this.controllers.includes('cpu')) missing.push('cpu');
    if (limits.memoryBytes !== undefined && !this.controllers.includes('memory')) missing.push('memory');
    if (missing.length)
      throw new Error(
        `cgroup v2 ${missing.join(' and ')} limit requested but the ${missing.join(' and ')} controller is not delegated under ${this.parentDir}`,
      );
  }

  private own(p: CgroupPaths): CgroupV2Paths {
    const q = v2(p);
    if (!q)
      throw new Error(
        `cgroup ${JSON.stringify(p)} belongs to the v1 hierarchies; this host applies limits through v2`,
      );
    return q;
  }
}
