/**
 * Where the driver's credentials come from, checked before any request:
 *
 * - a kubeconfig file (its current context, or a named one), as kubectl reads it: tokens,
 *   `tokenFile` (re-read, see credentials.ts), client certificates, exec credential plugins
 *   (EKS, GKE, AKS, kubelogin), the oidc auth-provider, `tls-server-name`, `proxy-url`;
 * - the in-cluster config of a pod: KUBERNETES_SERVICE_HOST/PORT and the projected
 *   service-account token and CA under /var/run/secrets/kubernetes.io/serviceaccount;
 * - static parts (server, CA, token or client certificate), for tests and embedders.
 *
 * The authentication itself is @kubernetes/client-node's KubeConfig (credentials.ts asks it
 * per request); this module validates the source first so a mistake is reported with the
 * file, the entry and the fix instead of surfacing as an odd failure at the first request,
 * and it fills the gaps where client-node reads a kubeconfig differently from kubectl
 * (`tokenFile`, relative exec commands).
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

export interface KubeConnection {
  /** e.g. https://127.0.0.1:6443 */
  server: string;
  /** PEM of the CA that signed the API server's serving certificate. */
  caCertPem?: string;
  token?: string;
  clientCertPem?: string;
  clientKeyPem?: string;
  /** Name the serving certificate is checked against, when it is not the server's host. */
  tlsServerName?: string;
  /** Only for tests against throwaway clusters. @default false */
  insecureSkipTlsVerify?: boolean;
}

export type KubeSource =
  | { kind: 'kubeconfig'; path: string; context?: string }
  /** `root` prefixes /var/run/secrets/kubernetes.io/serviceaccount (tests; default ''). */
  | { kind: 'in-cluster'; root?: string }
  | { kind: 'static'; connection: KubeConnection };

/** Where the in-cluster token, CA and namespace are (below an optional root). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** client-node's KubeConfig.loadFromOptions input: the parsed, validated, normalised config. */
export interface LoadedConfig {
  /** For messages: `kubeconfig /etc/bulwark/dc1.kubeconfig (context dc1, user admin)`. */
  describe: string;
  server: string;
  clusters: ClusterEntry[];
  users: UserEntry[];
  contexts: { name: string; cluster: string; user: string; namespace?: string }[];
  currentContext: string;
  /** The user's credential kind, for messages and docs: token, tokenFile, exec, ... */
  auth: string;
}

/** client-node's Cluster and User shapes (config_types.ts), written out so loading needs no import. */
interface ClusterEntry {
  name: string;
  server: string;
  caData?: string;
  caFile?: string;
  tlsServerName?: string;
  skipTLSVerify: boolean;
  proxyUrl?: string;
}
interface UserEntry {
  name: string;
  token?: string;
  certData?: string;
  certFile?: string;
  keyData?: string;
  keyFile?: string;
  exec?: ExecConfig;
  authProvider?: { name: string; config: Record<string, unknown> };
  username?: string;
  password?: string;
  impersonateUser?: string;
}
interface ExecConfig {
  apiVersion?: string;
  command: string;
  args?: string[];
  env?: { name: string; value: string }[];
  [k: string]: unknown;
}

interface RawKubeconfig {
  'current-context'?: string;
  contexts?: { name?: string; context?: { cluster?: string; user?: string; namespace?: string } }[];
  clusters?: { name?: string; cluster?: Record<string, unknown> }[];
  users?: { name?: string; user?: Record<string, unknown> }[];
}

const EXEC_API_VERSIONS = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1'];
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

function readable(file: string, what: string, fail: (m: string) => never): void {
  try {
    accessSync(file, constants.R_OK);
  } catch (err) {
    fail(`${what} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

function checkServer(server: string, fail: (m: string) => never): void {
  let u: URL;
  try {
    u = new URL(server);
  } catch {
    return fail(`server "${server}" is not a URL; fix: write https://<host>:<port>`);
  }
  if (u.protocol !== 'https:')
    fail(`server "${server}" must be an https:// URL (Bulwark never sends credentials in clear text)`);
}

/** Read and check a kubeconfig file; errors name the file, the entry and the fix. */
export function loadKubeconfig(file: string, context?: string): LoadedConfig {
  let text: string;
  let doc: RawKubeconfig;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`kubeconfig ${file}: cannot read it (${(err as Error).message})`);
  }
  try {
    doc = (parse(text) ?? {}) as RawKubeconfig;
  } catch (err) {
    throw new Error(`kubeconfig ${file}: not valid YAML (${(err as Error).message.split('\n')[0]})`);
  }
  const fail = (what: string): never => {
    throw new Error(`kubeconfig ${file}: ${what}`);
  };
  if (typeof doc !== 'object' || Array.isArray(doc)) fail('is not a mapping (apiVersion: v1, kind: Config)');
  const dir = path.dirname(file);
  const rel = (p: string): string => (path.isAbsolute(p) ? p : path.join(dir, p));

  const ctxName = context ?? doc['current-context'] ?? doc.contexts?.[0]?.name;
  if (!ctxName) return fail('no current-context and no contexts; set current-context');
  const ctx = doc.contexts?.find((c) => c.name === ctxName)?.context;
  if (!ctx) return fail(`context "${ctxName}" not found in contexts[]`);
  if (!ctx.cluster) return fail(`context "${ctxName}" names no cluster`);
  const rawCluster = doc.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  const server = str(rawCluster?.server);
  if (!rawCluster || !server) return fail(`cluster "${ctx.cluster}" (of context "${ctxName}") has no server`);
  checkServer(server, (m) => fail(`cluster "${ctx.cluster}": ${m}`));
  const cluster: ClusterEntry = {
    name: ctx.cluster,
    server: server.replace(/\/+$/, ''),
    skipTLSVerify: rawCluster['insecure-skip-tls-verify'] === true,
  };
  const caData = str(rawCluster['certificate-authority-data']);
  const caFile = str(rawCluster['certificate-authority']);
  if (caData) cluster.caData = caData;
  else if (caFile) {
    cluster.caFile = rel(caFile);
    readable(cluster.caFile, `cluster "${ctx.cluster}": certificate-authority`, fail);
  }
  const tlsServerName = str(rawCluster['tls-server-name']);
  if (tlsServerName) cluster.tlsServerName = tlsServerName;
  const proxyUrl = str(rawCluster['proxy-url']);
  if (proxyUrl) {
    if (!/^(https?|socks5h?|socks4a?):\/\//.test(proxyUrl))
      fail(`cluster "${ctx.cluster}": proxy-url "${proxyUrl}" must be http://, https:// or socks5://`);
    cluster.proxyUrl = proxyUrl;
  }

  if (!ctx.user) return fail(`context "${ctxName}" names no user`);
  const rawUser = doc.users?.find((u) => u.name === ctx.user)?.user;
  if (!rawUser) return fail(`user "${ctx.user}" (of context "${ctxName}") not found in users[]`);
  const { user, auth } = normaliseUser(ctx.user, rawUser, rel, (m) => fail(`user "${ctx.user}": ${m}`));
  return {
    describe: `kubeconfig ${file} (context ${ctxName}, user ${ctx.user})`,
    server: cluster.server,
    clusters: [cluster],
    users: [user],
    contexts: [
      {
        name: ctxName,
        cluster: cluster.name,
        user: user.name,
        ...(ctx.namespace ? { namespace: ctx.namespace } : {}),
      },
    ],
    currentContext: ctxName,
    auth,
  };
}

function normaliseUser(
  name: string,
  raw: Record<string, unknown>,
  rel: (p: string) => string,
  fail: (m: string) => never,
): { user: UserEntry; auth: string } {
  const user: UserEntry = { name };
  const auths: string[] = [];
  const token = str(raw.token);
  // kubectl spells it tokenFile; client-node reads only `token-file`, and only once. Both
  // become client-node's tokenFile auth provider, which re-reads the file (a projected
  // token is rotated in place), and credentials.ts re-reads it at once after a 401.
  const tokenFile = str(raw.tokenFile) ?? str(raw['token-file']);
  if (token) {
    user.token = token;
    auths.push('token');
  } else if (tokenFile) {
    const f = rel(tokenFile);
    readable(f, 'tokenFile', fail);
    user.authProvider = { name: 'tokenFile', config: { tokenFile: f } };
    auths.push('tokenFile');
  }
  const certData = str(raw['client-certificate-data']);
  const certFile = str(raw['client-certificate']);
  const keyData = str(raw['client-key-data']);
  const keyFile = str(raw['client-key']);
  if (certData) user.certData = certData;
  else if (certFile) readable((user.certFile = rel(certFile)), 'client-certificate', fail);
  if (keyData) user.keyData = keyData;
  else if (keyFile) readable((user.keyFile = rel(keyFile)), 'client-key', fail);
  const hasCert = !!(user.certData || user.certFile);
  if (hasCert !== !!(user.keyData || user.keyFile))
    fail('a client certificate needs both client-certificate and client-key; fix: add the missing one');
  if (hasCert) auths.push('client certificate');

  if (raw.exec !== undefined && raw.exec !== null) {
    user.exec = normaliseExec(raw.exec, rel, fail);
    auths.push(`exec plugin ${user.exec.command}`);
  }
  const provider = raw['auth-provider'] as { name?: string; config?: Record<string, unknown> } | undefined;
  if (provider) {
    if (provider.name !== 'oidc')
      fail(
        `auth-provider "${String(provider.name)}" is not supported (only oidc; the gcp and azure providers were removed from kubectl); fix: use the provider's exec plugin (gke-gcloud-auth-plugin, kubelogin)`,
      );
    const cfg = provider.config ?? {};
    if (!str(cfg['id-token']) && !str(cfg['refresh-token']))
      fail('auth-provider oidc has neither id-token nor refresh-token; fix: log in with your OIDC helper');
    user.authProvider = { name: 'oidc', config: cfg };
    auths.push('oidc');
  }
  const username = str(raw.username);
  if (username) {
    user.username = username;
    user.password = str(raw.password) ?? '';
    auths.push('basic');
  }
  const as = str(raw.as);
  if (as) user.impersonateUser = as;
  if (auths.length === 0)
    fail(
      'has no credentials (token, tokenFile, client-certificate + client-key, exec or auth-provider); fix: add one',
    );
  return { user, auth: auths.join(' + ') };
}

function normaliseExec(v: unknown, rel: (p: string) => string, fail: (m: string) => never): ExecConfig {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail('exec must be a mapping');
  const e = v as Record<string, unknown>;
  const command = str(e.command);
  if (!command) return fail('exec.command is missing; fix: name the credential plugin, e.g. aws');
  const apiVersion = str(e.apiVersion);
  if (!apiVersion || !EXEC_API_VERSIONS.includes(apiVersion))
    fail(`exec.apiVersion must be one of ${EXEC_API_VERSIONS.join(', ')} (got ${String(e.apiVersion)})`);
  if (e.args !== undefined && (!Array.isArray(e.args) || e.args.some((a) => typeof a !== 'string')))
    fail('exec.args must be a list of strings');
  const env = (e.env ?? []) as { name?: unknown; value?: unknown }[];
  if (!Array.isArray(env) || env.some((x) => typeof x?.name !== 'string' || typeof x?.value !== 'string'))
    fail('exec.env must be a list of {name, value} strings');
  // Like client-go: a command with a slash is relative to the kubeconfig's directory; a
  // bare name is looked up on PATH by the spawn.
  const cmd = command.includes('/') ? rel(command) : command;
  if (cmd.includes('/')) {
    try {
      accessSync(cmd, constants.X_OK);
    } catch {
      fail(`exec.command ${cmd} is not an executable file; fix: install the plugin or correct the path`);
    }
  }
  return {
    apiVersion: apiVersion!,
    command: cmd,
    ...(e.args ? { args: e.args as string[] } : {}),
    // client-go hands every plugin its ExecCredential request; some plugins read it.
    env: [
      ...(env as { name: string; value: string }[]),
      {
        name: 'KUBERNETES_EXEC_INFO',
        value: JSON.stringify({ apiVersion, kind: 'ExecCredential', spec: { interactive: false } }),
      },
    ],
  };
}

/** The in-cluster config of a pod; `root` prefixes the service-account dir (tests). */
export function loadInCluster(root = '', env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const fail = (what: string): never => {
    throw new Error(`in-cluster config: ${what}`);
  };
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port)
    fail(
      'KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (the control plane is not running in a pod); fix: give the Site a kubeconfig',
    );
  const dir = `${root}${SERVICE_ACCOUNT_DIR}`;
  const tokenFile = path.join(dir, 'token');
  const caFile = path.join(dir, 'ca.crt');
  readable(tokenFile, 'service-account token', fail);
  readable(caFile, 'service-account CA', fail);
  const server = `https://${host!.includes(':') ? `[${host}]` : host}:${port}`;
  checkServer(server, fail);
  return {
    describe: `in-cluster config (${server}, token ${tokenFile})`,
    server,
    clusters: [{ name: 'inCluster', server, caFile, skipTLSVerify: false }],
    users: [{ name: 'inClusterUser', authProvider: { name: 'tokenFile', config: { tokenFile } } }],
    contexts: [{ name: 'inClusterContext', cluster: 'inCluster', user: 'inClusterUser' }],
    currentContext: 'inClusterContext',
    auth: 'tokenFile',
  };
}

/** Static parts as a config; the PEMs become client-node's base64 `*Data` fields. */
export function loadStatic(c: KubeConnection): LoadedConfig {
  const fail = (what: string): never => {
    throw new Error(`connection: ${what}`);
  };
  checkServer(c.server, fail);
  if (!c.token && !c.clientCertPem) fail('set token or clientCertPem + clientKeyPem');
  if (!!c.clientCertPem !== !!c.clientKeyPem)
    fail('a client certificate needs both clientCertPem and clientKeyPem');
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const server = c.server.replace(/\/+$/, '');
  return {
    describe: `connection ${server}`,
    server,
    clusters: [
      {
        name: 'static',
        server,
        skipTLSVerify: c.insecureSkipTlsVerify === true,
        ...(c.caCertPem ? { caData: b64(c.caCertPem) } : {}),
        ...(c.tlsServerName ? { tlsServerName: c.tlsServerName } : {}),
      },
    ],
    users: [
      {
        name: 'static',
        ...(c.token ? { token: c.token } : {}),
        ...(c.clientCertPem ? { certData: b64(c.clientCertPem) } : {}),
        ...(c.clientKeyPem ? { keyData: b64(c.clientKeyPem) } : {}),
      },
    ],
    contexts: [{ name: 'static', cluster: 'static', user: 'static' }],
    currentContext: 'static',
    auth: c.token ? 'token' : 'client certificate',
  };
}

export function loadSource(s: KubeSource): LoadedConfig {
  switch (s.kind) {
    case 'kubeconfig':
      return loadKubeconfig(s.path, s.context);
    case 'in-cluster':
      return loadInCluster(s.root);
    case 'static':
      return loadStatic(s.connection);
  }
}
