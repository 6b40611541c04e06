/**
 * Resolve argv[0] the way execvp would, before launching, so a typo in a
 * command is reported as "executable 'x' not found" on the instance instead
 * of as an obscure exit code from deep inside a wrapper.
 */
import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';

/** Absolute path of the executable, or an error message naming it. */
export function resolveExecutable(
  name: string,
  opts: { cwd: string; pathEnv: string | undefined },
): { path: string } | { error: string } {
  const candidates = name.includes('/')
    ? [path.resolve(opts.cwd, name)]
    : (opts.pathEnv ?? '/usr/local/bin:/usr/bin:/bin')
        .split(':')
        .filter(Boolean)
        .map((d) => path.join(path.resolve(opts.cwd, d), name));
  for (const c of candidates) {
    try {
      if (!statSync(c).isFile()) continue;
      accessSync(c, constants.X_OK);
      return { path: c };
    } catch {
      // try the next directory
    }
  }
  const where = name.includes('/') ? `at ${candidates[0]}` : 'on PATH';
  return { error: `executable '${name}' not found ${where} (fix the workload's run.command)` };
}
