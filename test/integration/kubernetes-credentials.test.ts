/**
 * Kubernetes credentials as users have them, against the harness's real kube-apiserver:
 * an exec credential plugin (re-run when its credential expires and after its token is
 * revoked), a kubeconfig tokenFile rotated while the driver runs, the in-cluster config of
 * a pod (service-account token and CA under a temp root), tls-server-name (a certificate
 * issued for a name, not the address), proxy-url (a CONNECT proxy on loopback), and clear
 * errors, never a crash, for credentials that are wrong.
 *
 * Tokens are real ServiceAccount tokens from the TokenRequest API; revoking one deletes its
 * ServiceAccount, after which the apiserver answers 401.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { InstanceSpec } from '../../src/runtime/driver.ts';
import { KubernetesDriver } from '../../src/runtime/kubernetes/kubernetes-driver.ts';
import { SERVICE_ACCOUNT_DIR } from '../../src/runtime/kubernetes/kubeconfig.ts';
import { waitFor } from '../../src/util/time.ts';
import { serviceAccountToken, waitUntilRefused } from '../support/kube/accounts.ts';
import {
  kubeBinaries,
  missingBinariesMessage,
  startKubeCluster,
  type KubeCluster,
} from '../support/kube-harness.ts';

const SNI_NAME = 'api.bulwark.test';
let cluster: KubeCluster;
let dir: string;
const drivers: KubernetesDriver[] = [];

beforeAll(async () => {
  const { missing } = kubeBinaries();
  if (missing.length > 0) throw new Error(missingBinariesMessage(missing));
  cluster = await startKubeCluster({ name: 'kcred', nodes: 1, sniNames: [SNI_NAME] });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-kcred-'));
}, 240_000);
afterEach(async () => {
  for (const d of drivers.splice(0)) await d.close().catch(() => {});
});
afterAll(async () => {
  await cluster?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const admin = () => ({ server: cluster.server, token: cluster.token, caCertPem: cluster.caCertPem });
let seq = 0;
const sa = (prefix: string) => serviceAccountToken(admin(), `${prefix}-${seq++}`);

/** A kubeconfig for the harness cluster with `user` as its user entry and cluster fields merged in. */
function kubeconfig(
  name: string,
  user: Record<string, unknown>,
  cluster_: Record<string, unknown> = {},
): string {
  const file = path.join(dir, `${name}.kubeconfig`);
  const cfg = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'c',
        cluster: {
          server: cluster.server,
          'certificate-authority-data': Buffer.from(cluster.caCertPem).toString('base64'),
          ...cluster_,
        },
      },
    ],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'ctx',
  };
  fs.writeFileSync(file, JSON.stringify(cfg), { mode: 0o600 });
  return file;
}

function driverFor(opts: ConstructorParameters<typeof KubernetesDriver>[0]): KubernetesDriver {
  const d = new KubernetesDriver({ requestTimeoutMs: 5000, resyncMs: 30_000, ...opts });
  drivers.push(d);
  return d;
}

/** A request only an authenticated, authorised identity may make (health's /readyz is public). */
const namespaces = async (d: KubernetesDriver): Promise<number> =>
  (await d.client.list('Namespace')).items.length;

const spec = (site: string, workload: string): InstanceSpec => ({
  id: `cred.web.${workload}-0-${Math.random().toString(16).slice(2, 8)}`,
  site,
  project: 'cred',
  app: 'web',
  workload,
  ordinal: 0,
  image: 'bulwark.local/cred:1',
  env: {},
  ports: [{ name: 'http', port: 8080 }],
  cpu: 0.05,
  memoryBytes: 32 * 2 ** 20,
  restartPolicy: 'Always',
  terminationGracePeriodMs: 1000,
  specHash: 'h1',
});

/**
 * An exec credential plugin as EKS/GKE/AKS/kubelogin ship them, as a shell script: it logs
 * each call, prints the token in its state dir as an ExecCredential (with the expiry in
 * `expires`, if any), or fails with the text in `fail`. The state dir comes through exec.env.
 */
function execPlugin(name: string): { kubeconfig: string; state: string; calls: () => number } {
  const state = path.join(dir, `${name}-plugin`);
  fs.mkdirSync(state);
  const script = path.join(state, 'credential-plugin.sh');
  fs.writeFileSync(
    script,
    [
      '#!/bin/sh',
      'echo call >> "$PLUGIN_STATE/calls"',
      // client-go hands the plugin its request; Bulwark does too.
      'case "$KUBERNETES_EXEC_INFO" in *ExecCredential*) ;; *) echo "no KUBERNETES_EXEC_INFO" >&2; exit 3;; esac',
      'if [ -f "$PLUGIN_STATE/fail" ]; then cat "$PLUGIN_STATE/fail" >&2; exit 1; fi',
      'if [ -f "$PLUGIN_STATE/garbage" ]; then echo "this is not JSON"; exit 0; fi',
      'token=$(cat "$PLUGIN_STATE/token")',
      'exp=""',
      'if [ -f "$PLUGIN_STATE/expires" ]; then exp=",\\"expirationTimestamp\\":\\"$(cat "$PLUGIN_STATE/expires")\\""; fi',
      'printf \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"%s}}\\n\' "$token" "$exp"',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  const kc = kubeconfig(name, {
    exec: {
      apiVersion: 'client.authentication.k8s.io/v1',
      // Relative to the kubeconfig's directory, as client-go resolves it.
      command: `./${path.relative(dir, script)}`,
      env: [{ name: 'PLUGIN_STATE', value: state }],
      interactiveMode: 'Never',
    },
  });
  const calls = (): number => {
    try {
      return fs.readFileSync(path.join(state, 'calls'), 'utf8').trim().split('\n').length;
    } catch {
      return 0;
    }
  };
  return { kubeconfig: kc, state, calls };
}

describe('exec credential plugins', () => {
  it('authenticates with the plugin token, re-runs it at expiry, and after its token is revoked', async () => {
    const a = await sa('exec-a');
    const p = execPlugin('exec');
    fs.writeFileSync(path.join(p.state, 'token'), a.token);
    const d = driverFor({ site: 'cred-exec', kubeconfigPath: p.kubeconfig });
    expect(p.calls()).toBe(0); // the constructor only checks the kubeconfig
    expect(await namespaces(d)).toBeGreaterThan(0);
    expect(await namespaces(d)).toBeGreaterThan(0);
    // No expiry: one run serves every request, as client-go caches it.
    expect(p.calls()).toBe(1);

    // An expiry 1.5 s from now: used until then, then the plugin is asked again.
    fs.writeFileSync(path.join(p.state, 'expires'), new Date(Date.now() + 1500).toISOString());
    const b = await sa('exec-b');
    fs.writeFileSync(path.join(p.state, 'token'), b.token);
    await a.revoke();
    await waitUntilRefused(admin(), a.token);
    // The cached token a is now refused: the 401 drops it, the plugin runs again (token b).
    expect(await namespaces(d)).toBeGreaterThan(0);
    expect(p.calls()).toBe(2);
    await new Promise((r) => setTimeout(r, 1700));
    expect(await namespaces(d)).toBeGreaterThan(0);
    expect(p.calls()).toBe(3); // expired: asked again although nothing was refused
    await b.revoke();
  }, 60_000);

  it('a failing or broken plugin gives an error naming the kubeconfig and the plugin, and the driver recovers', async () => {
    const a = await sa('exec-fail');
    const p = execPlugin('exec-fail');
    fs.writeFileSync(path.join(p.state, 'token'), a.token);
    fs.writeFileSync(path.join(p.state, 'fail'), 'error: the SSO session has expired; run aws sso login\n');
    const d = driverFor({ site: 'cred-exec-fail', kubeconfigPath: p.kubeconfig });
    const h = await d.health();
    expect(h.ok).toBe(false);
    expect(h.message).toContain(p.kubeconfig);
    expect(h.message).toContain('exec plugin');
    expect(h.message).toContain('the SSO session has expired; run aws sso login');
    await expect(d.ensure(spec('cred-exec-fail', 'api'))).rejects.toThrow(/cannot get credentials/);

    fs.rmSync(path.join(p.state, 'fail'));
    fs.writeFileSync(path.join(p.state, 'garbage'), '');
    const g = await d.health();
    expect(g.ok).toBe(false);
    expect(g.message).toMatch(/cannot get credentials \(exec plugin .*credential-plugin\.sh\): .*JSON/);

    // Fixed: the next request runs it again and works (a failure is not cached).
    fs.rmSync(path.join(p.state, 'garbage'));
    expect((await d.health()).ok).toBe(true);
    expect(await namespaces(d)).toBeGreaterThan(0);
    await a.revoke();
  }, 60_000);
});

describe('token files', () => {
  it('a kubeconfig tokenFile rotated while the driver runs: it keeps working once the old token is revoked', async () => {
    const a = await sa('tf-a');
    const tokenFile = path.join(dir, 'tf-token');
    // Written by `echo`, with the newline: the token is still one header line.
    fs.writeFileSync(tokenFile, `${a.token}\n`);
    const d = driverFor({ site: 'cred-tf', kubeconfigPath: kubeconfig('tf', { tokenFile: 'tf-token' }) });
    await d.start();
    const first = spec('cred-tf', 'api');
    await d.ensure(first);
    await waitFor('first ready', () => d.get(first.id)?.ready === true, { timeoutMs: 30_000 });

    // Rotation as the kubelet does a projected token: the file is replaced, then the old token dies.
    const b = await sa('tf-b');
    fs.writeFileSync(`${tokenFile}.new`, b.token);
    fs.renameSync(`${tokenFile}.new`, tokenFile);
    await a.revoke();
    await waitUntilRefused(admin(), a.token);

    const second = spec('cred-tf', 'worker');
    await d.ensure(second);
    await waitFor('second ready', () => d.get(second.id)?.ready === true, { timeoutMs: 30_000 });
    expect(await namespaces(d)).toBeGreaterThan(0);
    await d.remove(first.id);
    await d.remove(second.id);
    await b.revoke();
  }, 90_000);
});

describe('in-cluster config', () => {
  const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
  afterEach(() => {
    for (const [k, v] of [
      ['KUBERNETES_SERVICE_HOST', saved.host],
      ['KUBERNETES_SERVICE_PORT', saved.port],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('uses the service-account token and CA of a pod, and follows the token as the kubelet rotates it', async () => {
    const root = path.join(dir, 'pod-root');
    const saDir = path.join(root, SERVICE_ACCOUNT_DIR);
    fs.mkdirSync(saDir, { recursive: true });
    const a = await sa('incluster-a');
    fs.writeFileSync(path.join(saDir, 'token'), a.token);
    fs.writeFileSync(path.join(saDir, 'ca.crt'), cluster.caCertPem);
    fs.writeFileSync(path.join(saDir, 'namespace'), 'default');

    delete process.env.KUBERNETES_SERVICE_HOST;
    expect(() => driverFor({ site: 'cred-pod', inCluster: { root } })).toThrow(
      /in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set/,
    );
    const url = new URL(cluster.server);
    process.env.KUBERNETES_SERVICE_HOST = url.hostname;
    process.env.KUBERNETES_SERVICE_PORT = url.port;
    const d = driverFor({ site: 'cred-pod', inCluster: { root } });
    expect((await d.health()).ok).toBe(true);
    expect(await namespaces(d)).toBeGreaterThan(0);

    const b = await sa('incluster-b');
    fs.writeFileSync(path.join(saDir, 'token'), b.token);
    await a.revoke();
    await waitUntilRefused(admin(), a.token);
    expect(await namespaces(d)).toBeGreaterThan(0);
    await b.revoke();
  }, 60_000);

  it('a missing service-account token is a clear error at construction', () => {
    process.env.KUBERNETES_SERVICE_HOST = '127.0.0.1';
    process.env.KUBERNETES_SERVICE_PORT = '6443';
    expect(() => driverFor({ site: 'cred-pod', inCluster: { root: path.join(dir, 'nowhere') } })).toThrow(
      /in-cluster config: service-account token .*nowhere.*token: cannot read it \(ENOENT\)/,
    );
  });
});

describe('TLS and proxies', () => {
  it('tls-server-name: the serving certificate is checked against that name, not the address', async () => {
    const sniCa = Buffer.from(cluster.sni!.caCertPem).toString('base64');
    const named = driverFor({
      site: 'cred-sni',
      kubeconfigPath: kubeconfig(
        'sni',
        { token: cluster.token },
        { 'certificate-authority-data': sniCa, 'tls-server-name': SNI_NAME },
      ),
    });
    expect(await namespaces(named)).toBeGreaterThan(0);

    // Same CA without the name: the apiserver presents its default certificate (another CA).
    const unnamed = driverFor({
      site: 'cred-sni-no',
      kubeconfigPath: kubeconfig('sni-no', { token: cluster.token }, { 'certificate-authority-data': sniCa }),
    });
    const h = await unnamed.health();
    expect(h.ok).toBe(false);
    expect(h.message).toMatch(/certificate/i);
  }, 30_000);

  it('proxy-url: requests tunnel through the proxy', async () => {
    const tunnels: string[] = [];
    const proxy = http.createServer((_req, res) => res.writeHead(405).end());
    const sockets = new Set<net.Socket>();
    proxy.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
      tunnels.push(req.url ?? '');
      sockets.add(client);
      const [host, port] = (req.url ?? '').split(':');
      const upstream = net.connect(Number(port), host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      sockets.add(upstream);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const port = (proxy.address() as net.AddressInfo).port;
      const d = driverFor({
        site: 'cred-proxy',
        kubeconfigPath: kubeconfig(
          'proxy',
          { token: cluster.token },
          { 'proxy-url': `http://127.0.0.1:${port}` },
        ),
      });
      expect(await namespaces(d)).toBeGreaterThan(0);
      expect(tunnels).toContain(new URL(cluster.server).host);
    } finally {
      // Tunnels are hijacked sockets the server no longer tracks: end them here.
      for (const sock of sockets) sock.destroy();
      proxy.closeAllConnections();
      await new Promise((r) => proxy.close(r));
    }
  }, 30_000);
});

describe('wrong credentials', () => {
  it('a revoked static token: 401 naming the credentials, no crash', async () => {
    const a = await sa('revoked');
    await a.revoke();
    await waitUntilRefused(admin(), a.token);
    const d = driverFor({ site: 'cred-bad', kubeconfigPath: kubeconfig('bad', { token: a.token }) });
    const h = await d.health();
    expect(h.ok).toBe(false);
    expect(h.message).toMatch(
      /401 .*credentials: kubeconfig .*bad\.kubeconfig .*token; revoked, expired or unknown/,
    );
    await expect(d.start()).rejects.toThrow(/401/);
  }, 30_000);

  it('a client certificate from an unknown CA is refused with a clear error', async () => {
    // The SNI CA signs no client certificates the apiserver trusts: present its server cert as a client cert.
    const sniDir = path.join(cluster.dir, 'sni');
    const d = driverFor({
      site: 'cred-cert',
      kubeconfigPath: kubeconfig('cert', {
        'client-certificate': path.join(sniDir, 'sni.crt'),
        'client-key': path.join(sniDir, 'sni.key'),
      }),
    });
    await expect(namespaces(d)).rejects.toThrow(/401|certificate/i);
  }, 30_000);
});
