/**
 * CPU affinity of whole processes (every thread), through util-linux
 * `taskset`: Node has no sched_setaffinity binding, and a process pinned this
 * way keeps the mask across exec and passes it to children it forks.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

/**
 * The CPUs this machine has online. Not os.availableParallelism(): that
 * counts this process's affinity, which after `--control-plane-cpus` is the
 * control plane's own CPUs and would make every other CPU look absent.
 */
export function cpuCount(): number {
  return os.cpus().length;
}

/**
 * `0-2,5` (the kernel's list format, as in /proc/<pid>/status, and what
 * `--gateway-cpus` takes) -> [0, 1, 2, 5]; throws naming the bad part.
 */
export function parseCpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new Error(`'${part}' is not a CPU number or range`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new Error(`range '${part}' runs backwards`);
    for (let c = lo; c <= hi; c++) out.push(c);
  }
  return out;
}

/** The CPUs `pid` may run on. */
export function affinityOf(pid: number | 'self'): number[] {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^Cpus_allowed_list:\s*(.+)$/m.exec(status);
  if (!m) throw new Error(`/proc/${pid}/status has no Cpus_allowed_list`);
  return parseCpuList(m[1]!);
}

/**
 * Restrict every thread of `pid` to `cpus`; throws with the reason when the
 * kernel refuses. The mask is read back: `taskset -a` exits 0 even when the
 * process does not exist.
 */
export function setAffinity(pid: number, cpus: readonly number[]): void {
  if (cpus.length === 0) throw new Error('setAffinity: no CPUs given');
  const fail = (why: string): never => {
    throw new Error(`could not pin process ${pid} to CPUs ${cpus.join(',')}: ${why}`);
  };
  try {
    execFileSync('taskset', ['-apc', cpus.join(','), String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    fail(String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim());
  }
  let now: number[] = [];
  try {
    now = affinityOf(pid);
  } catch {
    fail('no such process');
  }
  const want = [...new Set(cpus)].sort((a, b) => a - b);
  if (now.join(',') !== want.join(',')) fail(`its CPUs are ${now.join(',')} afterwards`);
}
