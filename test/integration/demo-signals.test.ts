/**
 * `npm start` stops everything it started when its own process (npm's) gets
 * SIGTERM or SIGINT, or is killed outright: the control plane, HAProxy and
 * every instance. Also when the signal comes while it is still starting.
 * The real `npm start` (npm, its shell, the demo) with a one-app manifest.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { manifestOf, workloadNamed } from '../../bench/chaos/workloads.ts';
import { freePort } from '../../src/util/ports.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'bw-demo-signals-'));
const started: ChildProcess[] = [];

afterAll(() => {
  // A failed case must not leave a demo behind for the next test.
  for (const pid of pidsUnder(base)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const c of started) c.kill('SIGKILL');
  fs.rmSync(base, { recursive: true, force: true });
});

/** Every process whose command line names a path under dir (the demo, HAProxy, shims, instances). */
function pidsUnder(dir: string): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(dir)) out.push(Number(e));
    } catch {
      /* exited */
    }
  }
  return out;
}

interface Demo {
  npm: ChildProcess;
  dir: string;
  stderr: () => string;
  stdout: () => string;
  exited: Promise<number | null>;
}

async function startDemo(name: string): Promise<Demo> {
  const dir = path.join(base, name);
  fs.mkdirSync(dir, { recursive: true });
  const manifest = path.join(dir, 'demo.yaml');
  fs.writeFileSync(manifest, manifestOf(workloadNamed('python'), name, path.join(dir, 'w'), 2));
  const [port, gw] = [await freePort(), await freePort()];
  let out = '';
  let err = '';
  const npm = spawn(
    'npm',
    [
      'start',
      '--',
      '--port',
      String(port),
      '--gateway-port',
      String(gw),
      '--data-dir',
      path.join(dir, 'data'),
    ].concat(['--manifest', manifest], process.getuid?.() === 0 ? [] : ['--unprivileged']),
    {
      cwd: ROOT,
      env: { ...process.env, XDG_CONFIG_HOME: path.join(dir, 'xdg') },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  started.push(npm);
  npm.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  npm.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => npm.once('exit', (code) => r(code)));
  return { npm, dir, stderr: () => err, stdout: () => out, exited };
}

async function until(what: string, ms: number, ok: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Everything the demo started is gone within ms. */
async function allGone(d: Demo, ms: number): Promise<void> {
  try {
    await until('every process of the demo to exit', ms, () => pidsUnder(d.dir).length === 0);
  } catch (err) {
    const left = pidsUnder(d.dir).map((p) => {
      try {
        return `${p}: ${fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ').slice(0, 160)}`;
      } catch {
        return `${p}`;
      }
    });
    throw new Error(`${(err as Error).message}; still running:\n${left.join('\n')}\nstderr:\n${d.stderr()}`);
  }
}

describe('npm start stops everything it started', () => {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`on ${sig} to npm's own process once up`, async () => {
      const d = await startDemo(sig.toLowerCase());
      await until('the demo to be up', 120_000, () => d.stdout().includes('Bulwark is up'));
      expect(pidsUnder(d.dir).length).toBeGreaterThan(2);
      d.npm.kill(sig);
      await allGone(d, 30_000);
      await d.exited;
      expect(d.stderr()).toMatch(
        new RegExp(`${sig}: shutting down \\(stopping instances and the gateway\\)`),
      );
    }, 180_000);
  }

  it('on SIGTERM while the control plane is still starting', async () => {
    const d = await startDemo('early');
    await until('the control plane to be starting', 60_000, () =>
      d.stderr().includes('starting the control plane'),
    );
    d.npm.kill('SIGTERM');
    await allGone(d, 60_000);
    expect(d.stderr()).toMatch(
      /SIGTERM: (stopping once the control plane has finished starting|shutting down)/,
    );
  }, 120_000);

  it('when npm itself is killed (SIGKILL): the orphaned demo stops', async () => {
    const d = await startDemo('orphan');
    await until('the demo to be up', 120_000, () => d.stdout().includes('Bulwark is up'));
    d.npm.kill('SIGKILL');
    await allGone(d, 30_000);
  }, 180_000);
});
