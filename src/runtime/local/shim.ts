/**
 * Per-instance shim (like conmon / containerd-shim): `node shim.ts <dir>`.
 *
 * The driver launches one detached shim per instance run. The shim owns the
 * child process, so the instance keeps running and keeps logging when the
 * control plane dies or restarts. It:
 *  - spawns the child from `<dir>/launch.json` in its own process group,
 *  - records the child's pid and start time in `child.json`,
 *  - writes stdout/stderr to rotating log files (dropping and counting lines
 *    when the disk is full instead of blocking or crashing the child),
 *  - records the exit code/signal in `exit.json`, kills stragglers left in
 *    the child's process group, and exits.
 * The shim ignores SIGTERM/SIGINT/SIGHUP: only the driver ends it (SIGKILL),
 * and only when cleaning up an instance whose child it already handled.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, renameSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { RotatingLog } from './log-writer.ts';
import { processStartTime } from './proc.ts';
import {
  FILES,
  readJson,
  reserveFile,
  writeJsonAtomic,
  writeReserved,
  type ChildFile,
  type ExitFile,
  type LaunchFile,
  type ShimStatusFile,
} from './shim-protocol.ts';

/** How long to wait for the child's pipes to drain after it exits (a grandchild may hold them open). */
const DRAIN_MS = 500;
const STATUS_EVERY_MS = 2_000;

function main(): void {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: shim.ts <instance-dir>');
    process.exit(2);
  }
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGPIPE'] as const) process.on(sig, () => {});
  writeJsonAtomic(path.join(dir, FILES.shim), {
    pid: process.pid,
    startTime: processStartTime(process.pid) ?? 0,
    at: new Date().toISOString(),
  } satisfies ChildFile);
  const launch = readJson<LaunchFile>(path.join(dir, FILES.launch));
  if (!launch || !Array.isArray(launch.argv) || launch.argv.length === 0) {
    writeJsonAtomic(path.join(dir, FILES.exit), {
      code: null,
      signal: null,
      at: new Date().toISOString(),
      spawnError: `launch file ${FILES.launch} missing or invalid`,
    } satisfies ExitFile);
    process.exit(2);
  }
  const logs = {
    stdout: new RotatingLog({
      dir: launch.logDir,
      stream: 'stdout',
      maxBytes: launch.logMaxBytes,
      files: launch.logFiles,
    }),
    stderr: new RotatingLog({
      dir: launch.logDir,
      stream: 'stderr',
      maxBytes: launch.logMaxBytes,
      files: launch.logFiles,
    }),
  };
  // Reserved up front so both can still be written once the log disk is full.
  const statusFd = reserveFile(path.join(dir, FILES.status));
  const exitReserve = path.join(dir, `.${FILES.exit}.reserved`);
  const exitFd = reserveFile(exitReserve);
  let lastDropped = -1;
  const writeStatus = (): void => {
    const dropped = logs.stdout.droppedLines + logs.stderr.droppedLines;
    if (dropped === lastDropped) return;
    const status: ShimStatusFile = { droppedLogLines: dropped, at: new Date().toISOString() };
    const lastLogError = logs.stderr.lastError ?? logs.stdout.lastError;
    if (lastLogError) status.lastLogError = lastLogError;
    try {
      if (statusFd !== undefined) writeReserved(statusFd, status);
      else writeJsonAtomic(path.join(dir, FILES.status), status);
      lastDropped = dropped;
    } catch {
      // the disk is full: the count stays in memory and is retried later
    }
  };
  const statusTimer = setInterval(writeStatus, STATUS_EVERY_MS);

  const [file, ...args] = launch.argv as [string, ...string[]];
  const sandbox = launch.sandbox ? openSandboxFds(launch.sandbox) : undefined;
  const child = spawn(file, args, {
    cwd: launch.cwd,
    env: launch.env,
    // fd 3: the seccomp program bwrap loads; fd 4: bwrap's info pipe (its init's host pid).
    stdio: sandbox ? ['ignore', 'pipe', 'pipe', sandbox.seccompFd, 'pipe'] : ['ignore', 'pipe', 'pipe'],
    detached: true, // own process group: the driver signals the whole group
  });
  if (sandbox) closeSync(sandbox.seccompFd);
  // Both are pipes (stdio above); the stdio array's type loses that.
  const out = child.stdout!;
  const err = child.stderr!;
  out.setEncoding('utf8');
  err.setEncoding('utf8');
  out.on('data', (s: string) => logs.stdout.write(s));
  err.on('data', (s: string) => logs.stderr.write(s));

  let finished = false;
  const finish = (exit: ExitFile): void => {
    if (finished) return;
    finished = true;
    clearInterval(statusTimer);
    logs.stdout.close();
    logs.stderr.close();
    lastDropped = -1;
    writeStatus();
    if (exitFd !== undefined) {
      try {
        writeReserved(exitFd, exit);
        closeSync(exitFd);
        renameSync(exitReserve, path.join(dir, FILES.exit));
        process.exit(0);
      } catch (err) {
        console.error(`shim: cannot use the reserved exit file: ${String(err)}`);
      }
    }
    // Retry the exit record: it is the one file the driver cannot do without.
    for (let i = 0; i < 50; i++) {
      try {
        writeJsonAtomic(path.join(dir, FILES.exit), exit);
        break;
      } catch (err) {
        console.error(`shim: cannot write ${FILES.exit}: ${String(err)}`);
        const until = Date.now() + 100;
        while (Date.now() < until) {
          // busy wait: nothing else to do, and this path is rare
        }
      }
    }
    process.exit(0);
  };

  const recordChild = (pid: number): void => {
    const rec: ChildFile = { pid, startTime: processStartTime(pid) ?? 0, at: new Date().toISOString() };
    writeJsonAtomic(path.join(dir, FILES.child), rec);
  };
  child.on('spawn', () => {
    // Sandboxed, the program is bwrap's grandchild (bwrap -> init, pid 1 inside -> program):
    // probes, evidence and signals act on the program's host pid, found from bwrap's report.
    if (!sandbox) recordChild(child.pid as number);
    else void sandboxedPid(child.stdio[4] as Readable).then((pid) => pid !== undefined && recordChild(pid));
  });
  child.on('error', (err: NodeJS.ErrnoException) => {
    if (child.pid !== undefined) return; // errors after spawn (e.g. kill) are not start failures
    finish({
      code: null,
      signal: null,
      at: new Date().toISOString(),
      spawnError: `${err.code ?? 'error'}: ${err.message}`,
    });
  });
  child.on('exit', (rawCode, rawSignal) => {
    const at = new Date().toISOString();
    // bwrap's init exits with 128+N when the program died of signal N.
    const { code, signal } = sandbox
      ? fromSandboxExit(rawCode, rawSignal)
      : { code: rawCode, signal: rawSignal };
    // Like a container whose pid 1 exits: whatever the child left behind goes too.
    try {
      process.kill(-(child.pid as number), 'SIGKILL');
    } catch {
      // group already empty
    }
    const done = (): void => finish({ code, signal, at });
    child.on('close', done);
    setTimeout(done, DRAIN_MS).unref();
  });
}

function openSandboxFds(sb: { seccompFile: string }): { seccompFd: number } {
  return { seccompFd: openSync(sb.seccompFile, 'r') };
}

/**
 * The sandboxed program's host pid: bwrap writes `{"child-pid": N}` (its init, pid 1
 * inside) on the info fd once the namespaces exist; the init then forks the program,
 * its only child.
 */
async function sandboxedPid(info: Readable): Promise<number | undefined> {
  let text = '';
  info.setEncoding('utf8');
  for await (const chunk of info) text += chunk as string;
  let init: number | undefined;
  try {
    init = (JSON.parse(text) as { 'child-pid'?: number })['child-pid'];
  } catch {
    return undefined; // bwrap failed before reporting: its exit says why
  }
  if (init === undefined) return undefined;
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    try {
      const kids = readFileSync(`/proc/${init}/task/${init}/children`, 'utf8').trim();
      if (kids) return Number(kids.split(' ')[0]);
    } catch {
      return undefined; // the init is gone: so is the program
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  return undefined;
}

export function fromSandboxExit(
  code: number | null,
  signal: NodeJS.Signals | null,
): { code: number | null; signal: string | null } {
  if (code !== null && code > 128 && code < 128 + 65) {
    const name = Object.entries(osConstants.signals).find(([, n]) => n === code - 128)?.[0];
    if (name) return { code: null, signal: name };
  }
  return { code, signal };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
