/**
 * Whether an instance's own uid can reach its program inside the sandbox.
 * The sandbox binds the program's directories at the same paths, but a bind
 * keeps the host's owners and modes: an app written to a `mkdtemp` directory
 * (0700, root) is invisible to uid 3000001, and node would only say "Cannot
 * find module". The driver checks first and names the path and the fix.
 */
import { constants, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { isInside } from './paths.ts';

export type Want = 'read' | 'exec' | 'search';

/** Mode bits that grant `want` to uid/gid on a file with these stats (no capabilities inside). */
export function allows(
  st: Pick<Stats, 'uid' | 'gid' | 'mode'>,
  uid: number,
  gid: number,
  want: Want,
): boolean {
  const bit = want === 'read' ? constants.S_IROTH : constants.S_IXOTH;
  const shift = st.uid === uid ? 6 : st.gid === gid ? 3 : 0;
  return (st.mode & (bit << shift)) !== 0;
}

/**
 * The first path from `root` (a directory bound into the sandbox) down to
 * `target` that uid/gid cannot use, with what it lacks; undefined when all can.
 * Directories above `root` are made traversable by the sandbox itself.
 */
export function firstDenied(
  target: string,
  root: string,
  uid: number,
  gid: number,
  want: Want,
  stat: (p: string) => Pick<Stats, 'uid' | 'gid' | 'mode'> = statSync,
): { path: string; want: Want; mode: string; owner: string } | undefined {
  if (!isInside(target, root)) return undefined;
  const chain: string[] = [];
  for (let p = target; ; p = path.dirname(p)) {
    chain.unshift(p);
    if (p === root || p === path.dirname(p)) break;
  }
  for (const [i, p] of chain.entries()) {
    const need: Want = i === chain.length - 1 ? want : 'search';
    let st;
    try {
      st = stat(p);
    } catch {
      return undefined; // missing: the program's own error says so
    }
    if (!allows(st, uid, gid, need)) {
      return {
        path: p,
        want: need,
        mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
        owner: `${st.uid}:${st.gid}`,
      };
    }
  }
  return undefined;
}
