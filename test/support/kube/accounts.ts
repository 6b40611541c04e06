/**
 * Service-account identities for credential tests: a ServiceAccount bound to
 * cluster-admin, a token for it from the TokenRequest API (what a projected
 * volume, `kubectl create token` and cloud exec plugins hand out), and
 * revocation by deleting the account (the apiserver checks the account of a
 * bound token on every request, so its tokens are refused at once).
 */
import { kubeRequest, type KubeTarget } from './http.ts';

export interface ServiceAccountToken {
  name: string;
  namespace: string;
  token: string;
  /** Delete the ServiceAccount: every token of it gets 401 from now on. */
  revoke(): Promise<void>;
}

async function expectStatus(what: string, p: ReturnType<typeof kubeRequest>, ok: number[]): Promise<void> {
  const r = await p;
  if (!ok.includes(r.status)) throw new Error(`${what}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
}

/** A cluster-admin ServiceAccount `name` in `namespace` (default) and a token for it. */
export async function serviceAccountToken(
  target: KubeTarget,
  name: string,
  opts: { namespace?: string; expirationSeconds?: number } = {},
): Promise<ServiceAccountToken> {
  const namespace = opts.namespace ?? 'default';
  const base = `/api/v1/namespaces/${namespace}/serviceaccounts`;
  await expectStatus(
    `creating ServiceAccount ${namespace}/${name}`,
    kubeRequest(target, base, { body: { metadata: { name } } }),
    [201, 409],
  );
  await expectStatus(
    `binding ${name} to cluster-admin`,
    kubeRequest(target, '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
      body: {
        metadata: { name: `bulwark-test-${namespace}-${name}` },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
        subjects: [{ kind: 'ServiceAccount', name, namespace }],
      },
    }),
    [201, 409],
  );
  // The minimum the apiserver grants is 10 minutes; tests revoke instead of waiting for expiry.
  const r = await kubeRequest(target, `${base}/${name}/token`, {
    body: {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { expirationSeconds: opts.expirationSeconds ?? 600 },
    },
  });
  const token = r.body?.status?.token as string | undefined;
  if (r.status !== 201 || !token)
    throw new Error(`TokenRequest for ${name}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  return {
    name,
    namespace,
    token,
    revoke: () =>
      expectStatus(
        `deleting ServiceAccount ${name}`,
        kubeRequest(target, `${base}/${name}`, { method: 'DELETE' }),
        [200, 404],
      ),
  };
}

/** Wait until `token` is refused (401): revocation reaches the apiserver's authenticator cache. */
export async function waitUntilRefused(target: KubeTarget, token: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await kubeRequest({ ...target, token }, '/api/v1/namespaces/default', { timeoutMs: 5000 });
    if (r.status === 401) return;
    if (Date.now() > deadline)
      throw new Error(`token still accepted (HTTP ${r.status}) ${timeoutMs} ms after revocation`);
    await new Promise((res) => setTimeout(res, 200));
  }
}
