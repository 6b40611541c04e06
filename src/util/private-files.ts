/**
 * Files only this user may read: directories 0700, files 0600, set when they
 * are created (a chmod afterwards leaves a window in which the file is
 * readable by others), and a tightening pass for trees an earlier version
 * wrote with the umask's modes.
 *
 * @example
 *   await mkdirPrivate(dir);
 *   await writeFilePrivate(path.join(dir, 'launch.json'), text);
 *   tightenTree(dataDir, { skip: (p) => p.endsWith('/data') });
 */
import { chmodSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { chmod, lstat, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** `mkdir -p`: every directory it creates is 0700; an existing leaf is tightened to 0700. */
export function mkdirPrivateSync(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const st = lstatSync(dir);
  if (st.isDirectory() && (st.mode & 0o077) !== 0) chmodSync(dir, st.mode & 0o700);
}

/** Async `mkdirPrivateSync`. */
export async function mkdirPrivate(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const st = await lstat(dir);
  if (st.isDirectory() && (st.mode & 0o077) !== 0) await chmod(dir, st.mode & 0o700);
}

/**
 * Write a file created 0600. `writeFile`'s mode applies only when it creates
 * the file, so an existing file (an earlier version's) is tightened too.
 */
export async function writeFilePrivate(file: string, data: string | Uint8Array): Promise<void> {
  await writeFile(file, data, { mode: PRIVATE_FILE_MODE });
  await chmod(file, PRIVATE_FILE_MODE);
}

/**
 * Remove group and other permissions from everything under `root` (and
 * `root` itself): directories end 0700, files 0600 (0700 when executable).
 * Symlinks are neither followed nor changed; `skip(abs)` prunes a path and
 * what is under it (e.g. instances' own data directories, owned by their
 * sandbox uids). A missing `root` is fine. Returns the paths changed.
 */
export function tightenTree(root: string, opts: { skip?: (abs: string) => boolean } = {}): string[] {
  const changed: string[] = [];
  const visit = (p: string): void => {
    if (opts.skip?.(p)) return;
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return; // gone meanwhile, or never there
    }
    if (st.isSymbolicLink()) return;
    if ((st.mode & 0o077) !== 0 && (st.isDirectory() || st.isFile())) {
      chmodSync(p, st.mode & 0o700);
      changed.push(p);
    }
    if (!st.isDirectory()) return;
    for (const name of readdirSync(p)) visit(path.join(p, name));
  };
  visit(path.resolve(root));
  return changed;
}
