/**
 * The control plane runs with SERVER_NODE_FLAGS (src/cli/node-flags.ts says
 * why): started through bin/bulwark, the launcher users run, its Node process
 * has them and says nothing; started without them it says what is missing.
 * `npm start` (the demo) passes them in package.json.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { missingServerNodeFlags, SERVER_NODE_FLAGS } from '../../src/cli/node-flags.ts';
import { REPO_ROOT, startControlPlane, type ControlPlaneProcess } from '../support/control-plane-process.ts';

const started: ControlPlaneProcess[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const cp of started) await cp.stop();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const NOTE = /note: Node runs without --min-semi-space-size=16/;

async function start(opts: { launcher: 'bin' } | { nodeFlags: string[] }): Promise<ControlPlaneProcess> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-flags-'));
  dirs.push(dataDir);
  const cp = await startControlPlane({ dataDir, unprivileged: true, ...opts });
  started.push(cp);
  return cp;
}

describe('control plane Node flags', () => {
  it('bin/bulwark server runs Node with SERVER_NODE_FLAGS; without them the server says so', async () => {
    const [viaBin, bare] = await Promise.all([start({ launcher: 'bin' }), start({ nodeFlags: [] })]);
    const argv = fs.readFileSync(`/proc/${viaBin.pid}/cmdline`, 'utf8').split('\0');
    expect(missingServerNodeFlags(argv)).toEqual([]);
    expect(argv).toContain('server');
    expect(viaBin.output()).not.toMatch(NOTE);
    expect(missingServerNodeFlags(fs.readFileSync(`/proc/${bare.pid}/cmdline`, 'utf8').split('\0'))).toEqual([
      ...SERVER_NODE_FLAGS,
    ]);
    expect(bare.output()).toMatch(NOTE);
  }, 120_000);

  it('npm start passes the same flags to the demo', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    const words = pkg.scripts.start!.split(/\s+/);
    expect(missingServerNodeFlags(words)).toEqual([]);
  });
});
