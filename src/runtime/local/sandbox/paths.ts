/** Path relations the sandbox's mount plan is made of. */
import { statSync } from 'node:fs';
import path from 'node:path';

export function isInside(p: string, dir: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * The directories the program needs to see: its working directory, its
 * executable's directory, and the directory of each absolute file argument
 * (`node /srv/app/main.ts`). Nested ones are folded into their parent.
 */
export function visibleDirs(cwd: string, exe: string, args: string[]): string[] {
  const dirs = [cwd, path.dirname(exe)];
  for (const a of args) {
    if (!path.isAbsolute(a)) continue;
    try {
      dirs.push(statSync(a).isDirectory() ? a : path.dirname(a));
    } catch {
      // not a file: an ordinary argument
    }
  }
  const sorted = [...new Set(dirs.map((d) => path.resolve(d)))].sort((a, b) => a.length - b.length);
  return sorted.filter((d, i) => !sorted.slice(0, i).some((p) => isInside(d, p)));
}
