/**
 * Starts one run of an instance: writes the launch file and spawns a
 * detached shim (see shim.ts), then waits briefly for the shim to report the
 * child's pid (or an immediate start failure).
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from '../../util/time.ts';
import { identify, isAlive, type ProcIdentity } from './proc.ts';
import {
  FILES,
  readJson,
  writeJsonAtomic,
  type ChildFile,
  type ExitFile,
  type LaunchFile,
} from './shim-protocol.ts';

const SHIM_PATH = path.join(path.dirname(fileURLToPath(import.meta.url)), 'shim.ts');

export interface LaunchRequest {
  dir: string;
  /** Resolved executable and its arguments. */
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  /** Run inside this network namespace (path under /run/netns). */
  netnsPath?: string;
  /** cgroup.procs files the child joins before exec. */
  cgroupProcs?: string[];
  /** CPUs the child runs on (`taskset`); unset: the shim's own affinity. */
  cpus?: readonly number[];
  /** Sandbox wrapper (setpriv + bwrap ... `--`), run after the netns and cgroups are joined. */
  sandbox?: { prefix: string[]; seccompFile: string };
  logMaxBytes: number;
  logFiles: number;
  /** How long to wait for the shim to report the child. */
  waitMs: number;
}

export interface LaunchResult {
  shim: ProcIdentity | undefined;
  child?: ProcIdentity;
  /** Set when the child already exited (or never started) within the wait. */
  exit?: ExitFile;
}

const shQuote = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * Wrap argv so the process enters its netns and cgroups, and takes its CPUs,
 * before the real program runs (each wrapper execs the next: same pid throughout).
 */
export function wrapArgv(
  argv: string[],
  netnsPath?: string,
  cgroupProcs: string[] = [],
  cpus?: readonly number[],
  sandboxPrefix: string[] = [],
): string[] {
  // Innermost: joining the netns and cgroups needs root, which the sandbox gives up.
  let out = [...sandboxPrefix, ...argv];
  if (cgroupProcs.length > 0) {
    const join = cgroupProcs.map((f) => `echo $$ > ${shQuote(f)}`).join(' && ');
    out = ['/bin/sh', '-c', `${join} && exec "$@"`, 'bulwark-join', ...out];
  }
  if (netnsPath) out = ['nsenter', `--net=${netnsPath}`, '--', ...out];
  if (cpus && cpus.length > 0) out = ['taskset', '-c', cpus.join(','), ...out];
  return out;
}

export async function launch(req: LaunchRequest): Promise<LaunchResult> {
  const logDir = path.join(req.dir, 'logs');
  mkdirSync(logDir, { recursive: true, mode: 0o700 });
  rmSync(path.join(req.dir, FILES.child), { force: true });
  rmSync(path.join(req.dir, FILES.exit), { force: true });
  rmSync(path.join(req.dir, FILES.shim), { force: true });
  const lf: LaunchFile = {
    argv: wrapArgv(req.argv, req.netnsPath, req.cgroupProcs, req.cpus, req.sandbox?.prefix),
    cwd: req.cwd,
    env: req.env,
    logDir,
    logMaxBytes: req.logMaxBytes,
    logFiles: req.logFiles,
    ...(req.sandbox ? { sandbox: { seccompFile: req.sandbox.seccompFile } } : {}),
  };
  // It holds the instance's env (secrets): root only.
  writeJsonAtomic(path.join(req.dir, FILES.launch), lf);
  const shimLog = openSync(path.join(req.dir, FILES.shimLog), 'a', 0o600);
  let proc;
  try {
    proc = spawn(process.execPath, [SHIM_PATH, req.dir], {
      detached: true, // own session: the control plane's death or signals to its group do not reach it
      stdio: ['ignore', shimLog, shimLog],
      cwd: req.dir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
  } finally {
    closeSync(shimLog);
  }
  proc.unref();
  proc.on('error', () => {}); // reported through the missing child/exit files below
  const shim = proc.pid !== undefined ? identify(proc.pid) : undefined;
  const deadline = Date.now() + req.waitMs;
  while (Date.now() < deadline) {
    const exit = readJson<ExitFile>(path.join(req.dir, FILES.exit));
    const child = readJson<ChildFile>(path.join(req.dir, FILES.child));
    if (exit)
      return { shim, exit, ...(child ? { child: { pid: child.pid, startTime: child.startTime } } : {}) };
    if (child) return { shim, child: { pid: child.pid, startTime: child.startTime } };
    if (!isAlive(shim)) break;
    await sleep(20);
  }
  return { shim };
}
