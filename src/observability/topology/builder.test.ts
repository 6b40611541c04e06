import { describe, expect, it } from 'vitest';
import { buildTopology } from './builder.ts';
import { SnapshotHistory, mergeWindow } from './history.ts';
import { L7Collector } from './l7-collector.ts';
import { percentile } from './latency.ts';
import { emptySnapshot } from './snapshot.ts';
import type { RequestLog } from '../../dataplane/dataplane.ts';

const log = (o: Partial<RequestLog>): RequestLog => ({
  at: '',
  clientIp: '127.0.0.1',
  backend: 'api.accounts.bank',
  server: 'bank.accounts.api-0-aaaa',
  method: 'GET',
  path: '/',
  status: 200,
  totalMs: 10,
  serverMs: 5,
  retries: 0,
  terminationState: '----',
  bytesRead: 10,
  ...o,
});

const instances = [
  {
    id: 'bank.gateway.api-0-gggg',
    project: 'bank',
    app: 'gateway',
    site: 'local',
    phase: 'ready',
    ready: true,
  },
  {
    id: 'bank.accounts.api-0-aaaa',
    project: 'bank',
    app: 'accounts',
    site: 'local',
    phase: 'ready',
    ready: true,
  },
];
const callers = {
  byIp: (ip: string) =>
    ip === '10.213.0.7' ? { id: 'bank.gateway.api-0-gggg', project: 'bank', app: 'gateway' } : undefined,
};

describe('topology', () => {
  it('turns request logs into app and instance edges with counts, errors and percentiles', () => {
    const c = new L7Collector();
    for (let i = 0; i < 98; i++)
      c.record(log({ clientIp: '10.213.0.7', caller: 'api.gateway.bank' }), callers);
    c.record(log({ clientIp: '10.213.0.7', caller: 'api.gateway.bank', status: 503, totalMs: 900 }), callers);
    c.record(
      log({ clientIp: '10.213.0.7', caller: 'api.gateway.bank', server: undefined, status: 503 }),
      callers,
    );
    const s = emptySnapshot(10_000, 10_000);
    s.l7 = c.flush();
    const t = buildTopology({
      nowMs: 10_000,
      windowSeconds: 60,
      merged: mergeWindow([s], 10_000),
      instances,
      apps: [],
      site: 'local',
      gateway: { nodeId: 'external:10.213.0.1:8080', label: 'gw' },
    });
    const appEdge = t.edges.find((e) => e.id === 'app:bank/gateway->app:bank/accounts');
    expect(appEdge?.metrics).toMatchObject({ requests: 100, errors: 2, rps: 10, errorRate: 0.02 });
    expect(appEdge?.health).toBe('degraded');
    const instEdge = t.edges.find(
      (e) => e.id === 'instance:bank.gateway.api-0-gggg->instance:bank.accounts.api-0-aaaa',
    );
    expect(instEdge?.metrics.requests).toBe(99);
    expect(t.nodes.find((n) => n.id === 'instance:bank.accounts.api-0-aaaa')?.parent).toBe(
      'app:bank/accounts',
    );
    expect(t.windowSeconds).toBe(10);
  });

  it('merges L4 into the L7 edge of the same pair and keeps L4-only edges', () => {
    const s = emptySnapshot(1000, 1000);
    s.l4.set('instance:bank.accounts.api-0-aaaa->external:10.213.0.1:8080', {
      from: 'instance:bank.accounts.api-0-aaaa',
      to: 'external:10.213.0.1:8080',
      opened: 2,
      failed: 0,
      established: 4,
      bytesToServer: 10,
      bytesToClient: 20,
      retransmits: 3,
      resets: 0,
      rttUsSum: 100,
      rttN: 2,
    });
    const t = buildTopology({
      nowMs: 1000,
      windowSeconds: 60,
      merged: mergeWindow([s], 1000),
      instances,
      apps: [],
      site: 'local',
      gateway: { nodeId: 'external:10.213.0.1:8080', label: 'site gateway' },
    });
    const e = t.edges.find((x) => x.to === 'external:10.213.0.1:8080');
    expect(e).toMatchObject({
      layers: ['l4'],
      health: 'degraded',
      metrics: { connections: 4, retransmits: 3, rttMs: 0.05 },
    });
    expect(t.nodes.find((n) => n.id === 'external:10.213.0.1:8080')).toMatchObject({
      kind: 'external',
      label: 'site gateway',
    });
  });

  it('keeps a bounded history: fine snapshots, then coarse ones for the hour', () => {
    const h = new SnapshotHistory({ fineCapacity: 3, coarseEvery: 2, coarseCapacity: 3 });
    for (let i = 1; i <= 20; i++) {
      const s = emptySnapshot(i * 1000, 1000);
      s.l7.set('a->b', { from: 'a', to: 'b', requests: 1, errors: 0, latency: new Map() });
      h.push(s);
    }
    expect(h.window(3000, 20_000).length).toBe(3);
    const all = h.all();
    // The 3 fine snapshots (18..20 s) and the coarse ones wholly before them (2 s each, 3 kept).
    expect(all.map((s) => s.atMs)).toEqual([16_000, 18_000, 19_000, 20_000]);
    expect(mergeWindow(h.window(100_000, 20_000), 20_000).l7.get('a->b')?.requests).toBe(6);
  });

  it('reads percentiles from the log buckets within 25%', () => {
    const h = new Map<number, number>();
    const c = new L7Collector();
    for (let i = 1; i <= 100; i++) c.record(log({ totalMs: i }), callers);
    for (const e of c.flush().values())
      if (e.to.startsWith('app:')) for (const [k, v] of e.latency) h.set(k, v);
    const p50 = percentile(h, 50)!;
    const p99 = percentile(h, 99)!;
    expect(p50).toBeGreaterThanOrEqual(50);
    expect(p50).toBeLessThanOrEqual(50 * 1.25);
    expect(p99).toBeGreaterThanOrEqual(99);
    expect(p99).toBeLessThanOrEqual(99 * 1.25);
  });
});
