/**
 * What each topology node is, in words. The API's nodes are apps, instances
 * and "external" endpoints; the last kind covers three different things the
 * graph must not leave unexplained:
 * - the site gateway (the builder gives it the site: `site` set), through
 *   which every request from outside reaches an app;
 * - clients: a bare address `external:<ip>` is where requests came from
 *   (loopback: programs on this host, e.g. curl or a load generator);
 * - external services: `external:<host>:<port>` is a server outside the
 *   platform that an instance connects to.
 */
import type { TopologyEdge, TopologyMetrics, TopologyNode } from '../api/types.ts';
import type { Translate } from '../i18n/translate.ts';

export type NodeRole = 'service' | 'instance' | 'gateway' | 'local-clients' | 'clients' | 'external-service';

export const NODE_ROLES: readonly NodeRole[] = [
  'service',
  'instance',
  'gateway',
  'local-clients',
  'clients',
  'external-service',
];

export interface NodeExplanation {
  role: NodeRole;
  /** The name drawn in the box. */
  title: string;
  /** The line under it (an address, the site), when the title alone does not say it. */
  subtitle?: string;
  /** One sentence: what this node is and what its edges mean. */
  description: string;
}

function isLoopback(host: string): boolean {
  return /^127\./.test(host) || host === '::1' || host === 'localhost' || /^::ffff:127\./.test(host);
}

/** `external:` address split into host and port (`10.0.0.5:5432`, `[::1]:80`, `::1`, `10.0.0.5`). */
export function splitAddress(addr: string): { host: string; port?: string } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(addr);
  if (v6) return { host: v6[1]!, ...(v6[2] ? { port: v6[2] } : {}) };
  const v4 = /^([^:]+):(\d+)$/.exec(addr);
  if (v4) return { host: v4[1]!, port: v4[2]! };
  return { host: addr };
}

export function roleOf(n: TopologyNode): NodeRole {
  if (n.kind === 'app') return 'service';
  if (n.kind === 'instance') return 'instance';
  if (n.site) return 'gateway';
  const { host, port } = splitAddress(n.id.replace(/^external:/, ''));
  if (port) return 'external-service';
  return isLoopback(host) ? 'local-clients' : 'clients';
}

export function explainNode(n: TopologyNode, t: Translate): NodeExplanation {
  const role = roleOf(n);
  const addr = n.id.replace(/^external:/, '');
  switch (role) {
    case 'service':
      return {
        role,
        title: n.label,
        description: t('topology.role.service.about', { project: n.project ?? '', app: n.app ?? n.label }),
      };
    case 'instance':
      return {
        role,
        title: n.label,
        description: t('topology.role.instance.about', { app: n.parent?.replace(/^app:/, '') ?? '' }),
      };
    case 'gateway':
      return {
        role,
        title: t('topology.role.gateway'),
        subtitle: addr.includes(':') ? `${n.site ?? ''} · ${addr}` : (n.site ?? ''),
        description: t('topology.role.gateway.about', { site: n.site ?? '', label: n.label }),
      };
    case 'local-clients':
      return {
        role,
        title: t('topology.role.local-clients'),
        subtitle: addr,
        description: t('topology.role.local-clients.about', { address: addr }),
      };
    case 'clients':
      return {
        role,
        title: t('topology.role.clients'),
        subtitle: addr,
        description: t('topology.role.clients.about', { address: addr }),
      };
    case 'external-service':
      return {
        role,
        title: t('topology.role.external-service'),
        subtitle: addr,
        description: t('topology.role.external-service.about', { address: addr }),
      };
  }
}

/**
 * What an endpoint outside the platform did, from its edges: the API measures
 * apps and instances, so an external node's own metrics are zero while its
 * edges carry the requests it sent or answered.
 */
export function endpointMetrics(n: TopologyNode, edges: readonly TopologyEdge[]): TopologyMetrics {
  if (n.kind !== 'external') return n.metrics;
  const mine = edges.filter((e) => e.from === n.id || e.to === n.id);
  const rps = mine.reduce((s, e) => s + e.metrics.rps, 0);
  const max = (f: (e: TopologyEdge) => number | null): number | null =>
    mine.reduce<number | null>((m, e) => {
      const v = f(e);
      return v === null ? m : m === null ? v : Math.max(m, v);
    }, null);
  return {
    rps,
    errorRate: rps > 0 ? mine.reduce((s, e) => s + e.metrics.errorRate * e.metrics.rps, 0) / rps : 0,
    p50Ms: max((e) => e.metrics.p50Ms),
    p99Ms: max((e) => e.metrics.p99Ms),
  };
}
