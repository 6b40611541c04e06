/**
 * Vitest global setup: gives the run a temporary root of its own and fails
 * the run when the tests leave something running (see leftovers.ts).
 *
 * TMPDIR points into the root for the whole run, so the tests' data dirs
 * (`os.tmpdir()`) and every process they start are traceable to it; so does
 * XDG_CONFIG_HOME (the CLI's user config). The
 * check itself runs in the summary reporter, before its closing line, so
 * that line stays the last one; the teardown here runs it only when that
 * reporter is not in use, then removes the root.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  findLeftovers,
  runnerPids,
  ScopeWatcher,
  takeSnapshot,
  type Leftover,
  type Snapshot,
} from './leftovers.ts';

export interface RunState {
  root: string;
  before: Snapshot;
  watcher: ScopeWatcher;
  /** What the summary reporter found, once it ran the check (it reports them itself). */
  reported?: Leftover[];
}

const KEY = Symbol.for('bulwark.test-run');

/** The run's state, shared by the global setup and the reporter (same process, separately loaded modules). */
export function runState(): RunState | undefined {
  return (globalThis as Record<symbol, RunState | undefined>)[KEY];
}

/** Waits a little for what is still exiting, then lists what remains. */
export async function checkLeftovers(st: RunState, graceMs = 5000): Promise<Leftover[]> {
  st.watcher.stop();
  const find = () =>
    findLeftovers({ root: st.root, before: st.before, scopes: st.watcher.scopes, exclude: runnerPids() });
  let found = find();
  for (const until = Date.now() + graceMs; found.length > 0 && Date.now() < until; found = find())
    await new Promise((r) => setTimeout(r, 250));
  return found;
}

export function formatLeftovers(found: readonly Leftover[]): string {
  return [
    `leftover check: the tests left ${found.length} thing(s) running (a test must stop what it starts):`,
    ...found.map((f) => `leftover: ${f.kind} ${f.what}`),
  ].join('\n');
}

export default function setup(): () => Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bwt-'));
  // mkdtemp makes it 0700; instances that run as another user must still reach their dirs below it.
  fs.chmodSync(root, 0o755);
  const st: RunState = { root, before: takeSnapshot(), watcher: new ScopeWatcher(root) };
  (globalThis as Record<symbol, RunState | undefined>)[KEY] = st;
  process.env.TMPDIR = root;
  // The CLI's user config (and what npm start records there) is the run's own: a developer's
  // ~/.config/bulwark must neither steer the tests nor be written by them.
  process.env.XDG_CONFIG_HOME = path.join(root, 'xdg-config');
  process.env.BULWARK_TEST_RUN_ROOT = root;
  return async () => {
    const found = st.reported ?? (await checkLeftovers(st));
    fs.rmSync(root, { recursive: true, force: true });
    if (found.length > 0) process.exitCode = 1;
    if (found.length > 0 && !st.reported) throw new Error(formatLeftovers(found));
  };
}
