/**
 * The leftover check finds what a run left, and only that: a real process
 * started with the run root in its environment, a real network namespace and
 * cgroup named with the scope of a state dir under the root (as root), and
 * nothing once they are gone. Everything here uses a root of its own, so the
 * run's real check is not involved.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../src/util/time.ts';
import { findLeftovers, runnerPids, ScopeWatcher, scopeOf, takeSnapshot } from './leftovers.ts';

const isRoot = process.getuid?.() === 0;
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function newRoot(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bwt-self-'));
  cleanups.push(() => fs.rmSync(root, { recursive: true, force: true }));
  return root;
}

function sleeper(env: Record<string, string>): ChildProcess {
  const c = spawn('sleep', ['60'], { env: { ...process.env, ...env }, stdio: 'ignore' });
  cleanups.push(() => c.kill('SIGKILL'));
  return c;
}

describe('the leftover check', () => {
  it('names the scope the local driver derives from a state dir (sha256 of the path, 6 hex)', () => {
    expect(scopeOf('/tmp/x/sites/local/instances')).toMatch(/^[0-9a-f]{6}$/);
    expect(scopeOf('/tmp/x/sites/local/instances')).toBe(scopeOf('/tmp/x/sites/local/../local/instances'));
    expect(scopeOf('/tmp/x/sites/local/instances')).not.toBe(scopeOf('/tmp/y/sites/local/instances'));
  });

  it("reports a process carrying the run's root, not one that does not, and nothing once it exited", async () => {
    const root = newRoot();
    const before = takeSnapshot();
    const ours = sleeper({ TMPDIR: root });
    const other = sleeper({ TMPDIR: '/tmp' });
    const find = () => findLeftovers({ root, before, scopes: new Map(), exclude: runnerPids() });
    const found = await waitFor('the process seen', () => {
      const f = find();
      return f.length > 0 ? f : undefined;
    });
    expect(found).toEqual([{ kind: 'process', what: `pid ${ours.pid}: sleep 60` }]);
    expect(found.some((f) => f.what.includes(`pid ${other.pid}:`))).toBe(false);
    const exited = new Promise((r) => ours.once('exit', r));
    ours.kill('SIGKILL');
    await exited;
    expect(find()).toEqual([]);
  });

  it("reports a network namespace and cgroup named with a state dir's scope, even after the dir is gone (root)", async (ctx) => {
    if (!isRoot) ctx.skip('needs root: creates a network namespace and a cgroup');
    const root = newRoot();
    const before = takeSnapshot();
    const watcher = new ScopeWatcher(root, 50);
    cleanups.push(() => watcher.stop());
    const stateDir = path.join(root, 'data', 'sites', 'local', 'instances');
    fs.mkdirSync(stateDir, { recursive: true });
    const scope = scopeOf(stateDir);
    await waitFor('the scope collected', () => watcher.scopes.has(scope));
    fs.rmSync(path.join(root, 'data'), { recursive: true });

    const ns = `bw${scope}-leftover-self-test`;
    execFileSync('ip', ['netns', 'add', ns]);
    cleanups.push(() => execFileSync('ip', ['netns', 'del', ns]));
    const cg = `/sys/fs/cgroup/memory/bulwark-selftest/${scope}`;
    const hasMemoryCgroup = fs.existsSync('/sys/fs/cgroup/memory/cgroup.procs');
    if (hasMemoryCgroup) {
      fs.mkdirSync(cg, { recursive: true });
      cleanups.push(() => {
        fs.rmdirSync(cg);
        fs.rmdirSync(path.dirname(cg));
      });
    }
    const found = findLeftovers({ root, before, scopes: watcher.scopes, exclude: runnerPids() });
    expect(found).toContainEqual({ kind: 'netns', what: `${ns} (empty) (scope of ${stateDir})` });
    if (hasMemoryCgroup)
      expect(found).toContainEqual({ kind: 'cgroup', what: `${cg} (scope of ${stateDir})` });
    // The same names under a scope the run never had are someone else's.
    const unrelated = findLeftovers({
      root,
      before,
      scopes: new Map([['000000', '/elsewhere']]),
      exclude: runnerPids(),
    });
    expect(unrelated.filter((f) => f.kind === 'netns' || f.kind === 'cgroup')).toEqual([]);
  });
});
