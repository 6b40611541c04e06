/**
 * Files through which the driver and a per-instance shim talk. Each lives in
 * the instance's state directory; the shim writes them atomically
 * (tmp + rename) so a reader never sees half a file, and they outlive both
 * processes, which is what lets a restarted control plane learn what happened
 * while it was down.
 */
import { openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';

/** Written by the driver before launching the shim. */
export interface LaunchFile {
  /** Full argv run by the shim (already wrapped with nsenter / cgroup join when privileged). */
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  logDir: string;
  /** Rotate a stream's log file when it reaches this size. */
  logMaxBytes: number;
  /** Number of files kept per stream, current one included. */
  logFiles: number;
  /**
   * Set when argv runs bwrap (sandbox/sandbox.ts): the shim opens the seccomp program
   * as fd 3 and a pipe as fd 4 (bwrap's --info-fd), records the sandboxed program's
   * host pid (not bwrap's) in child.json, and turns bwrap's exit code 128+N back into
   * signal N.
   */
  sandbox?: { seccompFile: string };
}

/** Written by the shim once the child runs. */
export interface ChildFile {
  pid: number;
  startTime: number;
  at: string;
}

/** Written by the shim when the child is gone (or could not start). */
export interface ExitFile {
  code: number | null;
  signal: string | null;
  at: string;
  /** Set when the child could not be spawned at all (e.g. ENOENT). */
  spawnError?: string;
}

/** Rewritten by the shim every few seconds and at exit. */
export interface ShimStatusFile {
  droppedLogLines: number;
  lastLogError?: string;
  at: string;
}

export const FILES = {
  launch: 'launch.json',
  /** The shim's own identity (pid + start time), written first thing. */
  shim: 'shim.json',
  child: 'child.json',
  exit: 'exit.json',
  status: 'shim-status.json',
  shimLog: 'shim.log',
} as const;

export function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  // 0600: launch.json holds the instance's env (its secrets), and none of these is anyone else's business.
  writeFileSync(tmp, JSON.stringify(value), { mode: 0o600 });
  renameSync(tmp, file);
}

export function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

/** Bytes reserved for the status and exit files; plenty for their JSON. */
export const RESERVED_BYTES = 1024;

/**
 * Pre-allocate a file so it can be rewritten in place later even when the
 * disk is full: the shim must still report dropped log lines and the exit.
 * Returns the fd, or undefined when even the reservation fails.
 */
export function reserveFile(file: string): number | undefined {
  try {
    const fd = openSync(file, 'w', 0o600);
    writeSync(fd, ' '.repeat(RESERVED_BYTES - 1) + '\n', 0);
    return fd;
  } catch {
    return undefined;
  }
}

/** Overwrite a reserved file in place (whitespace padding keeps it valid JSON). */
export function writeReserved(fd: number, value: unknown): void {
  const json = JSON.stringify(value);
  if (json.length >= RESERVED_BYTES) throw new Error('value too large for reserved file');
  writeSync(fd, json.padEnd(RESERVED_BYTES - 1, ' ') + '\n', 0);
}
