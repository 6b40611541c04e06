/**
 * `bulwark agent`: the eBPF node agent as its own process, for a node that
 * is not the control plane's (a Kubernetes node, another host of a site).
 *   bulwark agent --site SITE [--node NAME] [--interval-ms 1000]
 *   bulwark agent manifest --site SITE --image IMAGE [--namespace NS]   DaemonSet YAML for a cluster
 *       [--agent-token bwk_... | --create-agent-token]
 * Runs until SIGINT/SIGTERM, or until the control plane refuses its token
 * or its certificate is not trusted (exit 6: restarting cannot fix that).
 */
import os from 'node:os';
import { renderAgentManifest } from '../../observability/agent/kubernetes-manifest.ts';
import { RemoteAgent } from '../../observability/agent/remote-agent.ts';
import { AGENT_NAME } from '../../observability/agent/report.ts';
import { isLoopbackHost } from '../../controlplane/tls/listen-policy.ts';
import type { ApiClient } from '../client.ts';
import { CliError, EXIT } from '../exit-codes.ts';
import type { Io } from './resources.ts';
import { createAgentToken } from './tokens.ts';

function checkName(flag: string, v: string | undefined, fix: string): string {
  if (!v) throw new CliError(`agent needs --${flag} (${fix})`, EXIT.usage);
  if (!AGENT_NAME.test(v)) {
    throw new CliError(`--${flag} ${v}: use lowercase letters, digits, dots and dashes (${fix})`, EXIT.usage);
  }
  return v;
}

/** The node's name as the control plane will list it: the flag, BULWARK_NODE_NAME (DaemonSet), or the host name. */
export function nodeName(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const raw = flag ?? env.BULWARK_NODE_NAME ?? os.hostname().toLowerCase();
  return checkName('node', raw, 'the node name; default BULWARK_NODE_NAME or the host name');
}

export async function cmdAgent(
  api: ApiClient,
  io: Io,
  o: { site: string | undefined; node: string | undefined; intervalMs: number },
  until: Promise<void>,
): Promise<void> {
  const site = checkName('site', o.site, 'the site this node belongs to, as in `bulwark get sites`');
  const node = nodeName(o.node);
  const agent = new RemoteAgent({
    site,
    node,
    api,
    intervalMs: o.intervalMs,
    log: (line) => io.err(`${new Date().toISOString()} ${line}`),
  });
  const st = await agent.start();
  io.err(`${new Date().toISOString()} reporting to ${api.server} as ${site}/${node} (state ${st.state})`);
  const refused = await Promise.race([until.then(() => undefined), agent.credentialsRefused]);
  io.err(`${new Date().toISOString()} stopping${refused ? '' : ': flushing queued reports'}`);
  await agent.stop(refused ? 0 : undefined);
  const c = agent.counters();
  io.err(
    `${new Date().toISOString()} stopped: ${c.sent} reports sent, ${c.queued} not delivered, ${c.dropped} dropped`,
  );
  if (refused) throw new CliError(refused.message, EXIT.unauthorized);
}

/** A token name for the DaemonSet of `site` that is new each time (a re-render does not collide). */
export function daemonSetTokenName(site: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return `ds-${site.slice(0, 40).replace(/[.-]+$/, '')}-${stamp}`;
}

/**
 * The manifest never carries the CLI's own token (usually admin): either an
 * agent token given with --agent-token, one created now with
 * --create-agent-token, or a placeholder for the operator to fill.
 */
export async function cmdAgentManifest(
  api: ApiClient,
  io: Io,
  o: {
    site: string | undefined;
    image: string | undefined;
    agentToken: string | undefined;
    createAgentToken: boolean;
    namespace: string | undefined;
    intervalMs: number;
  },
): Promise<void> {
  const site = checkName('site', o.site, 'the Kubernetes site the DaemonSet runs in');
  if (!o.image) {
    throw new CliError(
      'agent manifest needs --image IMAGE (an image with Node.js 24, bpftrace, iproute2, util-linux and bulwark)',
      EXIT.usage,
    );
  }
  if (o.namespace !== undefined) checkName('namespace', o.namespace, 'a Kubernetes namespace name');
  if (o.agentToken !== undefined && o.createAgentToken) {
    throw new CliError('give --agent-token or --create-agent-token, not both', EXIT.usage);
  }
  const server = new URL(api.server);
  if (server.protocol === 'http:' && !isLoopbackHost(server.hostname)) {
    throw new CliError(
      `--server ${api.server}: the agents would send their token in clear text; use the control plane's https:// URL ` +
        '(bulwark server --tls-cert/--tls-key or --tls-self-signed)',
      EXIT.usage,
    );
  }
  let token = o.agentToken;
  if (o.createAgentToken) {
    const t = await createAgentToken(api, daemonSetTokenName(site));
    io.err(
      `created agent token '${t.name}' (${t.id}) for the DaemonSet; revoke it with: bulwark tokens revoke ${t.id}`,
    );
    token = t.secret;
  } else if (token === undefined) {
    io.err(
      'note: the Secret holds a placeholder; put an agent token in it (bulwark tokens create --scope agent --name NAME), ' +
        'or render with --create-agent-token',
    );
  }
  io.out(
    renderAgentManifest({
      site,
      image: o.image,
      server: api.server,
      ...(token ? { token } : {}),
      ...(api.trust?.fingerprint ? { tlsFingerprint: api.trust.fingerprint } : {}),
      ...(api.trust?.ca ? { caPem: api.trust.ca } : {}),
      ...(o.namespace ? { namespace: o.namespace } : {}),
      intervalMs: o.intervalMs,
    }),
  );
}
