/**
 * One control-plane process of a test cluster (etcd, kube-apiserver, ...):
 * started in its own process group with a parent-death signal, its output
 * appended to a log file and the last lines kept for error messages, and
 * stopped by signalling the whole group. The parent-death signal (setpriv
 * --pdeathsig) is what guarantees no orphans when the test process is
 * SIGKILLed and no 'exit' handler gets to run.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { sleep } from '../../../src/util/time.ts';

const TAIL_BYTES = 6000;

/** Every live process group this test process started, killed on exit as a second line of defence. */
const live = new Set<number>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const pgid of live) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly logPath: string;
  /** Exit code/signal once it exited, else undefined. */
  exited(): { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** The last few KB of its output, for error messages. */
  tail(): string;
  signal(sig: NodeJS.Signals): void;
  /** SIGTERM the group, SIGKILL after `graceMs`; resolves once the process exited. */
  stop(graceMs?: number): Promise<void>;
}

export function startProcess(name: string, bin: string, args: string[], logPath: string): ManagedProcess {
  installExitHook();
  const log = fs.openSync(logPath, 'a');
  let tail = '';
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  // setpriv execs the binary directly, so the pid we hold is the component's own.
  const child: ChildProcess = spawn('setpriv', ['--pdeathsig', 'KILL', '--', bin, ...args], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined) {
    fs.closeSync(log);
    throw new Error(`could not spawn ${name} (${bin})`);
  }
  live.add(pid);
  const onData = (b: Buffer): void => {
    fs.writeSync(log, b);
    tail = (tail + b.toString()).slice(-TAIL_BYTES);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exitedP = new Promise<void>((resolve) => {
    child.once('close', (code, signal) => {
      exit = { code, signal };
      live.delete(pid);
      fs.closeSync(log);
      resolve();
    });
  });
  child.once('error', (err) => {
    tail += `\nspawn error: ${err.message}`;
  });

  const signalGroup = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-pid, sig);
    } catch {
      // the group is gone already
    }
  };
  return {
    name,
    pid,
    logPath,
    exited: () => exit,
    tail: () => tail,
    signal: signalGroup,
    async stop(graceMs = 5000): Promise<void> {
      if (exit) return;
      signalGroup('SIGCONT'); // a paused process cannot act on SIGTERM
      signalGroup('SIGTERM');
      const killed = await Promise.race([exitedP.then(() => false), sleep(graceMs).then(() => true)]);
      if (killed) {
        signalGroup('SIGKILL');
        await exitedP;
      }
    },
  };
}

/** A readable failure: what we waited for, and the tail of the process that should have provided it. */
export function describeFailure(what: string, proc: ManagedProcess, cause: unknown): Error {
  const ex = proc.exited();
  const state = ex ? `exited (code ${ex.code}, signal ${ex.signal})` : 'still running';
  return new Error(
    `${what}: ${cause instanceof Error ? cause.message : String(cause)}\n` +
      `${proc.name} (pid ${proc.pid}) is ${state}; log ${proc.logPath}; last output:\n${proc.tail()}`,
  );
}
