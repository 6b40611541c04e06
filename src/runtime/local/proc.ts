/**
 * /proc helpers. A pid alone is not an identity: after a control-plane
 * restart the pid in a record may belong to an unrelated process, so every
 * liveness check also compares the process start time (field 22 of
 * /proc/<pid>/stat, in clock ticks since boot), which differs for a reused pid.
 */
import { readFileSync } from 'node:fs';

export interface ProcIdentity {
  pid: number;
  /** Start time in clock ticks since boot, from /proc/<pid>/stat. */
  startTime: number;
}

interface StatFields {
  state: string;
  pgid: number;
  startTime: number;
}

function readStat(pid: number): StatFields | undefined {
  let raw: string;
  try {
    raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) may contain spaces and parentheses: parse after the last ')'.
  const rest = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); field N is rest[N - 3].
  const state = rest[0] ?? '?';
  const pgid = Number(rest[2]);
  const startTime = Number(rest[19]);
  if (!Number.isFinite(startTime)) return undefined;
  return { state, pgid, startTime };
}

/** Start time of `pid`, or undefined when it does not exist. */
export function processStartTime(pid: number): number | undefined {
  return readStat(pid)?.startTime;
}

/** Identity of a live process (undefined when gone). */
export function identify(pid: number): ProcIdentity | undefined {
  const st = readStat(pid);
  return st ? { pid, startTime: st.startTime } : undefined;
}

/**
 * True when the process exists, is not a zombie and has the recorded start
 * time. Zombies count as dead: an orphaned shim may wait a while to be reaped.
 */
export function isAlive(id: ProcIdentity | undefined): boolean {
  if (!id || !(id.pid > 0)) return false;
  const st = readStat(id.pid);
  return st !== undefined && st.state !== 'Z' && st.state !== 'X' && st.startTime === id.startTime;
}

/**
 * Signal the process group led by `id.pid` (children of the instance die with
 * it), falling back to the pid itself. No-op when the identity no longer
 * matches, so a reused pid is never signalled.
 */
export function signalGroup(id: ProcIdentity | undefined, signal: NodeJS.Signals): boolean {
  if (!id || !isAlive(id)) return false;
  const st = readStat(id.pid);
  try {
    if (st && st.pgid === id.pid) process.kill(-id.pid, signal);
    else process.kill(id.pid, signal);
    return true;
  } catch {
    return false;
  }
}
