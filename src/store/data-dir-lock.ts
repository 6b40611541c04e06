/**
 * One process per PGlite data directory: PGlite has no postmaster.pid of its
 * own, and two processes writing one directory would corrupt it. The lock is
 * a sibling file `<dataDir>.lock` holding the owner's pid and, on Linux, its
 * start time (so a recycled pid is not mistaken for the owner). A lock whose
 * owner is gone is taken over. An owner that is dying (a SIGKILL pending or
 * being acted on, or a zombie waiting to be reaped) runs no more code of its
 * own: a zombie's lock is taken at once, a dying owner is waited for briefly.
 * That is what an immediate restart after `kill -9` meets: the kill returns
 * before the kernel has torn down a big heap, and `kill(pid, 0)` still
 * succeeds for a zombie until its parent reaps it.
 */
import fs from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface DataDirLock {
  readonly path: string;
  release(): Promise<void>;
}

export interface LockOptions {
  /** How long to wait for an owner that is dying (SIGKILLed, exiting) to be gone. @default 10000 */
  dyingWaitMs?: number;
}

/** The kernel's PF_EXITING task flag (include/linux/sched.h): the task is in do_exit. */
const PF_EXITING = 0x4;
const SIGKILL_BIT = 1n << 8n; // signal 9, bit 8 of the pending masks

type OwnerState = 'gone' | 'zombie' | 'dying' | 'alive';

interface ProcStat {
  state: string;
  flags: number;
  startTime: string;
}

function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0] ?? '', flags: Number(rest[6] ?? 0), startTime: rest[19] ?? '' };
}

function sigkillPending(pid: number): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    for (const key of ['SigPnd', 'ShdPnd']) {
      const hex = new RegExp(`^${key}:\\s*([0-9a-f]+)`, 'm').exec(status)?.[1];
      if (hex && (BigInt(`0x${hex}`) & SIGKILL_BIT) !== 0n) return true;
    }
  } catch {
    // gone meanwhile
  }
  return false;
}

function signalAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function ownerState(pid: number, startTime: string | undefined): OwnerState {
  if (process.platform !== 'linux') return signalAlive(pid) ? 'alive' : 'gone';
  const st = procStat(pid);
  if (!st) return signalAlive(pid) ? 'alive' : 'gone';
  if (startTime && st.startTime !== startTime) return 'gone'; // the pid was recycled
  if (st.state === 'Z' || st.state === 'X' || st.state === 'x') return 'zombie';
  if ((st.flags & PF_EXITING) !== 0 || sigkillPending(pid)) return 'dying';
  return 'alive';
}

function ownStartTime(): string {
  return process.platform === 'linux' ? (procStat(process.pid)?.startTime ?? '') : '';
}

export async function lockDataDir(dataDir: string, opts: LockOptions = {}): Promise<DataDirLock> {
  const lockPath = `${dataDir}.lock`;
  const dyingWaitMs = opts.dyingWaitMs ?? 10_000;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await fs.writeFile(lockPath, `${process.pid} ${ownStartTime()}\n`.replace(' \n', '\n'), { flag: 'wx' });
      let released = false;
      return {
        path: lockPath,
        release: async () => {
          if (released) return;
          released = true;
          await fs.rm(lockPath, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new Error(`cannot create the lock file ${lockPath}: ${(err as Error).message}`, { cause: err });
      }
    }
    const [pidText, startTime] = (await fs.readFile(lockPath, 'utf8').catch(() => '')).trim().split(/\s+/);
    const owner = Number(pidText);
    if (Number.isInteger(owner) && owner > 0) {
      if (owner === process.pid) {
        throw new Error(
          `the data directory ${dataDir} is in use by this process (opened twice); close the first store`,
        );
      }
      let state = ownerState(owner, startTime);
      const deadline = performance.now() + dyingWaitMs;
      while (state === 'dying' && performance.now() < deadline) {
        await sleep(50);
        state = ownerState(owner, startTime);
      }
      if (state === 'alive' || state === 'dying') {
        const what =
          state === 'dying'
            ? `process ${owner}, which is exiting but still not gone after ${dyingWaitMs} ms`
            : `process ${owner}`;
        throw new Error(
          `the data directory ${dataDir} is in use by ${what}; stop that control plane or choose another dataDir ` +
            `(remove ${lockPath} only if no such process is running)`,
        );
      }
    }
    // The owner is gone (crashed or killed), a zombie, or the file is unreadable: take the lock over.
    await fs.rm(lockPath, { force: true });
  }
  throw new Error(`cannot take the lock ${lockPath}: another process keeps re-creating it`);
}
