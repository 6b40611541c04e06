import { describe, expect, it } from 'vitest';
import { holdForFailback, splitReplicas, type SiteWeight } from './split.ts';

const sites = (...spec: [string, number, number?][]): SiteWeight[] =>
  spec.map(([name, weight, minReplicas]) => ({ name, weight, minReplicas: minReplicas ?? 0 }));
const all = (s: SiteWeight[]): Set<string> => new Set(s.map((x) => x.name));
const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);

describe('splitReplicas', () => {
  it('splits exactly by weight when it divides', () => {
    const s = sites(['dc1', 2], ['dc2', 1], ['dc3', 1]);
    expect(splitReplicas(8, s, all(s))).toEqual({ shares: { dc1: 4, dc2: 2, dc3: 2 }, unplaced: 0 });
  });

  it('rounds by largest remainder, ties to the heavier site then list order', () => {
    const s = sites(['dc1', 1], ['dc2', 1], ['dc3', 1]);
    expect(splitReplicas(4, s, all(s)).shares).toEqual({ dc1: 2, dc2: 1, dc3: 1 });
    const w = sites(['dc1', 1], ['dc2', 2], ['dc3', 2]);
    // ideal 1.2, 2.4, 2.4 -> floors 1,2,2 (5); the one left goes to the largest remainder (.4, dc2 by order)
    expect(splitReplicas(6, w, all(w)).shares).toEqual({ dc1: 1, dc2: 3, dc3: 2 });
  });

  it('raises a site to its minimum and takes the difference from the others by weight', () => {
    const s = sites(['dc1', 2], ['dc2', 1, 2], ['dc3', 1]);
    // ideal 3, 1.5, 1.5; dc2 pinned at 2; 4 left over weights 2:1 -> 2.67, 1.33 -> 3, 1
    expect(splitReplicas(6, s, all(s)).shares).toEqual({ dc1: 3, dc2: 2, dc3: 1 });
  });

  it('grants minimums by descending weight when they exceed the total', () => {
    const s = sites(['dc1', 1, 2], ['dc2', 3, 2], ['dc3', 2, 2]);
    expect(splitReplicas(3, s, all(s)).shares).toEqual({ dc1: 0, dc2: 2, dc3: 1 });
  });

  it('moves an excluded site’s share to the eligible ones, minimums still honoured', () => {
    const s = sites(['dc1', 2, 1], ['dc2', 1, 1], ['dc3', 1, 1]);
    expect(splitReplicas(6, s, all(s)).shares).toEqual({ dc1: 3, dc2: 2, dc3: 1 });
    const without2 = splitReplicas(6, s, new Set(['dc1', 'dc3']));
    expect(without2.shares).toEqual({ dc1: 4, dc2: 0, dc3: 2 });
    expect(sum(without2.shares)).toBe(6);
  });

  it('reports replicas nobody can take when no site is eligible', () => {
    const s = sites(['dc1', 1], ['dc2', 1]);
    expect(splitReplicas(5, s, new Set())).toEqual({ shares: { dc1: 0, dc2: 0 }, unplaced: 5 });
  });

  it('gives weight-0 sites only their minimum, and spreads evenly when every weight is 0', () => {
    const s = sites(['dc1', 1], ['standby', 0, 1]);
    expect(splitReplicas(4, s, all(s)).shares).toEqual({ dc1: 3, standby: 1 });
    // Active-standby: the standby takes everything once the active site is gone.
    expect(splitReplicas(4, s, new Set(['standby'])).shares).toEqual({ dc1: 0, standby: 4 });
    const z = sites(['a', 0], ['b', 0]);
    expect(splitReplicas(3, z, all(z)).shares).toEqual({ a: 2, b: 1 });
  });

  it('always adds up to the total and never goes below a minimum it can afford (exhaustive small cases)', () => {
    for (let total = 0; total <= 12; total++) {
      for (const w of [
        [1, 1, 1],
        [3, 2, 1],
        [0, 5, 1],
        [100, 1, 1],
      ]) {
        for (const m of [
          [0, 0, 0],
          [1, 1, 1],
          [2, 0, 1],
        ]) {
          const s = w.map((weight, i) => ({ name: `dc${i}`, weight, minReplicas: m[i]! }));
          for (const mask of [7, 6, 5, 3, 1]) {
            const eligible = new Set(s.filter((_, i) => mask & (1 << i)).map((x) => x.name));
            const r = splitReplicas(total, s, eligible);
            expect(sum(r.shares) + r.unplaced).toBe(total);
            const mins = s.filter((x) => eligible.has(x.name)).reduce((n, x) => n + x.minReplicas, 0);
            for (const x of s) {
              if (!eligible.has(x.name)) expect(r.shares[x.name]).toBe(0);
              else if (mins <= total) expect(r.shares[x.name]).toBeGreaterThanOrEqual(x.minReplicas);
            }
          }
        }
      }
    }
  });
});

describe('holdForFailback', () => {
  const eligible = new Set(['dc1', 'dc2', 'dc3']);

  it('keeps the losing sites at their settled share until the returning site is ready', () => {
    const settled = { dc1: 4, dc2: 0, dc3: 2 };
    const target = { dc1: 3, dc2: 2, dc3: 1 };
    expect(holdForFailback(target, settled, { dc1: 4, dc2: 1, dc3: 2 }, eligible)).toEqual({
      shares: { dc1: 4, dc2: 2, dc3: 2 },
      holding: ['dc1', 'dc3'],
    });
    expect(holdForFailback(target, settled, { dc1: 4, dc2: 2, dc3: 2 }, eligible)).toEqual({
      shares: target,
      holding: [],
    });
  });

  it('never holds a site that is not eligible (failover: the lost site keeps nothing)', () => {
    const settled = { dc1: 3, dc2: 2, dc3: 1 };
    const target = { dc1: 4, dc2: 0, dc3: 2 };
    expect(holdForFailback(target, settled, { dc1: 3, dc2: 2, dc3: 1 }, new Set(['dc1', 'dc3']))).toEqual({
      shares: target,
      holding: [],
    });
  });

  it('applies the target at once on the first decision', () => {
    expect(holdForFailback({ dc1: 2 }, undefined, {}, eligible)).toEqual({ shares: { dc1: 2 }, holding: [] });
  });
});
