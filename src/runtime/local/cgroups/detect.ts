/**
 * What the host's cgroup mounts look like, from /proc/self/mountinfo: which
 * v1 controllers are mounted where, where the v2 (unified) hierarchy is and
 * which controllers it offers, and whether pressure stall information (PSI)
 * can be read. Pure reading; nothing is created here. Every path is
 * injectable so the parsing is unit-tested on files written to a temp dir.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * v1: only legacy hierarchies; v2: only the unified one; hybrid: both (v1 controllers
 * plus a cgroup2 mount, e.g. /sys/fs/cgroup/unified); none: nothing mounted.
 */
export type CgroupMode = 'v1' | 'v2' | 'hybrid' | 'none';

export interface CgroupHost {
  mode: CgroupMode;
  /** v1 controller -> its mount point (co-mounted controllers share one). Named hierarchies (name=systemd) are left out. */
  v1: Record<string, string>;
  /** The cgroup2 mount point, when there is one. */
  v2Root?: string;
  /** Controllers the v2 root offers (its cgroup.controllers); in hybrid mode those not bound to v1. */
  v2Controllers: string[];
  /** /proc/pressure/* is readable (kernel built with PSI and not booted with psi=0). */
  psi: boolean;
}

export interface DetectOptions {
  /** @default "/proc/self/mountinfo" */
  mountinfo?: string;
  /** Directory holding the host-wide pressure files. @default "/proc/pressure" */
  procPressure?: string;
}

export interface Mount {
  mountPoint: string;
  fsType: string;
  /** Per-superblock options: for cgroup v1 the controllers, e.g. "rw,cpu,cpuacct". */
  superOptions: string[];
}

/** mountinfo escapes space, tab, newline and backslash in paths as octal (\040 ...). */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parse /proc/<pid>/mountinfo (see proc(5)); lines that do not have the documented shape are skipped. */
export function parseMountinfo(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    // Optional fields end with a lone "-"; fs type, source and super options follow it.
    const sep = fields.indexOf('-', 6);
    if (sep < 0 || fields.length < sep + 4) continue;
    out.push({
      mountPoint: unescape(fields[4]!),
      fsType: fields[sep + 1]!,
      superOptions: fields[sep + 3]!.split(','),
    });
  }
  return out;
}

/** Super options of a v1 cgroup mount that are not controller names. */
const V1_NON_CONTROLLER =
  /^(rw|ro|noprefix|clone_children|xattr|cpuset_v2_mode|favordynmods|nofavor|release_agent=.*|name=.*|none)$/;

function readControllers(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

/** Whether PSI is on: the files exist with CONFIG_PSI, and reading them fails with EOPNOTSUPP under psi=0. */
export function psiAvailable(procPressure = '/proc/pressure'): boolean {
  try {
    return /^some /m.test(readFileSync(path.join(procPressure, 'cpu'), 'utf8'));
  } catch {
    return false;
  }
}

export function detectCgroupHost(opts: DetectOptions = {}): CgroupHost {
  let mounts: Mount[] = [];
  try {
    mounts = parseMountinfo(readFileSync(opts.mountinfo ?? '/proc/self/mountinfo', 'utf8'));
  } catch {
    // no /proc: reported as mode 'none' below
  }
  const v1: Record<string, string> = {};
  let v2Root: string | undefined;
  for (const m of mounts) {
    if (m.fsType === 'cgroup2') {
      // The first mount wins; later ones (bind mounts, containers' views) show the same hierarchy.
      v2Root ??= m.mountPoint;
    } else if (m.fsType === 'cgroup') {
      for (const o of m.superOptions) if (!V1_NON_CONTROLLER.test(o)) v1[o] ??= m.mountPoint;
    }
  }
  const hasV1 = Object.keys(v1).length > 0;
  const mode: CgroupMode = v2Root ? (hasV1 ? 'hybrid' : 'v2') : hasV1 ? 'v1' : 'none';
  const host: CgroupHost = {
    mode,
    v1,
    v2Controllers: v2Root ? readControllers(path.join(v2Root, 'cgroup.controllers')) : [],
    psi: psiAvailable(opts.procPressure),
  };
  if (v2Root) host.v2Root = v2Root;
  return host;
}

/** Controllers the driver needs on either hierarchy. */
export const REQUIRED_CONTROLLERS = ['memory', 'cpu'] as const;

export type Choice =
  { version: 1; root: string } | { version: 2; root: string } | { version: undefined; reason: string };

/**
 * Which hierarchy to apply limits through: v2 when its root offers memory and cpu (a v2 host,
 * or a hybrid one whose v1 memory/cpu hierarchies were unmounted), else v1 when both are
 * mounted side by side under one directory (the layout every distribution uses), else none
 * with the reason naming what is missing and where.
 */
export function chooseHierarchy(host: CgroupHost): Choice {
  const missingV2 = REQUIRED_CONTROLLERS.filter((c) => !host.v2Controllers.includes(c));
  if (host.v2Root && missingV2.length === 0) return { version: 2, root: host.v2Root };
  const mem = host.v1['memory'];
  const cpu = host.v1['cpu'];
  if (mem && cpu) {
    const root = path.dirname(mem);
    // cpu may be co-mounted (cpu,cpuacct) with a "cpu" symlink beside it: what matters is <root>/cpu.
    if (existsSync(path.join(root, 'cpu', 'cgroup.procs'))) return { version: 1, root };
    return {
      version: undefined,
      reason: `cgroup v1 'cpu' controller is not reachable at ${path.join(root, 'cpu')} (mounted at ${cpu})`,
    };
  }
  if (host.mode === 'none') {
    return {
      version: undefined,
      reason: 'no cgroup filesystem is mounted (see /proc/self/mountinfo): mount cgroup2 at /sys/fs/cgroup',
    };
  }
  if (host.v2Root) {
    const where = (c: string): string =>
      host.v1[c]
        ? `'${c}' is bound to the v1 hierarchy at ${host.v1[c]}`
        : `'${c}' is not offered (kernel built without it?)`;
    return {
      version: undefined,
      reason:
        `cgroup v2 at ${host.v2Root} lacks ${missingV2.map((c) => `'${c}'`).join(' and ')} in cgroup.controllers ` +
        `(${missingV2.map(where).join('; ')}) and v1 does not have both memory and cpu mounted: ` +
        'boot with systemd.unified_cgroup_hierarchy=1 for a pure v2 host',
    };
  }
  const missingV1 = REQUIRED_CONTROLLERS.filter((c) => !host.v1[c]);
  return {
    version: undefined,
    reason: `cgroup v1 controller${missingV1.length > 1 ? 's' : ''} ${missingV1.map((c) => `'${c}'`).join(' and ')} not mounted`,
  };
}
