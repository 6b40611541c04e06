import { describe, expect, it } from 'vitest';
import { countCrossings, layoutGraph } from './layout.ts';

const chain = {
  nodes: ['gateway', 'accounts', 'payments', 'ledger'].map((id) => ({ id })),
  edges: [
    { id: 'e1', from: 'gateway', to: 'accounts' },
    { id: 'e2', from: 'accounts', to: 'payments' },
    { id: 'e3', from: 'payments', to: 'ledger' },
    { id: 'e4', from: 'accounts', to: 'ledger' },
  ],
};

describe('layoutGraph', () => {
  it('places every call rightwards in a layer after its caller', () => {
    const l = layoutGraph(chain);
    const layer = (id: string) => l.nodes.get(id)!.layer;
    expect([layer('gateway'), layer('accounts'), layer('payments'), layer('ledger')]).toEqual([0, 1, 2, 3]);
    for (const e of l.edges) expect(e.back).toBe(false);
  });

  it('breaks a cycle by drawing one edge backwards, and lays out every node', () => {
    const l = layoutGraph({
      nodes: [{ id: 'a' }, { id: 'b' }, { id: 'c' }],
      edges: [
        { id: '1', from: 'a', to: 'b' },
        { id: '2', from: 'b', to: 'c' },
        { id: '3', from: 'c', to: 'a' },
      ],
    });
    expect(l.nodes.size).toBe(3);
    expect(l.edges.filter((e) => e.back)).toHaveLength(1);
  });

  it('puts nodes without edges in a grid below the graph, not in the first layer', () => {
    const l = layoutGraph({ nodes: [...chain.nodes, { id: 'lonely' }], edges: chain.edges });
    const lonely = l.nodes.get('lonely')!;
    expect(lonely.layer).toBe(-1);
    expect(lonely.y).toBeGreaterThan(Math.max(...chain.nodes.map((n) => l.nodes.get(n.id)!.y)));
    expect(l.height).toBeGreaterThanOrEqual(lonely.y + l.nodeHeight);
  });

  it('ignores edges to unknown nodes and self-loops', () => {
    const l = layoutGraph({
      nodes: [{ id: 'a' }],
      edges: [
        { id: '1', from: 'a', to: 'ghost' },
        { id: '2', from: 'a', to: 'a' },
      ],
    });
    expect(l.edges).toHaveLength(0);
  });

  it('orders layers to remove avoidable crossings', () => {
    // a1->b2 and a2->b1 cross in input order; the barycentre sweep uncrosses them.
    const l = layoutGraph({
      nodes: ['a1', 'a2', 'b1', 'b2'].map((id) => ({ id })),
      edges: [
        { id: '1', from: 'a1', to: 'b2' },
        { id: '2', from: 'a2', to: 'b1' },
      ],
    });
    expect(countCrossings(l)).toBe(0);
  });

  it('lays out 200 services and 600 edges quickly with no overlapping nodes', () => {
    const nodes = Array.from({ length: 200 }, (_, i) => ({ id: `s${i}` }));
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const edges = Array.from({ length: 600 }, (_, i) => {
      const a = Math.floor(rnd() * 199);
      const b = a + 1 + Math.floor(rnd() * Math.min(20, 199 - a));
      return { id: `e${i}`, from: `s${a}`, to: `s${b}` };
    });
    const t0 = performance.now();
    const l = layoutGraph({ nodes, edges });
    const ms = performance.now() - t0;
    expect(l.nodes.size).toBe(200);
    expect(ms).toBeLessThan(500);
    const seen = new Set<string>();
    for (const n of l.nodes.values()) {
      const key = `${n.x},${n.y}`;
      expect(seen.has(key)).toBe(false);
      seen.add(key);
    }
  });
});
