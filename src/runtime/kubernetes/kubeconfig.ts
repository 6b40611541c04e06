/**
 * How the driver reaches an API server: either a kubeconfig file (its current
 * context) or the parts directly. Only what Bulwark needs is read: server, CA,
 * and a bearer token or a client certificate.
 */
import { readFileSync } from 'node:fs';
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
  /** Only for tests against throwaway clusters. @default false */
  insecureSkipTlsVerify?: boolean;
}

interface KubeconfigFile {
  'current-context'?: string;
  contexts?: { name: string; context: { cluster: string; user: string } }[];
  clusters?: {
    name: string;
    cluster: {
      server: string;
      'certificate-authority-data'?: string;
      'certificate-authority'?: string;
      'insecure-skip-tls-verify'?: boolean;
    };
  }[];
  users?: {
    name: string;
    user: {
      token?: string;
      tokenFile?: string;
      'client-certificate-data'?: string;
      'client-key-data'?: string;
      'client-certificate'?: string;
      'client-key'?: string;
    };
  }[];
}

const b64 = (s: string): string => Buffer.from(s, 'base64').toString('utf8');

/** Read the current context of a kubeconfig file; errors name the file and the missing field. */
export function loadKubeconfig(file: string, context?: string): KubeConnection {
  let doc: KubeconfigFile;
  try {
    doc = parse(readFileSync(file, 'utf8')) as KubeconfigFile;
  } catch (err) {
    throw new Error(`kubeconfig ${file}: cannot read it (${(err as Error).message})`);
  }
  const fail = (what: string): never => {
    throw new Error(`kubeconfig ${file}: ${what}`);
  };
  const rel = (p: string): string => (path.isAbsolute(p) ? p : path.join(path.dirname(file), p));
  const ctxName = context ?? doc['current-context'] ?? doc.contexts?.[0]?.name;
  if (!ctxName) fail('no current-context and no contexts; set current-context');
  const ctx = doc.contexts?.find((c) => c.name === ctxName)?.context;
  if (!ctx) return fail(`context "${ctxName}" not found in contexts[]`);
  const cluster = doc.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  if (!cluster?.server) return fail(`cluster "${ctx.cluster}" (of context "${ctxName}") has no server`);
  const user = doc.users?.find((u) => u.name === ctx.user)?.user ?? {};
  const conn: KubeConnection = { server: cluster.server };
  if (cluster['certificate-authority-data']) conn.caCertPem = b64(cluster['certificate-authority-data']);
  else if (cluster['certificate-authority'])
    conn.caCertPem = readFileSync(rel(cluster['certificate-authority']), 'utf8');
  if (cluster['insecure-skip-tls-verify']) conn.insecureSkipTlsVerify = true;
  if (user.token) conn.token = user.token;
  else if (user.tokenFile) conn.token = readFileSync(rel(user.tokenFile), 'utf8').trim();
  if (user['client-certificate-data']) conn.clientCertPem = b64(user['client-certificate-data']);
  else if (user['client-certificate'])
    conn.clientCertPem = readFileSync(rel(user['client-certificate']), 'utf8');
  if (user['client-key-data']) conn.clientKeyPem = b64(user['client-key-data']);
  else if (user['client-key']) conn.clientKeyPem = readFileSync(rel(user['client-key']), 'utf8');
  if (!conn.token && !conn.clientCertPem)
    fail(`user "${ctx.user}" has neither token/tokenFile nor a client certificate`);
  return conn;
}
