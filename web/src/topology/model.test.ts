import { describe, expect, it } from 'vitest';
import type { Topology, TopologyEdge, TopologyNode } from '../api/types.ts';
import { viewGraph } from './model.ts';

const m = (rps: number) => ({ rps, errorRate: 0, p50Ms: 1, p99Ms: 2 });
const node = (id: string, extra: Partial<TopologyNode> = {}): TopologyNode => ({
  id,
  kind: id.startsWith('instance:') ? 'instance' : id.startsWith('app:') ? 'app' : 'external',
  label: id,
  health: 'ok',
  metrics: m(0),
  ...extra,
});
const edge = (from: string, to: string, rps: number): TopologyEdge => ({
  id: `${from}|${to}`,
  from,
  to,
  layers: ['l7'],
  health: 'ok',
  metrics: m(rps),
});

const topo: Topology = {
  at: '2026-12-01T00:00:00Z',
  windowSeconds: 60,
  nodes: [
    node('app:bank/gateway', { project: 'bank' }),
    node('app:bank/accounts', { project: 'bank' }),
    node('app:shop/cart', { project: 'shop' }),
    node('instance:g1', { parent: 'app:bank/gateway', project: 'bank', site: 'a' }),
    node('instance:a1', { parent: 'app:bank/accounts', project: 'bank', site: 'a' }),
    node('instance:a2', { parent: 'app:bank/accounts', project: 'bank', site: 'b' }),
  ],
  edges: [
    edge('app:bank/gateway', 'app:bank/accounts', 10),
    edge('instance:g1', 'instance:a1', 6),
    edge('instance:g1', 'instance:a2', 4),
  ],
};

describe('viewGraph', () => {
  it('folds instances into their apps without counting the same calls twice', () => {
    const v = viewGraph(topo, {});
    expect(v.nodes.map((n) => n.id).sort()).toEqual([
      'app:bank/accounts',
      'app:bank/gateway',
      'app:shop/cart',
    ]);
    expect(v.edges).toHaveLength(1);
    expect(v.edges[0]!.id).toBe('app:bank/gateway->app:bank/accounts');
    expect(v.edges[0]!.metrics.rps).toBe(10);
  });

  it('folds instance-only edges when no app edge covers the pair', () => {
    const v = viewGraph({ ...topo, edges: topo.edges.slice(1) }, {});
    expect(v.edges).toHaveLength(1);
    expect(v.edges[0]!.metrics.rps).toBe(10);
  });

  it('shows instances and their edges instead of their apps when asked', () => {
    const v = viewGraph(topo, { instances: true });
    expect(v.nodes.map((n) => n.id).sort()).toEqual([
      'app:shop/cart',
      'instance:a1',
      'instance:a2',
      'instance:g1',
    ]);
    expect(v.edges.map((e) => e.id).sort()).toEqual(['instance:g1->instance:a1', 'instance:g1->instance:a2']);
  });

  it('leaves out L4-only connections and the endpoints only they reach unless asked', () => {
    const withGw: Topology = {
      ...topo,
      nodes: [...topo.nodes, node('external:10.0.0.1:8080', { label: 'site gateway' })],
      edges: [...topo.edges, { ...edge('instance:a1', 'external:10.0.0.1:8080', 3), layers: ['l4'] }],
    };
    expect(viewGraph(withGw, {}).nodes.some((n) => n.kind === 'external')).toBe(false);
    const v = viewGraph(withGw, { l4: true });
    expect(v.nodes.some((n) => n.kind === 'external')).toBe(true);
    expect(v.edges.map((e) => e.id)).toContain('app:bank/accounts->external:10.0.0.1:8080');
  });

  it('filters by project', () => {
    const v = viewGraph(topo, { project: 'shop' });
    expect(v.nodes.map((n) => n.id)).toEqual(['app:shop/cart']);
    expect(v.edges).toHaveLength(0);
  });
});
