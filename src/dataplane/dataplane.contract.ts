/**
 * Behaviour every DataPlane implementation must show, run against real HTTP
 * backends on loopback. An implementation's test file calls
 * `runDataPlaneContract({ newDataPlane })` inside its own describe().
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DataPlane, RequestLog, ServerSpec, SiteRouting } from './dataplane.ts';
import { request, startBackend, type TestBackend } from './testing/backends.ts';
import { sleep, waitFor } from '../util/time.ts';

export interface DataPlaneContractOptions {
  newDataPlane: () => Promise<DataPlane>;
}

const server = (b: TestBackend, over: Partial<ServerSpec> = {}): ServerSpec => ({
  name: b.name,
  address: '127.0.0.1',
  port: b.port,
  weight: 100,
  state: 'ready',
  ...over,
});

/** Who answered each of `n` sequential GETs. */
async function answerers(
  url: string,
  n: number,
  headers: Record<string, string> = {},
): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const r = await request(url, { headers });
    const who = r.status === 200 ? (r.body.split(' ')[0] ?? '?') : `status-${r.status}`;
    seen.set(who, (seen.get(who) ?? 0) + 1);
  }
  return seen;
}

export function runDataPlaneContract(opts: DataPlaneContractOptions): void {
  let dp: DataPlane;
  const backends: TestBackend[] = [];
  let i1: TestBackend;
  let i2: TestBackend;
  let api1: TestBackend;

  beforeAll(async () => {
    i1 = await startBackend('i1');
    i2 = await startBackend('i2');
    api1 = await startBackend('api1');
    backends.push(i1, i2, api1);
    dp = await opts.newDataPlane();
  });

  afterAll(async () => {
    await dp?.close();
    for (const b of backends) await b.close();
  });

  const routing = (servers: ServerSpec[]): SiteRouting => ({
    backends: [
      { name: 'web.shop.acme', aliases: ['shop.acme'], servers, checkIntervalMs: 500 },
      { name: 'api.shop.acme', aliases: [], servers: [server(api1)] },
    ],
  });

  it('routes by service name, alias and path prefix, stripping the prefix', async () => {
    await dp.sync(routing([server(i1)]));
    const byName = await request(`${dp.gatewayUrl}/hello?x=1`, { headers: { host: 'web.shop.acme:8080' } });
    expect(byName).toMatchObject({ status: 200, body: 'i1 GET /hello?x=1' });
    const byAlias = await request(`${dp.gatewayUrl}/a`, { headers: { host: 'SHOP.acme' } });
    expect(byAlias).toMatchObject({ status: 200, body: 'i1 GET /a' });
    const byPath = await request(`${dp.gatewayUrl}/acme/shop/api/v1/items?q=2`);
    expect(byPath).toMatchObject({ status: 200, body: 'api1 GET /v1/items?q=2' });
    const bare = await request(`${dp.gatewayUrl}/acme/shop/api`);
    expect(bare).toMatchObject({ status: 200, body: 'api1 GET /' });
  });

  it('answers 404 naming the unknown service', async () => {
    await dp.sync(routing([server(i1)]));
    const r = await request(`${dp.gatewayUrl}/x`, { headers: { host: 'nope.shop.acme' } });
    expect(r.status).toBe(404);
    expect(r.body).toContain('nope.shop.acme');
  });

  it('is idempotent: the same routing twice issues no command the second time', async () => {
    await dp.sync(routing([server(i1), server(i2)]));
    const again = await dp.sync(routing([server(i1), server(i2)]));
    expect(again).toEqual({ reloaded: false, runtimeCommands: 0 });
  });

  it('adds and removes servers', async () => {
    await dp.sync(routing([server(i1)]));
    expect([...(await answerers(`${dp.gatewayUrl}/acme/shop/web/`, 6)).keys()]).toEqual(['i1']);
    await dp.sync(routing([server(i1), server(i2)]));
    const both = await answerers(`${dp.gatewayUrl}/acme/shop/web/`, 10);
    expect(both.get('i1')).toBeGreaterThanOrEqual(4);
    expect(both.get('i2')).toBeGreaterThanOrEqual(4);
    await dp.sync(routing([server(i2)]));
    expect([...(await answerers(`${dp.gatewayUrl}/acme/shop/web/`, 6)).keys()]).toEqual(['i2']);
  });

  it('stops traffic to a server in maintenance at once and resumes it on ready', async () => {
    await dp.sync(routing([server(i1), server(i2)]));
    const t0 = performance.now();
    await dp.setServerState('web.shop.acme', 'i1', 'maint');
    const tookMs = performance.now() - t0;
    expect(tookMs).toBeLessThan(50);
    const during = await answerers(`${dp.gatewayUrl}/acme/shop/web/`, 20);
    expect([...during.keys()]).toEqual(['i2']);
    await dp.setServerState('web.shop.acme', 'i1', 'ready');
    const after = await answerers(`${dp.gatewayUrl}/acme/shop/web/`, 10);
    expect(after.get('i1')).toBeGreaterThanOrEqual(4);
  });

  it('hands the requests a hung server holds to another server when its connections are aborted', async () => {
    await dp.sync(routing([server(i1), server(i2)]));
    i1.behaviour = 'hang';
    try {
      const before = i1.hits;
      // The routing sets no server timeout (30 s idle): without the abort these would wait that long.
      const pending = Array.from({ length: 6 }, () => request(`${dp.gatewayUrl}/acme/shop/web/`));
      await waitFor('requests held by the hung server', () => i1.hits > before, { timeoutMs: 5000 });
      await dp.setServerState('web.shop.acme', 'i1', 'maint');
      const t0 = performance.now();
      expect(await dp.abortServerConnections('web.shop.acme', 'i1')).toBeGreaterThan(0);
      const answers = await Promise.all(pending);
      expect(performance.now() - t0).toBeLessThan(3000);
      expect(answers.map((r) => `${r.status} ${r.body.split(' ')[0]}`)).toEqual(Array(6).fill('200 i2'));
    } finally {
      i1.behaviour = 'ok';
      await dp.setServerState('web.shop.acme', 'i1', 'ready');
    }
    await expect(dp.abortServerConnections('web.shop.acme', 'nope')).rejects.toThrow(/server 'nope'/);
  });

  it('shifts the distribution with weights', async () => {
    await dp.sync(routing([server(i1, { weight: 50 }), server(i2, { weight: 150 })]));
    const seen = await answerers(`${dp.gatewayUrl}/acme/shop/web/`, 80);
    expect(seen.get('i1')).toBeGreaterThanOrEqual(17);
    expect(seen.get('i1')).toBeLessThanOrEqual(23);
    expect(seen.get('i2')).toBeGreaterThanOrEqual(57);
    await dp.setServerWeight('web.shop.acme', 'i1', 150);
    const even = await answerers(`${dp.gatewayUrl}/acme/shop/web/`, 40);
    expect(even.get('i1')).toBeGreaterThanOrEqual(17);
    expect(even.get('i1')).toBeLessThanOrEqual(23);
  });

  it('reports each request with its server, status, latency and caller', async () => {
    await dp.sync(routing([server(i1)]));
    const logs: RequestLog[] = [];
    const off = dp.onRequest((l) => logs.push(l));
    try {
      const r = await request(`${dp.gatewayUrl}/acme/shop/web/logged`, {
        headers: { 'x-bulwark-caller': 'api.shop.acme' },
      });
      expect(r.status).toBe(200);
      const log = await waitFor('request log', () => logs.find((l) => l.caller === 'api.shop.acme'), {
        timeoutMs: 3000,
      });
      expect(log).toMatchObject({
        backend: 'web.shop.acme',
        server: 'i1',
        method: 'GET',
        status: 200,
        retries: 0,
      });
      expect(log.path).toBe('/acme/shop/web/logged');
      expect(log.totalMs).toBeGreaterThanOrEqual(0);
      expect(log.serverMs).toBeGreaterThanOrEqual(0);
      expect(log.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    } finally {
      off();
    }
  });

  it('reports per-server runtime stats', async () => {
    await dp.sync(routing([server(i1), server(i2, { state: 'maint' })]));
    await request(`${dp.gatewayUrl}/acme/shop/web/`);
    await sleep(10);
    const stats = await dp.stats();
    const s1 = stats.find((s) => s.backend === 'web.shop.acme' && s.server === 'i1');
    const s2 = stats.find((s) => s.backend === 'web.shop.acme' && s.server === 'i2');
    expect(s1?.totalSessions).toBeGreaterThan(0);
    expect(s2?.state).toMatch(/MAINT/);
  });

  it('rejects bad input naming the field', async () => {
    await expect(
      dp.sync({ backends: [{ name: 'web.shop.acme', aliases: [], servers: [server(i1, { weight: 999 })] }] }),
    ).rejects.toThrow(/weight/);
    await expect(dp.setServerState('web.shop.acme', 'ghost', 'maint')).rejects.toThrow(/ghost/);
  });
}
