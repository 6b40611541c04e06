/**
 * Per-request credentials for the API client, from @kubernetes/client-node's KubeConfig:
 * every request asks it again (`applyToHTTPSOptions`), so an exec plugin is re-run when its
 * ExecCredential expires, a token file is re-read (client-node: every 60 s, like client-go)
 * and an OIDC id-token is refreshed. A 401 drops everything cached (`invalidate`): the next
 * request re-reads the kubeconfig, the token file and re-runs the plugin, so a rotated and
 * revoked token costs one retried request, not a minute of failures.
 *
 * The HTTP transport stays client.ts's own (streaming watches and logs, our timeouts), so
 * this file turns what client-node computed into headers and a keep-alive https.Agent per
 * distinct TLS identity (CA, client certificate, tls-server-name). With a proxy-url the
 * agent is client-node's own (hpagent / socks-proxy-agent), which opens a tunnel per request.
 *
 * client-node is imported on first use: it costs about a second to load, and a control
 * plane without Kubernetes sites should not pay it at start.
 */
import { createHash } from 'node:crypto';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { loadSource, type KubeSource, type LoadedConfig } from './kubeconfig.ts';

export interface RequestAuth {
  headers: Record<string, string>;
  agent: https.Agent;
  /** Pass back to invalidate() after a 401, so a burst of 401s reloads once. */
  generation: number;
}

export interface KubeCredentialsOptions {
  /** An exec plugin that has not answered by then fails the request (it is not killed). @default 30000 */
  execTimeoutMs?: number;
  /** Sockets per agent. @default 16 */
  maxSockets?: number;
}

let clientNode: Promise<typeof import('@kubernetes/client-node')> | undefined;
const loadClientNode = (): Promise<typeof import('@kubernetes/client-node')> =>
  (clientNode ??= import('@kubernetes/client-node'));

/** Header values must be one line: a token file written with `echo` ends in a newline. */
function headerValue(name: string, v: unknown, describe: string): string {
  const s = String(v).trim();
  if (/[\r\n\0]/.test(s))
    throw new Error(`${describe}: the ${name} header would span lines; fix: the token must be one line`);
  return s;
}

export class KubeCredentials {
  readonly server: string;
  /** `kubeconfig /path (context c, user u)`, for messages; never a secret. */
  readonly describe: string;
  /** token, tokenFile, exec plugin <cmd>, client certificate, oidc, ... */
  readonly auth: string;
  private readonly source: KubeSource;
  private readonly execTimeoutMs: number;
  private readonly maxSockets: number;
  private loaded: LoadedConfig | undefined;
  private kc: Promise<KubeConfig> | undefined;
  private generation = 0;
  private agent: { key: string; agent: https.Agent } | undefined;
  private readonly retired = new Set<https.Agent>();
  private readonly proxyAgents = new Set<https.Agent>();
  private closed = false;

  /** Validates the source now (sync, no request); client-node is loaded at the first request. */
  constructor(source: KubeSource, opts: KubeCredentialsOptions = {}) {
    this.source = source;
    this.loaded = loadSource(source);
    this.server = this.loaded.server;
    this.describe = this.loaded.describe;
    this.auth = this.loaded.auth;
    this.execTimeoutMs = opts.execTimeoutMs ?? 30_000;
    this.maxSockets = opts.maxSockets ?? 16;
  }

  private config(): Promise<KubeConfig> {
    if (this.kc) return this.kc;
    const p = (async () => {
      // After an invalidate the source is read again: the kubeconfig may have been rewritten.
      const loaded = this.loaded ?? loadSource(this.source);
      this.loaded = undefined;
      const { KubeConfig } = await loadClientNode();
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: loaded.clusters,
        users: loaded.users,
        contexts: loaded.contexts,
        currentContext: loaded.currentContext,
      });
      return kc;
    })();
    this.kc = p;
    // A failed load is not kept: the next request tries again.
    p.catch(() => {
      if (this.kc === p) this.kc = undefined;
    });
    return p;
  }

  /** Headers and agent for one request. Rejects with a message naming the source. */
  async forRequest(): Promise<RequestAuth> {
    if (this.closed) throw new Error(`${this.describe}: the client is closed`);
    const generation = this.generation;
    const opts: https.RequestOptions = { headers: {} };
    let proxied = false;
    try {
      const kc = await this.config();
      proxied = !!kc.getCurrentCluster()?.proxyUrl;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        kc.applyToHTTPSOptions(opts),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new Error(
                  `no credentials within ${this.execTimeoutMs} ms (is the plugin waiting for input?)`,
                ),
              ),
            this.execTimeoutMs,
          );
        }),
      ]).finally(() => clearTimeout(timer));
    } catch (err) {
      const msg = (err as Error).message?.trim() || 'failed without a message';
      throw new Error(
        msg.startsWith(this.describe)
          ? msg
          : `${this.describe}: cannot get credentials (${this.auth}): ${msg}`,
      );
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) {
      if (v === undefined) continue;
      headers[k.toLowerCase()] = headerValue(k, v, this.describe);
    }
    // client-node puts basic credentials in `auth` (user:password), not in a header.
    if (typeof opts.auth === 'string' && !headers.authorization)
      headers.authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    let agent: https.Agent;
    if (proxied) {
      // client-node's proxy agent (cached per cluster and user in its KubeConfig).
      agent = opts.agent as https.Agent;
      this.proxyAgents.add(agent);
    } else agent = this.agentFor(opts);
    return { headers, agent, generation };
  }

  /** One keep-alive agent per TLS identity; a changed identity (rotated client cert) gets a new one. */
  private agentFor(o: https.RequestOptions): https.Agent {
    const tls = {
      ...(o.ca ? { ca: o.ca } : {}),
      ...(o.cert ? { cert: o.cert } : {}),
      ...(o.key ? { key: o.key } : {}),
      ...(o.servername ? { servername: o.servername } : {}),
      rejectUnauthorized: o.rejectUnauthorized !== false,
    };
    const h = createHash('sha256');
    for (const v of [tls.ca, tls.cert, tls.key, tls.servername, String(tls.rejectUnauthorized)])
      h.update(String(v ?? '')).update('\0');
    const key = h.digest('hex');
    if (this.agent?.key === key) return this.agent.agent;
    if (this.agent) this.retire(this.agent.agent);
    const agent = new https.Agent({ keepAlive: true, maxSockets: this.maxSockets, ...tls });
    this.agent = { key, agent };
    return agent;
  }

  /** An old identity's agent is closed after in-flight requests had time to finish. */
  private retire(agent: https.Agent): void {
    this.retired.add(agent);
    setTimeout(() => {
      agent.destroy();
      this.retired.delete(agent);
    }, 60_000).unref();
  }

  /** After a 401: forget cached credentials so the next request loads them afresh. */
  invalidate(generation: number): void {
    if (generation !== this.generation) return; // someone else already did
    this.generation++;
    this.kc = undefined;
  }

  close(): void {
    this.closed = true;
    this.agent?.agent.destroy();
    for (const a of [...this.retired, ...this.proxyAgents]) a.destroy();
    this.retired.clear();
    this.proxyAgents.clear();
  }
}
