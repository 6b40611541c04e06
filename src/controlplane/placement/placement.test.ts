import { describe, expect, it } from 'vitest';
import { API_VERSION, type AppResource, type Placement as PlacementSpec } from '../../model/types.ts';
import type { Logger } from '../../util/logger.ts';
import { Placement, type SiteView } from './placement.ts';

function recordingLog(lines: string[]): Logger {
  const log: Logger = {
    debug: () => undefined,
    info: (o: { reason?: string }) => void lines.push(o.reason ?? ''),
    warn: () => undefined,
    error: () => undefined,
    child: () => log,
  };
  return log;
}

function app(placement: PlacementSpec | undefined, replicas = 6): AppResource {
  return {
    apiVersion: API_VERSION,
    kind: 'App',
    metadata: { name: 'pay', project: 'bank' },
    spec: {
      workloads: [{ name: 'api', type: 'service', replicas, image: 'pay:1' }],
      ...(placement ? { placement } : {}),
    },
  };
}

const spread: PlacementSpec = {
  strategy: 'spread',
  sites: [
    { name: 'dc1', weight: 2, minReplicas: 1 },
    { name: 'dc2', weight: 1, minReplicas: 1 },
    { name: 'dc3', weight: 1, minReplicas: 1 },
  ],
};

function setup() {
  const views = new Map<string, SiteView>(
    ['dc1', 'dc2', 'dc3', 'local'].map((s) => [s, { state: 'healthy', since: 1 }]),
  );
  const ready = new Map<string, number>();
  const logs: string[] = [];
  const log = recordingLog(logs);
  const p = new Placement(
    { site: (n) => views.get(n), ready: (site) => ready.get(site) ?? 0, log, now: () => 1_000 },
    'local',
  );
  return { p, views, ready, logs };
}

describe('Placement', () => {
  it('replicate (no strategy, today’s manifests): every placed site runs the full count', () => {
    const { p } = setup();
    const a = app({ sites: [{ name: 'dc1' }, { name: 'dc2' }] }, 3);
    expect(p.shareFor(a, 'dc1')).toEqual({ api: 3 });
    expect(p.shareFor(a, 'dc2')).toEqual({ api: 3 });
    expect(p.shareFor(a, 'dc3')).toBeUndefined();
    expect(p.expectedReplicas(a)).toEqual({ api: 6 });
    // No placement at all: the default site.
    expect(p.shareFor(app(undefined, 2), 'local')).toEqual({ api: 2 });
  });

  it('spread: splits the total by weight and moves an unreachable site’s share to the others', () => {
    const { p, views, ready, logs } = setup();
    const a = app(spread);
    expect(['dc1', 'dc2', 'dc3'].map((s) => p.shareFor(a, s)?.api)).toEqual([3, 2, 1]);
    views.set('dc2', { state: 'unreachable', since: 500, reason: '3 consecutive probes failed: timeout' });
    expect(['dc1', 'dc2', 'dc3'].map((s) => p.shareFor(a, s)?.api)).toEqual([4, 0, 2]);
    expect(p.expectedReplicas(a)).toEqual({ api: 6 });
    const st = p.statusFor(a);
    expect(st.sites.find((s) => s.name === 'dc2')).toMatchObject({
      state: 'unreachable',
      replicas: { api: 0 },
    });
    expect(st.sites.find((s) => s.name === 'dc2')?.reason).toMatch(
      /unreachable since .*share runs on the other sites/,
    );
    expect(st.lastChange?.reason).toMatch(/dc2 unreachable .* -> api: dc1=4 dc2=0 dc3=2/);
    expect(logs.at(-1)).toMatch(/dc2 unreachable/);

    // Recovering: still no share.
    views.set('dc2', { state: 'recovering', since: 900, failbackAt: 30_900 });
    expect(p.shareFor(a, 'dc2')?.api).toBe(0);
    expect(p.statusFor(a).sites.find((s) => s.name === 'dc2')?.reason).toMatch(/failback period running/);

    // Healthy again: dc2 gets 2 at once; dc1 and dc3 keep 4 and 2 until dc2 has 2 ready.
    views.set('dc2', { state: 'healthy', since: 31_000 });
    ready.set('dc1', 4).set('dc3', 2).set('dc2', 0);
    expect(['dc1', 'dc2', 'dc3'].map((s) => p.shareFor(a, s)?.api)).toEqual([4, 2, 2]);
    expect(p.statusFor(a).sites.find((s) => s.name === 'dc1')?.reason).toMatch(/keeps its previous share/);
    ready.set('dc2', 2);
    expect(['dc1', 'dc2', 'dc3'].map((s) => p.shareFor(a, s)?.api)).toEqual([3, 2, 1]);
    // Settled: a later dip in dc2's readiness does not bring the hold back.
    ready.set('dc2', 1);
    expect(['dc1', 'dc2', 'dc3'].map((s) => p.shareFor(a, s)?.api)).toEqual([3, 2, 1]);
  });

  it('a site the control plane does not run gets nothing and says why', () => {
    const { p, views } = setup();
    views.delete('dc3');
    const a = app(spread);
    expect(['dc1', 'dc2', 'dc3'].map((s) => p.shareFor(a, s)?.api)).toEqual([4, 2, 0]);
    expect(p.statusFor(a).sites.find((s) => s.name === 'dc3')?.reason).toMatch(/not registered/);
  });

  it('counts unplaced replicas when every site is down', () => {
    const { p, views } = setup();
    for (const s of ['dc1', 'dc2', 'dc3']) views.set(s, { state: 'unreachable', since: 1 });
    const a = app(spread);
    expect(p.expectedReplicas(a)).toEqual({ api: 0 });
    expect(p.statusFor(a).lastChange?.reason).toMatch(/6 replica\(s\) have no usable site/);
  });
});
