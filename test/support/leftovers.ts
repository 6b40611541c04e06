/**
 * What a test run left running on the machine: processes (HAProxy among
 * them), network namespaces, veths, cgroups and address leases that the
 * run's tests created and did not remove.
 *
 * Other test runs and control planes may share the machine, so nothing is
 * judged by name alone. The run owns a temporary root (TMPDIR points into it,
 * so every `os.tmpdir()` data dir of the run lives under it, and every
 * process the run starts inherits it in its environment), and a thing is the
 * run's when it can be traced back to that root:
 *
 * - a process: its environment, command line or working directory names the root;
 * - a network namespace: one of the run's processes is inside it, an address
 *   lease of the run names it, or its name carries the scope of one of the run's
 *   state directories (`bw<scope>-<id>`, the local driver's naming: scope = the
 *   first 6 hex digits of sha256 of the state dir);
 * - a cgroup: one of the run's processes is in it, or a path segment is such a scope;
 * - a veth: its peer is in one of the run's namespaces;
 * - a lease (`/run/bulwark/leases/<bridge>/<ip>`): its owner is under the root.
 *
 * State directories are usually deleted by the tests before the end, so their
 * scopes are collected while the run goes (`ScopeWatcher`). Anything that
 * already existed when the run started is never reported.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const CGROUP_ROOT = '/sys/fs/cgroup';
export const LEASE_ROOT = '/run/bulwark/leases';

/** The local driver's scope of a state directory (src/runtime/local/options.ts). */
export function scopeOf(stateDir: string): string {
  return createHash('sha256').update(path.resolve(stateDir)).digest('hex').slice(0, 6);
}

/** What exists before the run: never reported as the run's leftover. */
export interface Snapshot {
  pids: Set<number>;
  netns: Set<string>;
  cgroups: Set<string>;
  veths: Set<string>;
  leases: Set<string>;
}

export interface Leftover {
  kind: 'process' | 'haproxy' | 'netns' | 'cgroup' | 'veth' | 'lease';
  what: string;
}

function readOr(file: string, fallback = ''): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

function ip(args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return '';
  }
}

export function listPids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

export function listNetns(): string[] {
  return ip(['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter(Boolean);
}

/** Every cgroup directory under a `bulwark*` parent of any hierarchy (v1 controllers and v2). */
/**
 * Removes every empty cgroup below a scope (`<hierarchy>/bulwark*\/<scope>[/<id>]`), deepest
 * first, for the state dirs of a test that are gone: rmdir fails on a cgroup that still holds a
 * process, so a leaked instance stays for the leftover check to report.
 */
export function removeEmptyScopeCgroups(scopes: ReadonlySet<string>): void {
  const mine = listCgroups()
    .filter((cg) =>
      path
        .relative(CGROUP_ROOT, cg)
        .split('/')
        .some((seg) => scopes.has(seg)),
    )
    .sort((a, b) => b.length - a.length);
  for (const cg of mine) {
    try {
      fs.rmdirSync(cg);
    } catch {
      // not empty (or gone)
    }
  }
}

export function listCgroups(root = CGROUP_ROOT): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const p = path.join(dir, e.name);
      out.push(p);
      if (depth < 3) walk(p, depth + 1);
    }
  };
  let hierarchies: string[];
  try {
    hierarchies = fs.readdirSync(root);
  } catch {
    return out;
  }
  for (const h of hierarchies) {
    let tops: string[];
    try {
      tops = fs.readdirSync(path.join(root, h)).filter((n) => n.startsWith('bulwark'));
    } catch {
      continue;
    }
    for (const t of tops) {
      const p = path.join(root, h, t);
      if (!fs.statSync(p, { throwIfNoEntry: false })?.isDirectory()) continue;
      out.push(p);
      walk(p, 1);
    }
  }
  return out;
}

/** Host ends of veth pairs, with the namespace their peer is in (when it is a named one). */
export function listVeths(): { name: string; peerNetns?: string }[] {
  return ip(['-o', 'link', 'show', 'type', 'veth'])
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const name = /^\d+:\s+([^@:\s]+)/.exec(l)?.[1] ?? '';
      const peerNetns = /link-netns (\S+)/.exec(l)?.[1];
      return { name, ...(peerNetns ? { peerNetns } : {}) };
    })
    .filter((v) => v.name !== '');
}

/** Lease files, with their owner (a state dir) and the namespace holding the address. */
export function listLeases(root = LEASE_ROOT): { file: string; owner: string; netns?: string }[] {
  const out: { file: string; owner: string; netns?: string }[] = [];
  let bridges: string[];
  try {
    bridges = fs.readdirSync(root);
  } catch {
    return out;
  }
  for (const b of bridges) {
    let ips: string[];
    try {
      ips = fs.readdirSync(path.join(root, b));
    } catch {
      continue;
    }
    for (const a of ips) {
      const file = path.join(root, b, a);
      const [owner = '', netns] = readOr(file).split('\n');
      out.push({ file, owner, ...(netns ? { netns } : {}) });
    }
  }
  return out;
}

export function takeSnapshot(): Snapshot {
  return {
    pids: new Set(listPids()),
    netns: new Set(listNetns()),
    cgroups: new Set(listCgroups()),
    veths: new Set(listVeths().map((v) => v.name)),
    leases: new Set(listLeases().map((l) => l.file)),
  };
}

/**
 * Collects the scopes of every directory under the run root, a few levels
 * deep, while the run goes: state dirs (`<data>/sites/<site>/instances`) are
 * gone by the end, their namespaces and cgroups may not be.
 */
export class ScopeWatcher {
  /** scope -> the directory it was derived from (named in leftover reports). */
  readonly scopes = new Map<string, string>();
  private readonly root: string;
  private readonly depth: number;
  private readonly timer: NodeJS.Timeout;

  constructor(root: string, intervalMs = 250, depth = 6) {
    this.root = root;
    this.depth = depth;
    this.timer = setInterval(() => this.scan(), intervalMs);
    this.timer.unref();
  }

  scan(): void {
    const walk = (dir: string, depth: number): void => {
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return; // removed meanwhile
      }
      for (const e of entries) {
        if (!e.isDirectory()) continue;
        const p = path.join(dir, e.name);
        const sc = scopeOf(p);
        if (!this.scopes.has(sc)) this.scopes.set(sc, p);
        if (depth < this.depth) walk(p, depth + 1);
      }
    };
    walk(this.root, 1);
  }

  stop(): void {
    clearInterval(this.timer);
    this.scan();
  }
}

export interface FindOptions {
  root: string;
  before: Snapshot;
  scopes: ReadonlyMap<string, string>;
  /** Processes never reported: the test runner itself and its workers. */
  exclude: ReadonlySet<number>;
}

/** A process of the run: its environment, command line or working directory names the root. */
function processOf(pid: number, root: string): { cmdline: string } | undefined {
  const cmdline = readOr(`/proc/${pid}/cmdline`).split('\0').join(' ').trim();
  if (cmdline === '') return undefined; // kernel thread, zombie, or gone
  const env = readOr(`/proc/${pid}/environ`);
  let cwd = '';
  try {
    cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    // gone
  }
  const inRoot = (s: string): boolean => s === root || s.startsWith(`${root}/`);
  const envHit = env.split('\0').some((kv) => inRoot(kv.slice(kv.indexOf('=') + 1)));
  return envHit || cmdline.includes(root) || inRoot(cwd) ? { cmdline } : undefined;
}

export function findLeftovers(o: FindOptions): Leftover[] {
  const found: Leftover[] = [];
  const ours = new Set<number>();
  for (const pid of listPids()) {
    if (o.before.pids.has(pid) || o.exclude.has(pid)) continue;
    const p = processOf(pid, o.root);
    if (!p) continue;
    ours.add(pid);
    const kind = /(^|\/)haproxy(\s|$)/.test(p.cmdline.split(' ')[0] ?? '') ? 'haproxy' : 'process';
    found.push({ kind, what: `pid ${pid}: ${p.cmdline.slice(0, 300)}` });
  }

  const leases = listLeases().filter(
    (l) => !o.before.leases.has(l.file) && (l.owner === o.root || l.owner.startsWith(`${o.root}/`)),
  );
  for (const l of leases)
    found.push({ kind: 'lease', what: `${l.file} (owner ${l.owner}${l.netns ? `, netns ${l.netns}` : ''})` });
  const leasedNetns = new Set(leases.flatMap((l) => (l.netns ? [l.netns] : [])));

  const scopeOfName = (name: string): string | undefined => /^bw([0-9a-f]{6})-/.exec(name)?.[1];
  const ourNetns = new Set<string>();
  for (const ns of listNetns()) {
    if (o.before.netns.has(ns)) continue;
    const pids = ip(['netns', 'pids', ns]).split('\n').filter(Boolean).map(Number);
    const s = scopeOfName(ns);
    if (pids.some((p) => ours.has(p)) || leasedNetns.has(ns) || (s !== undefined && o.scopes.has(s))) {
      ourNetns.add(ns);
      const from = s !== undefined && o.scopes.has(s) ? ` (scope of ${o.scopes.get(s)})` : '';
      found.push({
        kind: 'netns',
        what: `${ns}${pids.length ? ` (pids ${pids.join(' ')})` : ' (empty)'}${from}`,
      });
    }
  }

  for (const v of listVeths()) {
    if (o.before.veths.has(v.name) || !v.peerNetns || !ourNetns.has(v.peerNetns)) continue;
    found.push({ kind: 'veth', what: `${v.name} (peer in ${v.peerNetns})` });
  }

  for (const cg of listCgroups()) {
    if (o.before.cgroups.has(cg)) continue;
    const procs = readOr(path.join(cg, 'cgroup.procs')).split('\n').filter(Boolean).map(Number);
    const segs = path.relative(CGROUP_ROOT, cg).split('/');
    const scope = segs.find((s) => o.scopes.has(s));
    if (procs.some((p) => ours.has(p)) || scope !== undefined) {
      const from = scope !== undefined ? ` (scope of ${o.scopes.get(scope)})` : '';
      found.push({ kind: 'cgroup', what: `${cg}${procs.length ? ` (pids ${procs.join(' ')})` : ''}${from}` });
    }
  }
  return found;
}

/** This process and its ancestors, and the workers it forked (the runner itself, not what tests started). */
export function runnerPids(self = process.pid): Set<number> {
  const ppid = (pid: number): number =>
    Number(/^PPid:\s+(\d+)/m.exec(readOr(`/proc/${pid}/status`))?.[1] ?? 0);
  const out = new Set<number>();
  for (let p = self; p > 1 && !out.has(p); p = ppid(p)) out.add(p);
  for (const pid of listPids()) {
    if (ppid(pid) !== self) continue;
    // Vitest's fork workers run its own entry point; anything else a test started is not the runner.
    if (readOr(`/proc/${pid}/cmdline`).includes('/node_modules/vitest/')) out.add(pid);
  }
  return out;
}
