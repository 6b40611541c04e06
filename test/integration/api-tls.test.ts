/**
 * The API over TLS and agent-scoped tokens, end to end: the real `bulwark
 * server` process with `--tls-self-signed` on 127.0.0.1, called with
 * node:https (trusting the generated certificate) and with the CLI
 * (pinning its fingerprint, or --ca-file). Also: the refusal to listen beyond
 * loopback without TLS, an agent token that may post reports and read the
 * inventory but gets 403 everywhere else, and a revoked token refused with
 * 401 and its reason, which stops a running `bulwark agent` (exit 6).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { EXIT } from '../../src/cli/exit-codes.ts';
import { SERVER_NODE_FLAGS } from '../../src/cli/node-flags.ts';
import { freePort } from '../../src/util/ports.ts';
import { sleep, waitFor } from '../../src/util/time.ts';
import { REPO_ROOT } from '../support/control-plane-process.ts';

const MAIN = path.join(REPO_ROOT, 'src/cli/main.ts');
const ADMIN = `bwk_test_${randomBytes(16).toString('hex')}`;
const FINGERPRINT = /fingerprint (sha256:[0-9A-F:]{95})/;

interface Run {
  code: number;
  out: string;
  err: string;
}

/** Run the CLI to completion; never throws on a non-zero exit (the code is the point). */
function cli(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, ...args],
      {
        cwd: os.tmpdir(),
        env: { ...process.env, BULWARK_CONFIG: '/nonexistent-bulwark-config', ...env },
        timeout: timeoutMs,
      },
      (err, out, errOut) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, out: String(out), err: String(errOut) });
      },
    );
  });
}

interface Server {
  child: ChildProcess;
  url: string;
  fingerprint: string;
  output: () => string;
  stop: () => Promise<void>;
}

async function startTlsServer(dataDir: string, port: number, gatewayPort: number): Promise<Server> {
  const child = spawn(
    process.execPath,
    [
      ...SERVER_NODE_FLAGS,
      MAIN,
      'server',
      '--tls-self-signed',
      '--unprivileged',
      '--port',
      String(port),
      '--gateway-port',
      String(gatewayPort),
      '--data-dir',
      dataDir,
    ],
    {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        BULWARK_BOOTSTRAP_TOKEN: ADMIN,
        BULWARK_LOG_LEVEL: 'warn',
        BULWARK_EBPF_AGENT: 'off',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  const keep = (d: Buffer): void => void (out = (out + d.toString()).slice(-20_000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const url = `https://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(20_000)]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  try {
    await waitFor(
      'TLS control plane up',
      async () => {
        if (child.exitCode !== null) throw new Error(`server exited ${child.exitCode}: ${out}`);
        const fp = FINGERPRINT.exec(out)?.[1];
        if (!fp) return false;
        const ca = fs.readFileSync(path.join(dataDir, 'tls/self-signed-cert.pem'));
        return (await get(url, '/api/v1/healthz', { ca }).catch(() => undefined))?.status === 200;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { child, url, fingerprint: FINGERPRINT.exec(out)![1]!, output: () => out, stop };
}

interface Answer {
  status: number;
  body: { error?: { code: string; message: string; details?: { message: string; fix?: string }[] } } & Record<
    string,
    unknown
  >;
}

/** node:https, independent of the CLI's transport: `ca` is the certificate we trust. */
function get(
  base: string,
  p: string,
  o: { ca: Buffer; token?: string; method?: string; json?: unknown },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = o.json !== undefined ? JSON.stringify(o.json) : undefined;
    const req = https.request(
      base + p,
      {
        method: o.method ?? 'GET',
        ca: o.ca,
        headers: {
          ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        timeout: 15_000,
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : {} }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('control plane API over TLS, with agent tokens', () => {
  let root: string;
  let dataDir: string;
  let server: Server;
  let port: number;
  let gatewayPort: number;
  let ca: Buffer;
  let agent: ChildProcess | undefined;
  const pinned = (fp: string) => ({
    BULWARK_SERVER: server.url,
    BULWARK_TOKEN: ADMIN,
    BULWARK_TLS_FINGERPRINT: fp,
  });

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-api-tls-'));
    dataDir = path.join(root, 'data');
    port = await freePort();
    gatewayPort = await freePort();
    server = await startTlsServer(dataDir, port, gatewayPort);
    ca = fs.readFileSync(path.join(dataDir, 'tls/self-signed-cert.pem'));
  });

  afterAll(async () => {
    if (agent && agent.exitCode === null) agent.kill('SIGKILL');
    await server?.stop();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  }, 60_000);

  it('refuses to listen on 0.0.0.0 without TLS, naming the flags, before creating anything', async () => {
    const dir = path.join(root, 'refused');
    const r = await cli(['server', '--host', '0.0.0.0', '--port', '0', '--data-dir', dir]);
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/--host 0\.0\.0\.0 is not a loopback address/);
    expect(r.err).toMatch(/--tls-cert FILE --tls-key FILE/);
    expect(r.err).toMatch(/--tls-self-signed/);
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('refuses a key that is not the certificate’s, naming both flags', async () => {
    const other = path.join(root, 'other');
    fs.mkdirSync(other);
    // A second pair: its key does not belong to the server's certificate.
    await new Promise<void>((resolve, reject) =>
      execFile(
        'openssl',
        ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
          '-keyout',
          path.join(other, 'key.pem'),
          '-out',
          path.join(other, 'cert.pem'),
          '-days',
          '1',
          '-subj',
          '/CN=other',
        ]),
        (err) => (err ? reject(err) : resolve()),
      ),
    );
    const r = await cli([
      'server',
      '--tls-cert',
      path.join(dataDir, 'tls/self-signed-cert.pem'),
      '--tls-key',
      path.join(other, 'key.pem'),
      '--data-dir',
      path.join(root, 'mismatch'),
    ]);
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/--tls-key .*key\.pem is not the private key of the certificate in --tls-cert/);
  });

  it('serves HTTPS only, with the self-signed pair kept 0600 in the data directory', async () => {
    for (const f of ['self-signed-cert.pem', 'self-signed-key.pem']) {
      expect((fs.statSync(path.join(dataDir, 'tls', f)).mode & 0o777).toString(8), f).toBe('600');
    }
    expect((await get(server.url, '/api/v1/healthz', { ca })).status).toBe(200);
    // Plain HTTP on the TLS port gets no API answer.
    const plain = await fetch(`http://127.0.0.1:${port}/api/v1/healthz`).then(
      (r) => r.status,
      () => 'failed',
    );
    expect(plain).not.toBe(200);
  });

  it('CLI: works with the printed fingerprint pinned or the certificate as --ca-file; refuses a wrong pin and an untrusted certificate', async () => {
    let r = await cli(['get', 'sites', '-o', 'json'], pinned(server.fingerprint));
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/"local"/);

    r = await cli(['--ca-file', path.join(dataDir, 'tls/self-signed-cert.pem'), 'get', 'sites'], {
      BULWARK_SERVER: server.url,
      BULWARK_TOKEN: ADMIN,
    });
    expect(r.code, r.err).toBe(0);

    const wrong = 'sha256:' + 'AB:'.repeat(31) + 'AB';
    r = await cli(['get', 'sites'], pinned(wrong));
    expect(r.code).toBe(EXIT.unauthorized);
    expect(r.err).toContain(`presented certificate ${server.fingerprint}, not the pinned ${wrong}`);
    expect(r.err).toMatch(/nothing was sent/);

    r = await cli(['get', 'sites'], { BULWARK_SERVER: server.url, BULWARK_TOKEN: ADMIN });
    expect(r.code).toBe(EXIT.unauthorized);
    expect(r.err).toMatch(/certificate this CLI does not trust .*--ca-file FILE .*--tls-fingerprint/);

    r = await cli(['--tls-fingerprint', 'sha256:nothex', 'get', 'sites'], { BULWARK_SERVER: server.url });
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/--tls-fingerprint: 'sha256:nothex' is not a SHA-256 certificate fingerprint/);
  });

  it('config save checks the server with the pin, then stores it (0600) so later commands need no flags', async () => {
    const saved = path.join(root, 'saved.json');
    const wrong = 'sha256:' + 'CD:'.repeat(31) + 'CD';
    let r = await cli([
      'config',
      'save',
      '--server',
      server.url,
      '--token',
      ADMIN,
      '--tls-fingerprint',
      wrong,
      '--config',
      saved,
    ]);
    expect(r.code).toBe(EXIT.unauthorized);
    expect(fs.existsSync(saved)).toBe(false);
    r = await cli([
      'config',
      'save',
      '--server',
      server.url,
      '--token',
      ADMIN,
      '--tls-fingerprint',
      server.fingerprint,
      '--config',
      saved,
    ]);
    expect(r.code, r.err).toBe(0);
    expect((fs.statSync(saved).mode & 0o777).toString(8)).toBe('600');
    expect(JSON.parse(fs.readFileSync(saved, 'utf8'))).toEqual({
      server: server.url,
      token: ADMIN,
      tlsFingerprint: server.fingerprint,
    });
    r = await cli(['get', 'sites'], { BULWARK_CONFIG: saved });
    expect(r.code, r.err).toBe(0);
  });

  it('an agent token posts reports and reads the inventory, and gets 403 on apply and every other route', async () => {
    const created = await cli(
      ['tokens', 'create', '--scope', 'agent', '--name', 'node-a'],
      pinned(server.fingerprint),
    );
    expect(created.code, created.err).toBe(0);
    const token = created.out.trim();
    expect(token).toMatch(/^bwk_/);

    const inv = await get(server.url, '/api/v1/observability/agents/inventory?site=local', { ca, token });
    expect(inv.status, JSON.stringify(inv.body)).toBe(200);
    expect(inv.body).toHaveProperty('gatewayBinds');
    const report = await get(server.url, '/api/v1/observability/agents/reports', {
      ca,
      token,
      method: 'POST',
      json: { site: 'local', node: 'node-a', status: { state: 'running', intervals: 0, restarts: 0 } },
    });
    expect(report.status, JSON.stringify(report.body)).toBe(200);
    expect(report.body).toMatchObject({ site: 'local', node: 'node-a' });

    const forbidden: [string, string, unknown?][] = [
      [
        'POST',
        '/api/v1/apply',
        { apiVersion: 'bulwark.io/v1', kind: 'Project', metadata: { name: 'x' }, spec: {} },
      ],
      ['GET', '/api/v1/apps'],
      ['GET', '/api/v1/status'],
      ['GET', '/api/v1/tokens'],
      ['POST', '/api/v1/tokens', { name: 'escalate', scope: 'agent' }],
      ['GET', '/api/v1/observability/agents'],
      ['GET', '/api/v1/incidents'],
    ];
    for (const [method, p, json] of forbidden) {
      const r = await get(server.url, p, { ca, token, method, ...(json !== undefined ? { json } : {}) });
      expect(r.status, `${method} ${p}: ${JSON.stringify(r.body)}`).toBe(403);
      expect(r.body.error?.message).toBe("token 'node-a' has scope 'agent'; this route needs 'admin'");
    }
    // The admin sees the report the agent token posted.
    const agents = await get(server.url, '/api/v1/observability/agents', { ca, token: ADMIN });
    expect(JSON.stringify(agents.body)).toContain('node-a');
  });

  it('agent manifest --create-agent-token puts a new agent token and the pin in the DaemonSet, never the admin token', async () => {
    const r = await cli(
      [
        'agent',
        'manifest',
        '--site',
        'local',
        '--image',
        'registry.example/bulwark:t',
        '--create-agent-token',
      ],
      pinned(server.fingerprint),
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out).not.toContain(ADMIN);
    const docs = parseAllDocuments(r.out).map((d) => d.toJSON() as Record<string, any>); // eslint-disable-line @typescript-eslint/no-explicit-any
    const secret = docs[1]!.stringData.token as string;
    expect(secret).toMatch(/^bwk_/);
    const env = docs[2]!.spec.template.spec.containers[0].env as { name: string; value?: string }[];
    expect(env).toContainEqual({ name: 'BULWARK_TLS_FINGERPRINT', value: server.fingerprint });
    expect(env).toContainEqual({ name: 'BULWARK_SERVER', value: server.url });
    expect(r.err).toMatch(
      /created agent token 'ds-local-\d{14}' \(.*\) for the DaemonSet; revoke it with: bulwark tokens revoke /,
    );
    const inv = await get(server.url, '/api/v1/observability/agents/inventory?site=local', {
      ca,
      token: secret,
    });
    expect(inv.status).toBe(200);
    expect((await get(server.url, '/api/v1/apps', { ca, token: secret })).status).toBe(403);
  });

  it('a revoked agent token gets 401 with the revocation and its reason, and stops a running agent (exit 6)', async () => {
    const created = await cli(['tokens', 'create', '--name', 'node-b'], pinned(server.fingerprint));
    expect(created.code, created.err).toBe(0);
    const token = created.out.trim();
    let log = '';
    agent = spawn(process.execPath, [MAIN, 'agent', '--site', 'local', '--node', 'node-b'], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        BULWARK_CONFIG: '/nonexistent-bulwark-config',
        BULWARK_SERVER: server.url,
        BULWARK_TOKEN: token,
        BULWARK_TLS_FINGERPRINT: server.fingerprint,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    agent.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((r) => agent!.once('exit', (code) => r(code)));
    await waitFor(
      'the agent reported over TLS with its agent token',
      async () => {
        if (agent?.exitCode !== null) throw new Error(`agent exited: ${log}`);
        const a = await get(server.url, '/api/v1/observability/agents', { ca, token: ADMIN });
        return JSON.stringify(a.body).includes('node-b');
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );

    const list = await cli(['tokens', 'list', '-o', 'json'], pinned(server.fingerprint));
    const items = JSON.parse(list.out) as { id: string; name: string; hash?: string; secret?: string }[];
    const rec = items.find((t) => t.name === 'node-b')!;
    expect(rec).toBeDefined();
    expect(list.out).not.toContain(token);
    expect(items.every((t) => t.hash === undefined && t.secret === undefined)).toBe(true);

    const revoked = await cli(
      ['tokens', 'revoke', rec.id, '--reason', 'node retired'],
      pinned(server.fingerprint),
    );
    expect(revoked.code, revoked.err).toBe(0);

    const r = await get(server.url, '/api/v1/observability/agents/inventory?site=local', { ca, token });
    expect(r.status).toBe(401);
    expect(r.body.error?.message).toBe('token revoked');
    expect(r.body.error?.details?.[0]?.message).toMatch(
      new RegExp(`token 'node-b' \\(${rec.id}\\) was revoked at .*: node retired`),
    );

    // The agent's next report is refused: it says why and exits 6 rather than retrying forever.
    const code = await Promise.race([exited, sleep(30_000).then(() => 'still running' as const)]);
    expect(code, log).toBe(EXIT.unauthorized);
    expect(log).toMatch(/refused this agent's credentials: 401 Unauthorized: token revoked/);
  }, 120_000);

  it('reuses the self-signed pair across a restart: the pinned fingerprint stays valid', async () => {
    const before = server.fingerprint;
    await server.stop();
    server = await startTlsServer(dataDir, port, gatewayPort);
    expect(server.fingerprint).toBe(before);
    expect(server.output()).toMatch(/with the self-signed certificate/);
    const r = await cli(['get', 'sites'], pinned(before));
    expect(r.code, r.err).toBe(0);
  }, 90_000);
});
