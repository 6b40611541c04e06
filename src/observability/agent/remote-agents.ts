/**
 * The control plane's side of node agents that run elsewhere (`bulwark
 * agent` on a Kubernetes node or another host): it hands them the site's
 * inventory, takes their reports, attributes each flow with the inventory it
 * holds itself, and keeps each node's last status so the API says which
 * nodes report, which stopped (no report for 3 intervals) and why.
 */
import { EndpointResolver, type Inventory } from './attribution.ts';
import type { AgentFlow, AgentInterval, AgentStatus } from './node-agent.ts';
import type { AgentReport } from './report.ts';

export interface RemoteAgentStatus extends AgentStatus {
  site: string;
  node: string;
  lastReportAt: string;
  reports: number;
}

/** A node whose last report is older than this many of its intervals is reported as gone quiet. */
const STALE_INTERVALS = 3;

export class RemoteAgents {
  readonly #nodes = new Map<string, { status: RemoteAgentStatus; at: number; intervalMs: number }>();

  /**
   * Attribute a validated report's flows with the site inventory. Returns the
   * interval for the site's topology, or undefined for a status-only report.
   */
  ingest(report: AgentReport, inventory: Inventory, now = Date.now()): AgentInterval | undefined {
    const key = `${report.site}/${report.node}`;
    const prev = this.#nodes.get(key);
    const intervalMs = report.interval?.intervalMs ?? prev?.intervalMs ?? 1000;
    this.#nodes.set(key, {
      at: now,
      intervalMs,
      status: {
        ...report.status,
        site: report.site,
        node: report.node,
        lastReportAt: new Date(now).toISOString(),
        reports: (prev?.status.reports ?? 0) + 1,
        ...(report.interval ? { lastIntervalAt: report.interval.at } : {}),
      },
    });
    if (!report.interval) return undefined;
    const resolver = new EndpointResolver(inventory);
    const flows: AgentFlow[] = [];
    for (const f of report.interval.flows) {
      const to = resolver.server(f.server, f.port);
      const from = resolver.client(f.client, [], to);
      // The node's own traffic with nothing of the site at either end is not the topology's.
      if (from.kind === 'external' && to.kind === 'external') continue;
      // JSON has no undefined: an absent or null RTT is "no sample".
      const rttUs = typeof f.rttUs === 'number' ? f.rttUs : undefined;
      flows.push({ ...f, rttUs, clientPids: [], from, to });
    }
    return { at: report.interval.at, intervalMs: report.interval.intervalMs, flows };
  }

  /** Every node that reported, newest state first; a silent node says since when. */
  list(site?: string, now = Date.now()): RemoteAgentStatus[] {
    const out: RemoteAgentStatus[] = [];
    for (const { status, at, intervalMs } of this.#nodes.values()) {
      if (site !== undefined && status.site !== site) continue;
      const silentMs = now - at;
      out.push(
        silentMs > STALE_INTERVALS * Math.max(intervalMs, 1000)
          ? {
              ...status,
              state: 'failed',
              reason: `no report from node ${status.node} for ${Math.round(silentMs / 1000)} s (last state: ${status.state})`,
            }
          : status,
      );
    }
    return out.sort((a, b) => a.site.localeCompare(b.site) || a.node.localeCompare(b.node));
  }

  /** True when some node of the site reports a running agent (L4 evidence exists for diagnosis). */
  running(site: string, now = Date.now()): boolean {
    return this.list(site, now).some((s) => s.state === 'running');
  }
}
