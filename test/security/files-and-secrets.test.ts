/**
 * Files and secrets (issue 15, item 8) and profiling without a fixed port
 * (item 5), against the real control plane in unprivileged mode: real
 * instances of a service that prints its secrets (testdata/secret-app.ts),
 * the site's real HAProxy, a real fault, the isolation controller's real
 * evidence collection with a CPU profile.
 *
 * Checked as an attacker on the machine would look: every file of the
 * evidence bundle and the control plane's log are searched for the secret
 * values; the modes of the data directory, the bundle and the launch records;
 * /proc/net/tcp is watched for a listener on 9229 for the whole profile.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Incident } from '../../src/model/incidents.ts';
import { listeningSocketsOf } from '../../src/profiling/proc-net.ts';
import type { InstanceStatus } from '../../src/runtime/driver.ts';
import { waitFor } from '../../src/util/time.ts';
import { startControlPlane, type ControlPlaneProcess } from '../support/control-plane-process.ts';
import { httpRequest } from '../support/http.ts';

const DB_PASSWORD = 'pw-Zq8rT1vXk';
const API_TOKEN = 'tok_9f8e7d6c5b4a3';
const DSN_PASSWORD = 'dbpass-K3m9w';
const SECRET_VALUES = [DB_PASSWORD, API_TOKEN, DSN_PASSWORD];

const MANIFEST = `
apiVersion: bulwark.io/v1
kind: Project
metadata: { name: sec }
spec: { tenant: t }
---
apiVersion: bulwark.io/v1
kind: App
metadata: { name: vault, project: sec }
spec:
  isolation:
    evidence: { profileDurationMs: 500 }
  workloads:
    - name: api
      type: service
      replicas: 2
      run: { command: [node, test/security/testdata/secret-app.ts] }
      ports: [{ name: http, port: 8080 }]
      env:
        DB_PASSWORD: ${DB_PASSWORD}
        API_TOKEN: ${API_TOKEN}
        DATABASE_URL: postgres://bank:${DSN_PASSWORD}@127.0.0.1:5432/bank
        GREETING: hello-from-vault
      health:
        readiness: { http: { path: /healthz, port: http }, intervalMs: 300 }
`;

let dataDir: string;
let cp: ControlPlaneProcess | undefined;
let cpLog = '';

const mode = (p: string): string => (fs.statSync(p).mode & 0o777).toString(8).padStart(4, '0');

/** Every file and directory under `dir` (symlinks not followed). */
function walk(dir: string): { files: string[]; dirs: string[] } {
  const out = { files: [] as string[], dirs: [dir] };
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const sub = walk(p);
      out.files.push(...sub.files);
      out.dirs.push(...sub.dirs);
    } else if (e.isFile()) out.files.push(p);
  }
  return out;
}

/** Inodes of TCP sockets listening on port 9229 now, on any address (v4 and v6). */
function listeners9229(): Set<string> {
  const found = new Set<string>();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const c = line.trim().split(/\s+/);
      // local_address is ADDR:PORT in hex; state 0A is LISTEN; c[9] is the inode.
      if (c[3] === '0A' && c[1]?.endsWith(':2405')) found.add(c[9] ?? '?');
    }
  }
  return found;
}

async function instances(): Promise<InstanceStatus[]> {
  const r = await cp!.api<{ items: InstanceStatus[] }>('GET', '/api/v1/instances');
  return r.body.items.filter((i) => i.app === 'vault');
}

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-secrets-'));
  // What an earlier version left: a data directory, an evidence bundle and a log with the umask's modes.
  fs.chmodSync(dataDir, 0o755);
  const old = path.join(dataDir, 'sites', 'local', 'evidence', 'old-bundle');
  fs.mkdirSync(old, { recursive: true, mode: 0o755 });
  fs.writeFileSync(path.join(old, 'logs.txt'), 'old lines\n', { mode: 0o644 });
  fs.chmodSync(path.join(dataDir, 'sites'), 0o755);
  cp = await startControlPlane({ dataDir, unprivileged: true, env: { BULWARK_LOG_LEVEL: 'info' } });
  cpLog = cp.output();
  cp.child.stdout?.on('data', (d: Buffer) => (cpLog += d.toString()));
  cp.child.stderr?.on('data', (d: Buffer) => (cpLog += d.toString()));
  const res = await cp.api('POST', '/api/v1/apply', MANIFEST, true);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  await waitFor('2 ready', async () => (await instances()).filter((i) => i.ready).length === 2, {
    timeoutMs: 60_000,
    intervalMs: 300,
  });
}, 120_000);

afterAll(async () => {
  await cp?.stop();
  if (!process.env.BULWARK_KEEP_TEST_DATA) fs.rmSync(dataDir, { recursive: true, force: true });
}, 60_000);

describe('files and secrets of an unprivileged control plane', () => {
  it('evidence of a faulty instance: no secret in any file of the bundle or the log, files 0600, dirs 0700, profiled without 9229', async () => {
    const [v] = (await instances()).filter((i) => i.ready && i.pid !== undefined);
    expect(v, 'a ready instance').toBeDefined();
    const victim = v!;
    // Watch for a listener on the default inspector port for the whole fault and profile.
    const before = listeners9229();
    const seen9229: string[] = [];
    const watch = setInterval(() => {
      for (const inode of listeners9229()) if (!before.has(inode)) seen9229.push(inode);
    }, 10);
    let inc: Incident;
    try {
      const t0 = Date.now();
      const r = await httpRequest(`http://${victim.ip}:${victim.ports.http}/fault`, { method: 'POST' });
      expect(r.status).toBe(200);
      // Traffic through the gateway too, so the 500s (which carry the DSN) are seen as requests.
      const traffic = setInterval(() => {
        httpRequest(`${cp!.gatewayUrl}/`, { headers: { host: 'api.vault.sec' }, timeoutMs: 2000 }).catch(
          () => undefined,
        );
      }, 50);
      try {
        inc = await waitFor(
          'the faulty instance quarantined with its evidence collected',
          async () => {
            const l = await cp!.api<{ items: Incident[] }>(
              'GET',
              `/api/v1/incidents?instance=${encodeURIComponent(victim.id)}`,
            );
            return l.body.items.find((i) => i.evidenceDir && Date.parse(i.detectedAt) >= t0);
          },
          { timeoutMs: 40_000, intervalMs: 200 },
        );
      } finally {
        clearInterval(traffic);
      }
    } finally {
      clearInterval(watch);
    }
    expect(seen9229, 'a new listener on 9229 during the fault and the profile').toEqual([]);

    const ev = await cp!.api<{
      dir: string;
      parts: Record<
        string,
        { status: string; reason?: string; files: string[]; data?: Record<string, unknown> }
      >;
    }>('GET', `/api/v1/incidents/${inc.id}/evidence`);
    expect(ev.status).toBe(200);
    const profile = ev.body.parts.profile!;
    expect(profile.status, profile.reason).toBe('ok');
    const audit = profile.data?.audit as { via: string; inspectorPort: number };
    expect(audit.via).toBe('host-loopback');
    expect(audit.inspectorPort).toBeGreaterThan(0);
    expect(audit.inspectorPort).not.toBe(9229);
    expect(profile.data?.inspectorClosed).toBe(true);
    // Afterwards the quarantined process listens on its HTTP port only: the inspector's is closed.
    expect((await listeningSocketsOf(victim.pid!)).map((s) => s.port)).toEqual([victim.ports.http]);

    // The bundle: private, and without a secret in any file (the instance printed them all).
    const bundle = ev.body.dir;
    expect(path.dirname(bundle)).toBe(path.join(dataDir, 'sites', 'local', 'evidence'));
    const { files, dirs } = walk(bundle);
    expect(files.map((f) => path.relative(bundle, f)).sort()).toEqual(
      expect.arrayContaining(['logs.txt', 'manifest.json', 'instance.json', 'process/status']),
    );
    expect(files.some((f) => f.endsWith('.cpuprofile'))).toBe(true);
    for (const f of files) {
      expect(mode(f), f).toBe('0600');
      const text = fs.readFileSync(f, 'latin1');
      for (const s of SECRET_VALUES) expect(text.includes(s), `${s} in ${f}`).toBe(false);
    }
    for (const d of [...dirs, path.dirname(bundle)]) expect(mode(d), d).toBe('0700');
    // The positive control: the secrets were printed, and what is left is the redaction.
    const logs = fs.readFileSync(path.join(bundle, 'logs.txt'), 'utf8');
    expect(logs).toContain('login with password <redacted> and Authorization: Bearer <redacted>');
    expect(logs).toContain('connecting to postgres://bank:<redacted>@127.0.0.1:5432/bank');
    expect(logs).toContain(
      'query failed on postgres://bank:<redacted>@127.0.0.1:5432/bank (password <redacted>)',
    );

    // The archive the API serves is private too, and holds the redacted files only.
    const tgz = await fetch(`${cp!.url}/api/v1/incidents/${inc.id}/evidence.tar.gz`, {
      headers: { authorization: `Bearer ${cp!.token}` },
    });
    expect(tgz.status).toBe(200);
    const archive = Buffer.from(await tgz.arrayBuffer());
    expect(archive.length).toBeGreaterThan(100);
    expect(mode(`${bundle}.tar.gz`)).toBe('0600');
    const { gunzipSync } = await import('node:zlib');
    const tar = gunzipSync(archive).toString('latin1');
    expect(tar).toContain('logs.txt');
    for (const s of SECRET_VALUES) expect(tar.includes(s), `${s} in the archive`).toBe(false);

    // Launch records of the running instances hold the env: 0600 in 0700 directories.
    const instDir = path.join(dataDir, 'sites', 'local', 'instances', 'instances', victim.id);
    expect(mode(instDir)).toBe('0700');
    expect(mode(path.join(instDir, 'launch.json'))).toBe('0600');
    expect(fs.readFileSync(path.join(instDir, 'launch.json'), 'utf8')).toContain(DB_PASSWORD);
    for (const f of walk(instDir).files) expect(mode(f), f).toBe('0600');

    // What an earlier version left was tightened at start, and the data directory is 0700.
    expect(mode(dataDir)).toBe('0700');
    expect(mode(path.join(dataDir, 'sites'))).toBe('0700');
    const old = path.join(dataDir, 'sites', 'local', 'evidence', 'old-bundle');
    expect(mode(old)).toBe('0700');
    expect(mode(path.join(old, 'logs.txt'))).toBe('0600');
    expect(mode(path.join(dataDir, 'store'))).toBe('0700');

    // The control plane's log, flushed by stopping it: it spoke of the incident, never of a secret.
    await cp!.stop();
    cp = undefined;
    expect(cpLog).toContain(inc.id);
    for (const s of SECRET_VALUES) expect(cpLog.includes(s), `${s} in the control plane's log`).toBe(false);
  }, 120_000);
});
