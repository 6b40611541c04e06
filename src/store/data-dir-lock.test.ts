import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { lockDataDir } from './data-dir-lock.ts';
import { waitFor } from '../util/time.ts';

const LOCK_MODULE = path.join(import.meta.dirname, 'data-dir-lock.ts');

/** Process state letter from /proc/<pid>/stat ('Z' for a zombie), or undefined when gone. */
function stateOf(pid: number): string | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

describe('data directory lock', () => {
  let dir = '';
  const started: ChildProcess[] = [];
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bulwark-lock-'));
  });
  afterEach(async () => {
    for (const c of started.splice(0)) c.kill('SIGKILL');
    await fs.rm(dir, { recursive: true, force: true });
  });

  /**
   * A lock holder whose parent never reaps it: `sh -c 'node holder & exec sleep'`
   * makes sleep the holder's parent, so a SIGKILLed holder stays a zombie.
   */
  async function holderUnderSleep(dataDir: string): Promise<{ parent: ChildProcess; holderPid: number }> {
    const script = `import { lockDataDir } from ${JSON.stringify(LOCK_MODULE)}; await lockDataDir(${JSON.stringify(dataDir)}); setInterval(() => {}, 1000);`;
    const parent = spawn(
      'sh',
      ['-c', `${JSON.stringify(process.execPath)} --input-type=module -e "$0" & exec sleep 60`, script],
      {
        stdio: 'ignore',
      },
    );
    started.push(parent);
    let holderPid = 0;
    await waitFor(
      'the holder took the lock',
      async () => {
        const text = await fs.readFile(`${dataDir}.lock`, 'utf8').catch(() => '');
        holderPid = Number(text.trim().split(/\s+/)[0]);
        return holderPid > 0;
      },
      { timeoutMs: 20_000, intervalMs: 50 },
    );
    return { parent, holderPid };
  }

  it('refuses a directory a live process holds, naming the pid and the fix', async () => {
    const data = path.join(dir, 'data');
    const { holderPid } = await holderUnderSleep(data);
    await expect(lockDataDir(data, { dyingWaitMs: 200 })).rejects.toThrow(
      new RegExp(`is in use by process ${holderPid}; stop that control plane`),
    );
    process.kill(holderPid, 'SIGKILL');
  });

  it('takes over the lock of a SIGKILLed owner that is still a zombie (not yet reaped)', async () => {
    const data = path.join(dir, 'data');
    const { holderPid } = await holderUnderSleep(data);
    process.kill(holderPid, 'SIGKILL');
    await waitFor('the holder is a zombie', () => Promise.resolve(stateOf(holderPid) === 'Z'), {
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    // kill(pid, 0) still succeeds for the zombie: the old check refused here.
    expect(() => process.kill(holderPid, 0)).not.toThrow();
    const lock = await lockDataDir(data);
    expect(readFileSync(lock.path, 'utf8').split(/\s+/)[0]).toBe(String(process.pid));
    await lock.release();
  });

  it('takes the lock at once after a SIGKILL, without waiting for the kernel to finish the exit', async () => {
    const data = path.join(dir, 'data');
    const { holderPid } = await holderUnderSleep(data);
    process.kill(holderPid, 'SIGKILL');
    const lock = await lockDataDir(data);
    expect(['Z', undefined]).toContain(stateOf(holderPid));
    await lock.release();
  });

  it('treats a lock whose pid was recycled (another start time) as stale', async () => {
    const data = path.join(dir, 'data');
    // pid 1 is alive, but it did not start at clock tick 1.
    await fs.writeFile(`${data}.lock`, '1 1\n');
    const lock = await lockDataDir(data);
    await lock.release();
    await expect(fs.stat(`${data}.lock`)).rejects.toThrow(/ENOENT/);
  });

  it('refuses a second lock from the same process', async () => {
    const data = path.join(dir, 'data');
    const lock = await lockDataDir(data);
    await expect(lockDataDir(data)).rejects.toThrow(/in use by this process \(opened twice\)/);
    await lock.release();
  });
});
