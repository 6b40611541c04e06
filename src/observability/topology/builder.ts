/**
 * Builds the Topology document from one merged window of snapshots and the
 * runtime's view of instances. Pure: the service feeds it, tests call it
 * with hand-made snapshots.
 */
import { mergeInto, percentile, type SparseHistogram } from './latency.ts';
import { appNodeId, instanceNodeId } from './l7-collector.ts';
import type { L4Stats, L7Stats, ResourceStats, Snapshot } from './snapshot.ts';
import type { Health, Topology, TopologyEdge, TopologyNode } from './types.ts';

export interface TopologyInstance {
  id: string;
  project: string;
  app: string;
  site: string;
  phase: string;
  ready: boolean;
}

export interface TopologyInput {
  nowMs: number;
  /** Requested window; the document reports what the history actually covered (<= this). */
  windowSeconds: number;
  merged: Snapshot;
  instances: TopologyInstance[];
  apps: { project: string; app: string }[];
  site: string;
  gateway: { nodeId: string; label: string };
  filter?: { project?: string };
}

/** Health thresholds, in one place so the docs can quote them. */
export const HEALTH = {
  /** Error share above which an edge or node is degraded / down. */
  degradedErrorRate: 0.01,
  downErrorRate: 0.5,
  /** Node error share above which it is degraded (callers may retry some). */
  nodeDegradedErrorRate: 0.05,
  /** Share of connects refused or timed out (of at least 3) that marks an edge degraded. */
  degradedConnectFailureRate: 0.1,
  /** Retransmissions per second on an edge that mark it degraded. */
  degradedRetransmitsPerSecond: 1,
  /** Throttled share of CPU periods, or memory share of the limit, that marks an instance degraded. */
  degradedSaturation: 0.8,
} as const;

const round = (n: number, digits = 3): number => Math.round(n * 10 ** digits) / 10 ** digits;

function l7Health(requests: number, errors: number, degradedAt: number): Health {
  if (requests === 0) return 'unknown';
  const r = errors / requests;
  if (r > HEALTH.downErrorRate) return 'down';
  if (r > degradedAt) return 'degraded';
  return 'ok';
}

function l4Health(e: L4Stats, seconds: number): Health {
  const attempts = e.opened + e.failed;
  const failing = e.failed >= 3 && e.failed / Math.max(1, attempts) > HEALTH.degradedConnectFailureRate;
  if (failing || e.retransmits / seconds > HEALTH.degradedRetransmitsPerSecond) return 'degraded';
  if (e.established > 0 || e.opened > 0 || e.bytesToServer > 0) return 'ok';
  return 'unknown';
}

const worst = (a: Health, b: Health): Health => {
  const order: Health[] = ['unknown', 'ok', 'degraded', 'down'];
  return order.indexOf(a) >= order.indexOf(b) ? a : b;
};

export function saturationOf(r: ResourceStats | undefined): number | null {
  if (!r) return null;
  const mem = r.memoryBytes !== null && r.memoryLimitBytes ? r.memoryBytes / r.memoryLimitBytes : null;
  const vals = [mem, r.throttled].filter((v): v is number => v !== null);
  return vals.length > 0 ? round(Math.max(...vals)) : null;
}

interface Inbound {
  requests: number;
  errors: number;
  latency: SparseHistogram;
}

export function buildTopology(input: TopologyInput): Topology {
  const { merged } = input;
  const seconds = Math.max(1, merged.spanMs / 1000);
  const project = input.filter?.project;
  const inProject = (p: string | undefined): boolean => !project || p === project;

  const nodes = new Map<string, TopologyNode>();
  const inbound = new Map<string, Inbound>();
  const addInbound = (id: string, e: L7Stats): void => {
    let t = inbound.get(id);
    if (!t) {
      t = { requests: 0, errors: 0, latency: new Map() };
      inbound.set(id, t);
    }
    t.requests += e.requests;
    t.errors += e.errors;
    mergeInto(t.latency, e.latency);
  };
  for (const e of merged.l7.values()) addInbound(e.to, e);

  const metricsOf = (id: string): TopologyNode['metrics'] => {
    const t = inbound.get(id);
    if (!t) return { rps: 0, errorRate: 0, p50Ms: null, p99Ms: null, requests: 0, errors: 0 };
    return {
      rps: round(t.requests / seconds),
      errorRate: t.requests > 0 ? round(t.errors / t.requests, 4) : 0,
      p50Ms: percentile(t.latency, 50),
      p99Ms: percentile(t.latency, 99),
      requests: t.requests,
      errors: t.errors,
    };
  };

  // Instances first, so app nodes can roll their health and resources up.
  const byApp = new Map<string, TopologyNode[]>();
  for (const inst of input.instances) {
    if (!inProject(inst.project)) continue;
    const id = instanceNodeId(inst.id);
    const r = merged.resources.get(inst.id);
    const m = metricsOf(id);
    let health: Health;
    if (inst.phase === 'failed' || inst.phase === 'backoff' || inst.phase === 'quarantined') health = 'down';
    else if (!inst.ready) health = 'degraded';
    else health = worst('ok', l7Health(m.requests ?? 0, m.errors ?? 0, HEALTH.nodeDegradedErrorRate));
    const saturation = saturationOf(r);
    if (health === 'ok' && saturation !== null && saturation > HEALTH.degradedSaturation) health = 'degraded';
    const node: TopologyNode = {
      id,
      kind: 'instance',
      label: inst.id,
      project: inst.project,
      app: inst.app,
      site: inst.site,
      instance: inst.id,
      parent: appNodeId(inst.project, inst.app),
      health,
      metrics: {
        ...m,
        cpu: r?.cpu ?? null,
        memoryBytes: r?.memoryBytes ?? null,
        saturation,
      },
    };
    nodes.set(id, node);
    const list = byApp.get(node.parent!) ?? [];
    list.push(node);
    byApp.set(node.parent!, list);
  }
  const apps = new Map<string, { project: string; app: string }>();
  for (const a of input.apps) apps.set(appNodeId(a.project, a.app), a);
  for (const i of input.instances) apps.set(appNodeId(i.project, i.app), { project: i.project, app: i.app });
  for (const [id, a] of apps) {
    if (!inProject(a.project)) continue;
    const members = byApp.get(id) ?? [];
    const m = metricsOf(id);
    let health: Health = 'unknown';
    if (members.length > 0) {
      const ready = members.filter((n) => n.health !== 'down' && n.health !== 'unknown').length;
      health = ready === 0 ? 'down' : members.some((n) => n.health !== 'ok') ? 'degraded' : 'ok';
      const traffic = l7Health(m.requests ?? 0, m.errors ?? 0, HEALTH.nodeDegradedErrorRate);
      if (traffic !== 'unknown' && health !== 'down')
        health = worst(health, traffic === 'down' ? 'degraded' : traffic);
    }
    const sum = (f: (n: TopologyNode) => number | null | undefined): number | null => {
      const vals = members.map(f).filter((v): v is number => typeof v === 'number');
      return vals.length > 0 ? round(vals.reduce((s, v) => s + v, 0)) : null;
    };
    const sats = members.map((n) => n.metrics.saturation).filter((v): v is number => typeof v === 'number');
    nodes.set(id, {
      id,
      kind: 'app',
      label: `${a.project}/${a.app}`,
      project: a.project,
      app: a.app,
      site: input.site,
      health,
      metrics: {
        ...m,
        cpu: sum((n) => n.metrics.cpu),
        memoryBytes: sum((n) => n.metrics.memoryBytes),
        saturation: sats.length > 0 ? Math.max(...sats) : null,
      },
    });
  }

  const edges = new Map<string, TopologyEdge>();
  const known = (id: string): boolean => nodes.has(id);
  const ensureExternal = (id: string): void => {
    if (nodes.has(id) || id.startsWith('app:') || id.startsWith('instance:')) return;
    const isGateway = id === input.gateway.nodeId;
    nodes.set(id, {
      id,
      kind: 'external',
      label: isGateway ? input.gateway.label : id.slice('external:'.length),
      ...(isGateway ? { site: input.site } : {}),
      health: 'unknown',
      metrics: { ...metricsOf(id) },
    });
  };
  // An app or instance end must be a node of this document (not another project's, not a deleted app).
  const present = (id: string): boolean =>
    nodes.has(id) || !(id.startsWith('app:') || id.startsWith('instance:'));
  const keep = (from: string, to: string): boolean => {
    // With a project filter, an edge stays when one end is in the project (the other may be external).
    if (!project) return true;
    return known(from) || known(to);
  };

  for (const e of merged.l7.values()) {
    if (!keep(e.from, e.to)) continue;
    if (!present(e.from) || !present(e.to)) continue;
    ensureExternal(e.from);
    ensureExternal(e.to);
    const id = `${e.from}->${e.to}`;
    edges.set(id, {
      id,
      from: e.from,
      to: e.to,
      layers: ['l7'],
      health: l7Health(e.requests, e.errors, HEALTH.degradedErrorRate),
      metrics: {
        rps: round(e.requests / seconds),
        errorRate: e.requests > 0 ? round(e.errors / e.requests, 4) : 0,
        p50Ms: percentile(e.latency, 50),
        p99Ms: percentile(e.latency, 99),
        requests: e.requests,
        errors: e.errors,
      },
    });
  }
  for (const e of merged.l4.values()) {
    if (!keep(e.from, e.to) || !present(e.from) || !present(e.to)) continue;
    ensureExternal(e.from);
    ensureExternal(e.to);
    const id = `${e.from}->${e.to}`;
    const l4 = {
      connections: e.established,
      retransmits: e.retransmits,
      rttMs: e.rttN > 0 ? round(e.rttUsSum / e.rttN / 1000) : null,
      resets: e.resets,
      opened: e.opened,
      failed: e.failed,
      bytesToServer: e.bytesToServer,
      bytesToClient: e.bytesToClient,
    };
    const existing = edges.get(id);
    if (existing) {
      existing.layers = ['l7', 'l4'];
      existing.metrics = { ...existing.metrics, ...l4 };
      existing.health = worst(existing.health, l4Health(e, seconds));
      continue;
    }
    edges.set(id, {
      id,
      from: e.from,
      to: e.to,
      layers: ['l4'],
      health: l4Health(e, seconds),
      metrics: { rps: 0, errorRate: 0, p50Ms: null, p99Ms: null, ...l4 },
    });
  }
  // External nodes take the health of the edges that touch them.
  for (const n of nodes.values()) {
    if (n.kind !== 'external') continue;
    let h: Health = 'unknown';
    for (const e of edges.values()) if (e.from === n.id || e.to === n.id) h = worst(h, e.health);
    n.health = h;
  }
  return {
    at: new Date(input.nowMs).toISOString(),
    windowSeconds: Math.round(Math.min(input.windowSeconds, seconds)),
    nodes: [...nodes.values()].sort((a, b) => a.id.localeCompare(b.id)),
    edges: [...edges.values()].sort((a, b) => a.id.localeCompare(b.id)),
  };
}
