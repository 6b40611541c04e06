/**
 * Readers for the host-side evidence of one instance: /proc of its process,
 * its cgroup v1 counters and its TCP sockets. Each returns the raw text
 * (kept verbatim in the bundle: parsers can be wrong, the kernel's words are
 * what an engineer trusts) plus a parsed summary. None of them talks to the
 * process itself, so they work on stopped and hung processes too.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { CgroupStats, ProcessStats } from './types.ts';

/** USER_HZ: /proc reports CPU times in these ticks; 100 on every Linux ABI Node supports. */
const TICKS_PER_SECOND = 100;

function num(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v.trim());
  return Number.isFinite(n) ? n : undefined;
}

/** "Key:\tvalue" lines of /proc/<pid>/status into a map. */
function statusFields(status: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of status.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return m;
}

const kb = (v: string | undefined): number | undefined => {
  const n = num(v?.replace(/\s*kB$/, ''));
  return n === undefined ? undefined : n * 1024;
};

export interface ProcRaw {
  status: string;
  stat: string;
  limits: string;
}

export async function readProcess(pid: number): Promise<{ raw: ProcRaw; stats: ProcessStats }> {
  const [status, stat, limits, fds] = await Promise.all([
    readFile(`/proc/${pid}/status`, 'utf8'),
    readFile(`/proc/${pid}/stat`, 'utf8'),
    readFile(`/proc/${pid}/limits`, 'utf8').catch(() => ''),
    readdir(`/proc/${pid}/fd`).catch(() => undefined),
  ]);
  const f = statusFields(status);
  // Fields after comm: rest[0] is field 3 (state), utime is field 14, stime field 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticksToMs = (v: string | undefined): number | undefined => {
    const n = num(v);
    return n === undefined ? undefined : Math.round((n * 1000) / TICKS_PER_SECOND);
  };
  const stats: ProcessStats = {
    state: f.get('State') ?? rest[0] ?? '?',
    threads: num(f.get('Threads')),
    rssBytes: kb(f.get('VmRSS')),
    peakRssBytes: kb(f.get('VmHWM')),
    vmBytes: kb(f.get('VmSize')),
    userCpuMs: ticksToMs(rest[11]),
    systemCpuMs: ticksToMs(rest[12]),
    openFds: fds?.length,
    voluntaryCtxSwitches: num(f.get('voluntary_ctxt_switches')),
    involuntaryCtxSwitches: num(f.get('nonvoluntary_ctxt_switches')),
  };
  return { raw: { status, stat, limits }, stats };
}

function parseKeyValues(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    const n = num(v);
    if (k && n !== undefined) out[k] = n;
  }
  return out;
}

/** Files copied verbatim, per controller directory. */
const CGROUP_FILES = {
  memory: [
    'memory.usage_in_bytes',
    'memory.max_usage_in_bytes',
    'memory.limit_in_bytes',
    'memory.failcnt',
    'memory.stat',
    'memory.oom_control',
  ],
  cpu: ['cpu.stat', 'cpu.cfs_quota_us', 'cpu.cfs_period_us', 'cpuacct.usage'],
  cpuacct: ['cpuacct.usage', 'cpuacct.stat'],
} as const;

/**
 * cgroup v1 counters of `cgroup` (e.g. "bulwark/<instance id>") under
 * `root`. Controllers or files that are absent are left out; throws only when
 * none of the controller directories exists.
 */
export async function readCgroup(
  root: string,
  cgroup: string,
): Promise<{ raw: Record<string, string>; stats: CgroupStats }> {
  const raw: Record<string, string> = {};
  let dirsFound = 0;
  for (const [controller, files] of Object.entries(CGROUP_FILES)) {
    const dir = path.join(root, controller, cgroup);
    const texts = await Promise.all(
      files.map((f) => readFile(path.join(dir, f), 'utf8').catch(() => undefined)),
    );
    if (texts.some((t) => t !== undefined)) dirsFound++;
    files.forEach((f, i) => {
      const t = texts[i];
      // cpu and cpuacct are often co-mounted: the same file via both names is kept once.
      if (t !== undefined && raw[f] === undefined) raw[f] = t;
    });
  }
  if (dirsFound === 0)
    throw new Error(`no cgroup directories for '${cgroup}' under ${root}/{memory,cpu,cpuacct}`);
  const cpuStat = raw['cpu.stat'] !== undefined ? parseKeyValues(raw['cpu.stat']) : undefined;
  const quota = num(raw['cpu.cfs_quota_us']);
  const stats: CgroupStats = {
    memory: {
      usageBytes: num(raw['memory.usage_in_bytes']),
      maxUsageBytes: num(raw['memory.max_usage_in_bytes']),
      limitBytes: num(raw['memory.limit_in_bytes']),
      failcnt: num(raw['memory.failcnt']),
      stat: raw['memory.stat'] !== undefined ? parseKeyValues(raw['memory.stat']) : undefined,
    },
    cpu: cpuStat && {
      nrPeriods: cpuStat.nr_periods,
      nrThrottled: cpuStat.nr_throttled,
      throttledTimeNs: cpuStat.throttled_time,
      quotaUs: quota !== undefined && quota >= 0 ? quota : undefined,
      periodUs: num(raw['cpu.cfs_period_us']),
    },
    cpuacctUsageNs: num(raw['cpuacct.usage']),
  };
  return { raw, stats };
}

function run(file: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 8 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
  });
}

/**
 * Keep the header and the socket entries whose process column names `pid`;
 * `ss -i` puts each socket's details on indented continuation lines.
 */
export function filterSsByPid(text: string, pid: number): string {
  const lines = text.split('\n');
  const out: string[] = lines.length ? [lines[0]!] : [];
  let keep = false;
  const owner = `pid=${pid},`;
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    if (!/^\s/.test(line)) keep = line.includes(owner);
    if (keep) out.push(line);
  }
  return `${out.join('\n')}\n`;
}

/** Socket count per TCP state (first column of each entry). */
export function countSsStates(text: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of text.split('\n').slice(1)) {
    const state = /^([A-Z][A-Z0-9-]*)\s/.exec(line)?.[1];
    if (state) counts[state] = (counts[state] ?? 0) + 1;
  }
  return counts;
}

/**
 * `ss -tanpi`: inside the instance's netns every socket is the instance's;
 * on the shared host namespace only those owned by `pid` are kept.
 */
export async function readSockets(
  pid: number | undefined,
  netns: string | undefined,
  timeoutMs: number,
): Promise<{ text: string; states: Record<string, number> }> {
  let text: string;
  if (netns) text = await run('ip', ['netns', 'exec', netns, 'ss', '-tanpi'], timeoutMs);
  else if (pid !== undefined) text = filterSsByPid(await run('ss', ['-tanpi'], timeoutMs), pid);
  else throw new Error('neither a network namespace nor a pid to attribute sockets to');
  return { text, states: countSsStates(text) };
}
