/**
 * The data plane's work directory holds the HAProxy admin socket (which can
 * drive the gateway), the master socket, the request-log socket (whose
 * records isolation acts on) and haproxy.cfg (which carries the log key).
 * None of it may be reachable by an instance or another local user, so the
 * directory is made private before anything is put in it:
 *
 * - the directory itself: a real directory (not a symlink), owned by this
 *   process's user, mode 0700 (set when it is not);
 * - every parent up to `/`: owned by root or by this user, and not writable
 *   by group or others unless sticky (like /tmp). A parent another user can
 *   write lets that user rename the work directory away and put their own
 *   (with their own sockets) in its place, which no mode of ours prevents;
 *   the same rule as OpenSSH's StrictModes.
 *
 * Whether an instance can see the path at all is the sandbox's job (it does
 * not mount the data directory); this makes the modes right for the cases
 * where it can, e.g. an instance running as another user without a sandbox.
 */
import { chmodSync, lstatSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';

export const PRIVATE_DIR_MODE = 0o700;

/** Create `dir` (and missing parents) private to this user, or refuse a directory others control. */
export function ensurePrivateDir(dir: string): void {
  const abs = path.resolve(dir);
  const uid = process.geteuid?.() ?? 0;
  // Parents created here get 0700 too; existing ones keep their mode and are checked below.
  mkdirSync(abs, { recursive: true, mode: PRIVATE_DIR_MODE });
  const st = lstatSync(abs);
  if (!st.isDirectory())
    throw new Error(
      `work directory '${abs}' is not a directory (a symlink?): the data plane's sockets need a real directory it owns`,
    );
  if (st.uid !== uid)
    throw new Error(
      `work directory '${abs}' is owned by uid ${st.uid}, not by this process (uid ${uid}): another user could reach the gateway's admin and log sockets; remove it or choose another data directory`,
    );
  if ((st.mode & 0o777) !== PRIVATE_DIR_MODE) chmodSync(abs, PRIVATE_DIR_MODE);
  assertParentsSafe(abs, uid);
}

/** Every ancestor of `abs` is owned by root or `uid` and not writable by others (sticky excepted). */
export function assertParentsSafe(abs: string, uid: number): void {
  for (let p = path.dirname(abs); ; p = path.dirname(p)) {
    // stat, not lstat: a symlinked parent (e.g. /var/run -> /run) is judged by what it points to.
    const st = statSync(p);
    if (st.uid !== 0 && st.uid !== uid)
      throw new Error(
        `'${p}' (a parent of the work directory '${abs}') is owned by uid ${st.uid}: that user could replace the work directory and its sockets; use a data directory whose parents belong to root or to uid ${uid}`,
      );
    const sticky = (st.mode & 0o1000) !== 0;
    if ((st.mode & 0o022) !== 0 && !sticky)
      throw new Error(
        `'${p}' (a parent of the work directory '${abs}') is writable by ${st.mode & 0o002 ? 'every user' : 'its group'} (mode ${(st.mode & 0o7777).toString(8)}): another user could replace the work directory; 'chmod go-w ${p}' or use another data directory`,
      );
    if (p === path.dirname(p)) return;
  }
}
