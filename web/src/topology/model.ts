/**
 * What the topology page draws from a Topology snapshot: filtered by project
 * and site, and (by default) with instances folded into their app so the
 * graph shows services; edges folded the same way add their rates.
 */
import type { Health, Topology, TopologyEdge, TopologyNode } from '../api/types.ts';

export interface GraphFilter {
  project?: string;
  site?: string;
  /** Draw instances as their own nodes instead of folding them into their app. */
  instances?: boolean;
  /** Also draw connections seen only at L4 (e.g. every instance's connections to the site gateway). */
  l4?: boolean;
}

const RANK: Record<Health, number> = { unknown: 0, ok: 1, degraded: 2, down: 3 };
export const worst = (a: Health, b: Health): Health => (RANK[a] >= RANK[b] ? a : b);

export function viewGraph(t: Topology, f: GraphFilter): { nodes: TopologyNode[]; edges: TopologyEdge[] } {
  const keep = (n: TopologyNode): boolean =>
    (!f.project || n.kind === 'external' || n.project === f.project) &&
    (!f.site || n.kind === 'external' || n.kind === 'app' || n.site === f.site);
  const byId = new Map(t.nodes.map((n) => [n.id, n]));
  // Where each node id ends up in the drawn graph.
  const target = new Map<string, string>();
  for (const n of t.nodes) {
    if (!keep(n)) continue;
    if (n.kind === 'instance' && !f.instances && n.parent && byId.has(n.parent)) target.set(n.id, n.parent);
    else if (n.kind === 'app' && f.instances && t.nodes.some((c) => c.parent === n.id)) continue;
    else target.set(n.id, n.id);
  }
  const nodes = [...new Set(target.values())].map((id) => byId.get(id)!).filter((n) => keep(n));
  // The API reports each call twice: app -> app and (caller instance) -> callee instance. Folded, the
  // instance edges would count the same requests again, so they only fill pairs no app edge covers
  // (e.g. L4-only flows).
  const isInst = (id: string): boolean => byId.get(id)?.kind === 'instance';
  const wanted = f.l4 ? t.edges : t.edges.filter((e) => e.layers.length === 0 || e.layers.includes('l7'));
  const direct = f.instances ? [] : wanted.filter((e) => !isInst(e.from) && !isInst(e.to));
  const covered = new Set(direct.map((e) => `${target.get(e.from)}->${target.get(e.to)}`));
  const folded = f.instances
    ? wanted
    : wanted.filter(
        (e) => (isInst(e.from) || isInst(e.to)) && !covered.has(`${target.get(e.from)}->${target.get(e.to)}`),
      );
  const merged = new Map<string, TopologyEdge>();
  for (const e of [...direct, ...folded]) {
    const from = target.get(e.from);
    const to = target.get(e.to);
    if (!from || !to || from === to) continue;
    const id = `${from}->${to}`;
    const prev = merged.get(id);
    if (!prev) {
      merged.set(id, { ...e, id, from, to, metrics: { ...e.metrics } });
      continue;
    }
    const rps = prev.metrics.rps + e.metrics.rps;
    prev.metrics = {
      ...prev.metrics,
      rps,
      errorRate:
        rps > 0 ? (prev.metrics.errorRate * prev.metrics.rps + e.metrics.errorRate * e.metrics.rps) / rps : 0,
      p50Ms: maxOrNull(prev.metrics.p50Ms, e.metrics.p50Ms),
      p99Ms: maxOrNull(prev.metrics.p99Ms, e.metrics.p99Ms),
    };
    prev.health = worst(prev.health, e.health);
    prev.layers = [...new Set([...prev.layers, ...e.layers])];
  }
  // External endpoints are drawn only while an edge still reaches them.
  const used = new Set([...merged.values()].flatMap((e) => [e.from, e.to]));
  return {
    nodes: nodes.filter((n) => n.kind !== 'external' || used.has(n.id)),
    edges: [...merged.values()],
  };
}

function maxOrNull(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.max(a, b);
}

export function projectsOf(t: Topology): string[] {
  return [...new Set(t.nodes.map((n) => n.project).filter((p): p is string => !!p))].sort();
}
export function sitesOf(t: Topology): string[] {
  return [...new Set(t.nodes.map((n) => n.site).filter((s): s is string => !!s))].sort();
}
