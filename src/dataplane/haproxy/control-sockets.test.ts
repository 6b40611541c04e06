/**
 * The gateway's control sockets against a real HAProxy: the admin, master and
 * log sockets live in a private work dir another user cannot enter, and the
 * log receiver refuses request records that do not carry this start's key,
 * whoever manages to connect (a process of the same user, or any local
 * process on the TCP transport).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ServerSpec } from '../dataplane.ts';
import { request, startBackend, type TestBackend } from '../testing/backends.ts';
import { HaproxyDataPlane, type HaproxyDataPlaneOptions } from './haproxy-dataplane.ts';
import { freePort } from '../../util/ports.ts';
import { waitFor } from '../../util/time.ts';

const root = process.getuid?.() === 0;
const NOBODY = 65534;
const workDirs: string[] = [];
const open: { dp: HaproxyDataPlane; backend: TestBackend }[] = [];

afterEach(async () => {
  for (const o of open.splice(0)) {
    await o.dp.close();
    await o.backend.close();
  }
});
afterAll(() => {
  for (const d of workDirs) rmSync(d, { recursive: true, force: true });
});

async function start(
  over: Partial<HaproxyDataPlaneOptions> = {},
): Promise<{ dp: HaproxyDataPlane; workDir: string; seen: string[] }> {
  const parent = mkdtempSync(path.join(os.tmpdir(), 'bw-ctl-'));
  workDirs.push(parent);
  const workDir = path.join(parent, 'haproxy');
  const backend = await startBackend('a');
  const dp = await HaproxyDataPlane.create({
    workDir,
    binds: [{ address: '127.0.0.1', port: await freePort() }],
    ...over,
  });
  open.push({ dp, backend });
  const server: ServerSpec = {
    name: 'a',
    address: '127.0.0.1',
    port: backend.port,
    weight: 100,
    state: 'ready',
  };
  await dp.sync({ backends: [{ name: 's.app.proj', aliases: [], servers: [server] }] });
  const seen: string[] = [];
  dp.onRequest((l) => seen.push(`${l.server} ${l.status} ${l.path}`));
  return { dp, workDir, seen };
}

/** A record as HAProxy would write it, minus the key only HAProxy knows. */
function forged(p: string, key?: string): string {
  const date = '07/Dec/2026:10:00:00.000';
  const tag = key === undefined ? 'bwlog1' : `bwlog1 ${key}`;
  return `${tag} ${date} 127.0.0.1 s.app.proj a GET "${p}" 500 1 1 0 ---- 10 "" "-"\n`;
}

function send(target: string | { port: number }, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = typeof target === 'string' ? net.connect(target) : net.connect(target.port, '127.0.0.1');
    c.once('error', reject);
    c.once('connect', () => c.end(text, () => resolve()));
  });
}

/** Connect to each socket as another user; resolves with the error code per socket. */
function connectAs(uid: number, sockets: string[]): Promise<Record<string, string>> {
  const script = `
    const net = require('node:net');
    const out = {};
    let left = ${sockets.length};
    for (const p of ${JSON.stringify(sockets)}) {
      const c = net.connect(p);
      const done = (r) => { out[p] = r; c.destroy(); if (--left === 0) console.log(JSON.stringify(out)); };
      c.once('connect', () => done('connected'));
      c.once('error', (e) => done(e.code));
    }`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], {
      uid,
      gid: uid,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('exit', () => {
      try {
        resolve(JSON.parse(stdout) as Record<string, string>);
      } catch {
        reject(new Error(`probe as uid ${uid} failed: ${stderr}`));
      }
    });
  });
}

const mode = (p: string): string => (statSync(p).mode & 0o777).toString(8);

describe('HAProxy control sockets', () => {
  it('keeps the admin, master and log sockets and the config in a 0700 work dir, each 0600', async () => {
    const { workDir } = await start();
    expect(mode(workDir)).toBe('700');
    for (const f of ['stats.sock', 'master.sock', 'log.sock', 'haproxy.cfg'])
      expect(`${f} ${mode(path.join(workDir, f))}`).toBe(`${f} 600`);
    const gen = readFileSync(path.join(workDir, 'haproxy.cfg'), 'utf8');
    // The key is in the config (which only this user can read) and nowhere a peer can see it.
    expect(gen).toMatch(/log-format "bwlog1 [0-9a-f]{32} %tr /);
  });

  it.skipIf(!root)('refuses another user at the directory: every socket answers EACCES', async () => {
    const { workDir, dp, seen } = await start();
    const sockets = ['stats.sock', 'master.sock', 'log.sock'].map((f) => path.join(workDir, f));
    const r = await connectAs(NOBODY, sockets);
    expect(Object.values(r)).toEqual(['EACCES', 'EACCES', 'EACCES']);
    // Nothing reached the receiver, and the gateway's own connection is still the only one.
    await request(`${dp.gatewayUrl}/proj/app/s/after-probe`);
    await waitFor('real record', () => seen.includes('a 200 /proj/app/s/after-probe'), { timeoutMs: 3000 });
    expect(dp.status().syslog?.connections).toBe(1);
  });

  it('refuses and counts records without the key on the log socket; the gateway records still arrive', async () => {
    // A process of the same user that reaches the socket (an instance without the sandbox).
    const { dp, workDir, seen } = await start();
    await send(
      path.join(workDir, 'log.sock'),
      forged('/forged-bare') +
        forged('/forged-key', '0123456789abcdef0123456789abcdef') +
        // A copied record behind other text is not a record either (and carries no tag to count).
        `x ${forged('/forged-behind')}` +
        'Server s.app.proj/a is DOWN\n',
    );
    await request(`${dp.gatewayUrl}/proj/app/s/real`);
    await waitFor('real record', () => seen.includes('a 200 /proj/app/s/real'), { timeoutMs: 3000 });
    await waitFor('refused counted', () => dp.status().refusedLogs === 2, { timeoutMs: 3000 });
    expect(seen).toEqual(['a 200 /proj/app/s/real']);
    expect(dp.status().requestLogs).toBe(1);
    // The forged 500s never reached the stats isolation reads.
    expect(dp.requestStats.get('s.app.proj', 'a')?.byClass['5xx']).toBe(0);
  });

  it('refuses records without the key on the TCP transport, which any local process can reach', async () => {
    const { dp, seen } = await start({ logTransport: 'tcp' });
    const port = dp.status().syslog?.port ?? 0;
    expect(port).toBeGreaterThan(0);
    await send({ port }, forged('/forged-tcp') + forged('/forged-tcp2'));
    await request(`${dp.gatewayUrl}/proj/app/s/real-tcp`);
    await waitFor('real record', () => seen.includes('a 200 /proj/app/s/real-tcp'), { timeoutMs: 3000 });
    await waitFor('refused counted', () => dp.status().refusedLogs === 2, { timeoutMs: 3000 });
    expect(seen).toEqual(['a 200 /proj/app/s/real-tcp']);
  });
});
