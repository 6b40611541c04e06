import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadInCluster, loadKubeconfig, loadStatic } from './kubeconfig.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-kubeconfig-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;

function write(
  user: unknown,
  cluster: Record<string, unknown> = {},
  extra: Record<string, unknown> = {},
): string {
  const file = path.join(dir, `k${n++}.yaml`);
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server: 'https://10.0.0.1:6443/', ...cluster } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'ctx',
    ...extra,
  };
  fs.writeFileSync(file, JSON.stringify(doc));
  return file;
}

describe('loadKubeconfig', () => {
  it('reads the current context: server without trailing slash, tls-server-name and proxy-url', () => {
    const c = loadKubeconfig(
      write({ token: 't' }, { 'tls-server-name': 'api.internal', 'proxy-url': 'http://proxy:3128' }),
    );
    expect(c.server).toBe('https://10.0.0.1:6443');
    expect(c.clusters[0]).toMatchObject({ tlsServerName: 'api.internal', proxyUrl: 'http://proxy:3128' });
    expect(c.users[0]).toMatchObject({ token: 't' });
    expect(c.auth).toBe('token');
    expect(c.describe).toMatch(/kubeconfig .*k\d+\.yaml \(context ctx, user u\)/);
  });

  it('turns kubectl tokenFile (relative to the kubeconfig) into a token file that is re-read', () => {
    fs.writeFileSync(path.join(dir, 'tok'), 'abc\n');
    const c = loadKubeconfig(write({ tokenFile: 'tok' }));
    expect(c.users[0]?.authProvider).toEqual({
      name: 'tokenFile',
      config: { tokenFile: path.join(dir, 'tok') },
    });
    expect(c.users[0]?.token).toBeUndefined();
    expect(c.auth).toBe('tokenFile');
  });

  it('resolves a relative exec command against the kubeconfig dir and hands the plugin KUBERNETES_EXEC_INFO', () => {
    const plugin = path.join(dir, 'plugin.sh');
    fs.writeFileSync(plugin, '#!/bin/sh\n', { mode: 0o755 });
    const c = loadKubeconfig(
      write({
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1beta1',
          command: './plugin.sh',
          args: ['token'],
          env: [{ name: 'A', value: '1' }],
        },
      }),
    );
    const exec = c.users[0]?.exec;
    expect(exec?.command).toBe(plugin);
    expect(exec?.args).toEqual(['token']);
    expect(exec?.env?.[0]).toEqual({ name: 'A', value: '1' });
    expect(JSON.parse(exec?.env?.[1]?.value ?? '{}')).toMatchObject({ kind: 'ExecCredential' });
    expect(c.auth).toBe(`exec plugin ${plugin}`);
  });

  it('keeps a bare exec command for PATH lookup (aws, gke-gcloud-auth-plugin, kubelogin)', () => {
    const c = loadKubeconfig(
      write({
        exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'kubelogin', args: ['get-token'] },
      }),
    );
    expect(c.users[0]?.exec?.command).toBe('kubelogin');
  });

  it.each([
    ['a missing file', () => loadKubeconfig(path.join(dir, 'nope')), /cannot read it/],
    [
      'invalid YAML',
      () => {
        const f = path.join(dir, 'bad.yaml');
        fs.writeFileSync(f, 'clusters: [\n  - {');
        return loadKubeconfig(f);
      },
      /not valid YAML/,
    ],
    ['an unknown context', () => loadKubeconfig(write({ token: 't' }), 'other'), /context "other" not found/],
    [
      'a plain-http server',
      () => loadKubeconfig(write({ token: 't' }, { server: 'http://x:8080' })),
      /must be an https:\/\/ URL/,
    ],
    ['no credentials', () => loadKubeconfig(write({})), /user "u": has no credentials .*fix: add one/],
    [
      'a token file that is not there',
      () => loadKubeconfig(write({ tokenFile: '/nonexistent/token' })),
      /tokenFile \/nonexistent\/token: cannot read it \(ENOENT\)/,
    ],
    [
      'a certificate without its key',
      () => {
        fs.writeFileSync(path.join(dir, 'c.crt'), 'x');
        return loadKubeconfig(write({ 'client-certificate': 'c.crt' }));
      },
      /needs both client-certificate and client-key/,
    ],
    [
      'exec without apiVersion',
      () => loadKubeconfig(write({ exec: { command: 'aws' } })),
      /exec.apiVersion must be one of/,
    ],
    [
      'an exec command that is not executable',
      () =>
        loadKubeconfig(
          write({ exec: { apiVersion: 'client.authentication.k8s.io/v1', command: './missing.sh' } }),
        ),
      /exec.command .*missing\.sh is not an executable file/,
    ],
    [
      'the removed gcp auth-provider',
      () => loadKubeconfig(write({ 'auth-provider': { name: 'gcp', config: {} } })),
      /auth-provider "gcp" is not supported .*gke-gcloud-auth-plugin/,
    ],
    [
      'a proxy-url with an unknown scheme',
      () => loadKubeconfig(write({ token: 't' }, { 'proxy-url': 'ftp://p' })),
      /proxy-url "ftp:\/\/p" must be/,
    ],
  ])('rejects %s with the file and the fix', (_what, load, msg) => {
    expect(load).toThrow(msg);
  });
});

describe('loadInCluster and loadStatic', () => {
  it('in-cluster: server from the env (IPv6 bracketed), token file and CA under the root', () => {
    const root = path.join(dir, 'root');
    const sa = path.join(root, 'var/run/secrets/kubernetes.io/serviceaccount');
    fs.mkdirSync(sa, { recursive: true });
    fs.writeFileSync(path.join(sa, 'token'), 't');
    fs.writeFileSync(path.join(sa, 'ca.crt'), 'ca');
    const c = loadInCluster(root, { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' });
    expect(c.server).toBe('https://[fd00::1]:443');
    expect(c.users[0]?.authProvider?.config).toEqual({ tokenFile: path.join(sa, 'token') });
    expect(c.clusters[0]?.caFile).toBe(path.join(sa, 'ca.crt'));
  });

  it('static: needs https and a credential', () => {
    expect(() => loadStatic({ server: 'http://x' })).toThrow(/https/);
    expect(() => loadStatic({ server: 'https://x' })).toThrow(/set token or clientCertPem/);
    expect(loadStatic({ server: 'https://x/', token: 't', caCertPem: 'PEM' }).clusters[0]).toMatchObject({
      server: 'https://x',
      caData: Buffer.from('PEM').toString('base64'),
    });
  });
});
