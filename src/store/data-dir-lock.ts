/**
 * One process per PGlite data directory: PGlite has no postmaster.pid of its
 * own, and two processes writing one directory would corrupt it. The lock is
 * a sibling file `<dataDir>.lock` holding the owner's pid; a lock whose pid
 * is no longer alive (the owner crashed) is taken over.
 */
import fs from 'node:fs/promises';

export interface DataDirLock {
  readonly path: string;
  release(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const lockPath = `${dataDir}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await fs.writeFile(lockPath, `${process.pid}\n`, { flag: 'wx' });
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
    const owner = Number((await fs.readFile(lockPath, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(owner) && owner > 0 && alive(owner)) {
      const who = owner === process.pid ? 'this process (opened twice)' : `process ${owner}`;
      throw new Error(
        `the data directory ${dataDir} is in use by ${who}; stop that control plane or choose another dataDir ` +
          `(remove ${lockPath} only if no such process is running)`,
      );
    }
    // The owner is gone (crashed or killed): take the lock over.
    await fs.rm(lockPath, { force: true });
  }
  throw new Error(`cannot take the lock ${lockPath}: another process keeps re-creating it`);
}
