import { describe, expect, it } from 'vitest';
import { actionFeed } from './feed.ts';
import { placementAction, replicaChanges } from './placement-action.ts';
import type { Incident } from '../../model/incidents.ts';

const base = { at: Date.parse('2026-12-01T10:00:00Z'), project: 'bank', app: 'pay', reason: 'r' };

describe('placement actions', () => {
  it('lists the per-site replica changes, sites and workloads that appear on one side included', () => {
    expect(
      replicaChanges({ api: { dc1: 3, dc2: 2, dc3: 1 } }, { api: { dc1: 4, dc3: 2 }, worker: { dc1: 1 } }),
    ).toEqual([
      { workload: 'api', site: 'dc1', from: 3, to: 4 },
      { workload: 'api', site: 'dc2', from: 2, to: 0 },
      { workload: 'api', site: 'dc3', from: 1, to: 2 },
      { workload: 'worker', site: 'dc1', from: 0, to: 1 },
    ]);
  });

  it('is a failover when a site went down, a failback when one came back, else a rebalance', () => {
    const prev = { api: { dc1: 3, dc2: 3 } };
    const next = { api: { dc1: 6, dc2: 0 } };
    expect(placementAction({ ...base, prev, next, downNow: ['dc2'], downBefore: [] })).toMatchObject({
      kind: 'failover',
      summary: 'failover of bank/pay: dc2 not usable; api@dc1 3->6, api@dc2 3->0 (r)',
      at: '2026-12-01T10:00:00.000Z',
    });
    expect(placementAction({ ...base, prev: next, next: prev, downNow: [], downBefore: ['dc2'] })?.kind).toBe(
      'failback',
    );
    expect(
      placementAction({ ...base, prev, next: { api: { dc1: 4, dc2: 2 } }, downNow: [], downBefore: [] })
        ?.kind,
    ).toBe('rebalance');
    expect(placementAction({ ...base, prev, next: prev, downNow: ['dc2'], downBefore: [] })).toBeUndefined();
  });

  it('merges stored actions with isolation steps from incidents, newest first, one per kind and incident', () => {
    const inc = {
      id: 'inc-1',
      project: 'bank',
      app: 'ledger',
      instanceId: 'led-0',
      signature: 'stopped',
      action: { kind: 'isolate', reason: '' },
      timeline: [
        { at: '2026-12-01T10:00:01.000Z', event: 'detected', detail: 'd' },
        { at: '2026-12-01T10:00:01.100Z', event: 'isolated', detail: 'maint' },
        { at: '2026-12-01T10:00:01.101Z', event: 'isolated', detail: '3 gateway connection(s) closed' },
        { at: '2026-12-01T10:00:01.200Z', event: 'quarantined', detail: 'kept' },
        { at: '2026-12-01T10:00:03.000Z', event: 'replacement-ready', detail: 'led-1' },
      ],
    } as unknown as Incident;
    const act = placementAction({
      ...base,
      at: Date.parse('2026-12-01T10:00:02Z'),
      prev: { api: { dc1: 1 } },
      next: { api: { dc1: 2 } },
      downNow: [],
      downBefore: [],
    })!;
    const feed = actionFeed([act], [inc], 10);
    expect(feed.map((f) => f.kind)).toEqual(['replaced', 'rebalance', 'quarantined', 'isolated']);
    expect(feed[3]).toMatchObject({ incidentId: 'inc-1', instanceId: 'led-0', summary: 'stopped: maint' });
    expect(actionFeed([act], [inc], 2)).toHaveLength(2);
  });
});
