/**
 * Sandbox for one LocalDriver test file: temp state dirs and, as root, a bridge,
 * subnet and cgroup parent of its own (so test files and a real control plane
 * never share them), all removed after the file.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
/** The misbehaving test app (see its header). */
export const APP = path.join(here, 'app.ts');
/** A control plane in a child process, for adoption tests. */
export const DRIVER_A = path.join(here, 'driver-a.ts');
export const isRoot = process.getuid?.() === 0;

export interface LocalTestEnv {
  newDir: () => string;
  privilegedOpts: { privileged: true; bridge: string; subnet: string; cgroupParent: string };
  gateway: string;
}

export function localTestEnv(o: {
  bridge: string;
  subnet: string;
  gateway: string;
  cgroupParent: string;
}): LocalTestEnv {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'bulwark-local-'));
  afterAll(() => {
    rmSync(tmp, { recursive: true, force: true });
    if (!isRoot) return;
    try {
      execFileSync('ip', ['link', 'del', o.bridge], { stdio: 'ignore' });
    } catch {
      // never created
    }
    for (const c of ['memory', 'cpu', 'cpuacct']) {
      const parent = `/sys/fs/cgroup/${c}/${o.cgroupParent}`;
      try {
        // Each driver's scope directory (empty once its instances are gone), then the parent.
        for (const scope of readdirSync(parent, { withFileTypes: true }))
          if (scope.isDirectory()) rmdirSync(path.join(parent, scope.name));
        rmdirSync(parent);
      } catch {
        // absent, or (a bug) not empty
      }
    }
  });
  let n = 0;
  return {
    newDir: () => path.join(tmp, `d${n++}`),
    privilegedOpts: { privileged: true, bridge: o.bridge, subnet: o.subnet, cgroupParent: o.cgroupParent },
    gateway: o.gateway,
  };
}
