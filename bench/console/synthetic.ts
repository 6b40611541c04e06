/**
 * A synthetic service graph in the Topology API's shape: `services` apps
 * spread over a few projects and sites, `edges` calls going mostly "down"
 * five tiers of a mesh (with a few cycles, as real meshes have), health and
 * metrics drawn from a seeded generator so every run draws the same graph.
 */
import type { Health, Topology, TopologyEdge, TopologyNode } from '../../web/src/api/types.ts';

const TIERS = ['edge', 'bff', 'domain', 'core', 'data'];

export function syntheticTopology(services: number, edges: number, seed = 42): Topology {
  let s = seed;
  const rnd = (): number => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const health = (): Health => {
    const r = rnd();
    return r < 0.85 ? 'ok' : r < 0.95 ? 'degraded' : r < 0.98 ? 'down' : 'unknown';
  };
  const metrics = () => ({
    rps: Math.round(rnd() * 500 * 10) / 10,
    errorRate: rnd() < 0.9 ? rnd() * 0.01 : rnd() * 0.3,
    p50Ms: Math.round(rnd() * 40 * 10) / 10,
    p99Ms: Math.round(rnd() * 400 * 10) / 10,
  });
  const nodes: TopologyNode[] = Array.from({ length: services }, (_, i) => {
    const project = `proj-${i % 8}`;
    const app = `svc-${String(i).padStart(3, '0')}`;
    return {
      id: `app:${project}/${app}`,
      kind: 'app',
      label: app,
      project,
      app,
      site: i % 3 === 0 ? 'dc-b' : 'dc-a',
      health: health(),
      metrics: metrics(),
    };
  });
  // Services sit in tiers like a real mesh (edge -> BFF -> domain -> core -> data); calls go to the
  // next tier mostly, sometimes skip one, and 3% go back up, making cycles.
  const tierOf = (i: number): number => Math.min(TIERS.length - 1, Math.floor((i / services) * TIERS.length));
  const byTier: number[][] = TIERS.map(() => []);
  for (let i = 0; i < services; i++) byTier[tierOf(i)]!.push(i);
  const pick = (xs: number[]): number => xs[Math.floor(rnd() * xs.length)]!;
  const seen = new Set<string>();
  const out: TopologyEdge[] = [];
  let guard = 0;
  while (out.length < edges && guard++ < edges * 100) {
    const ta = Math.floor(rnd() * (TIERS.length - 1));
    const r = rnd();
    const tb =
      r < 0.03 && ta > 0 ? Math.floor(rnd() * ta) : r < 0.83 ? ta + 1 : Math.min(TIERS.length - 1, ta + 2);
    if (byTier[ta]!.length === 0 || byTier[tb]!.length === 0) continue;
    const a = pick(byTier[ta]!);
    const b = pick(byTier[tb]!);
    const from = nodes[a]!.id;
    const to = nodes[b]!.id;
    const id = `${from}->${to}`;
    if (a === b || seen.has(id)) continue;
    seen.add(id);
    out.push({ id, from, to, layers: ['l7'], health: health(), metrics: metrics() });
  }
  return { at: new Date().toISOString(), windowSeconds: 60, nodes, edges: out };
}
