/**
 * `bulwark agent`: the eBPF node agent as its own process, for a node that
 * is not the control plane's (a Kubernetes node, another host of a site).
 *   bulwark agent --site SITE [--node NAME] [--interval-ms 1000]
 *   bulwark agent manifest --site SITE --image IMAGE [--namespace NS]   DaemonSet YAML for a cluster
 * Runs until SIGINT/SIGTERM; one log line per event worth reading.
 */
import os from 'node:os';
import { renderAgentManifest } from '../../observability/agent/kubernetes-manifest.ts';
import { RemoteAgent } from '../../observability/agent/remote-agent.ts';
import { AGENT_NAME } from '../../observability/agent/report.ts';
import type { ApiClient } from '../client.ts';
import { CliError, EXIT } from '../exit-codes.ts';
import type { Io } from './resources.ts';

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
  await until;
  io.err(`${new Date().toISOString()} stopping: flushing queued reports`);
  await agent.stop();
  const c = agent.counters();
  io.err(
    `${new Date().toISOString()} stopped: ${c.sent} reports sent, ${c.queued} not delivered, ${c.dropped} dropped`,
  );
}

export function cmdAgentManifest(
  io: Io,
  o: {
    site: string | undefined;
    image: string | undefined;
    server: string;
    token: string | undefined;
    namespace: string | undefined;
    intervalMs: number;
  },
): void {
  const site = checkName('site', o.site, 'the Kubernetes site the DaemonSet runs in');
  if (!o.image) {
    throw new CliError(
      'agent manifest needs --image IMAGE (an image with Node.js 24, bpftrace, iproute2, util-linux and bulwark)',
      EXIT.usage,
    );
  }
  if (o.namespace !== undefined) checkName('namespace', o.namespace, 'a Kubernetes namespace name');
  io.out(
    renderAgentManifest({
      site,
      image: o.image,
      server: o.server,
      ...(o.token ? { token: o.token } : {}),
      ...(o.namespace ? { namespace: o.namespace } : {}),
      intervalMs: o.intervalMs,
    }),
  );
}
