/**
 * Build the console (web/dist) only when its sources are newer than the last
 * build, so `npm start` and `npm test` always serve the current console without
 * paying for a rebuild every time. `--force` rebuilds regardless.
 * Run with the pinned Node: `node web/build-if-stale.ts`.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const WEB = import.meta.dirname;
const ROOT = path.resolve(WEB, '..');
const STAMP = path.join(WEB, 'dist', '.build-stamp');

function newestMtimeMs(p: string): number {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const name of fs.readdirSync(p)) newest = Math.max(newest, newestMtimeMs(path.join(p, name)));
  return newest;
}

export function consoleIsStale(): boolean {
  const built = newestMtimeMs(STAMP);
  if (built === 0 || !fs.existsSync(path.join(WEB, 'dist', 'index.html'))) return true;
  const inputs = ['src', 'index.html', 'vite.config.ts'].map((p) => path.join(WEB, p));
  inputs.push(path.join(ROOT, 'package-lock.json'));
  return inputs.some((p) => newestMtimeMs(p) > built);
}

export function buildConsole(): void {
  const t0 = Date.now();
  execFileSync(
    path.join(ROOT, 'node_modules/.bin/vite'),
    ['build', '--config', path.join(WEB, 'vite.config.ts')],
    {
      cwd: ROOT,
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
  fs.writeFileSync(STAMP, new Date().toISOString() + '\n');
  process.stderr.write(`console: built web/dist in ${Date.now() - t0} ms\n`);
}

/** Build when stale; returns whether a build ran. */
export function ensureConsoleBuilt(force = false): boolean {
  if (!force && !consoleIsStale()) return false;
  buildConsole();
  return true;
}

if (import.meta.filename === process.argv[1]) {
  if (!ensureConsoleBuilt(process.argv.includes('--force'))) {
    process.stderr.write('console: web/dist is up to date\n');
  }
}
