import http from 'node:http';
import type net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../../util/ports.ts';
import { sleep, waitFor } from '../../util/time.ts';
import { ProbeSource, defaultProbeTarget } from './probes.ts';
import { MapView, RecordingSink, instance } from './testing.ts';

interface Srv {
  port: number;
  hits: number;
  hang: boolean;
  /** Answer after this long (a slow but healthy instance). */
  delayMs: number;
  close(): Promise<void>;
}

async function healthServer(): Promise<Srv> {
  const sockets = new Set<net.Socket>();
  const s: Srv = {
    port: 0,
    hits: 0,
    hang: false,
    delayMs: 0,
    close: async () => {
      for (const x of sockets) x.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server = http.createServer((req, res) => {
    s.hits++;
    if (s.hang) return; // a deadlocked instance: accepts, never answers
    const answer = (): void => void res.end(req.url === '/healthz' ? 'ok' : 'no');
    if (s.delayMs > 0) setTimeout(answer, s.delayMs);
    else answer();
  });
  server.on('connection', (c: net.Socket) => {
    sockets.add(c);
    c.on('close', () => sockets.delete(c));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  s.port = (server.address() as net.AddressInfo).port;
  return s;
}

describe('ProbeSource', () => {
  let source: ProbeSource | undefined;
  const servers: Srv[] = [];
  afterEach(async () => {
    await source?.stop();
    source = undefined;
    for (const s of servers.splice(0)) await s.close();
  });

  it('reports failed probes within about a second once an HTTP instance stops answering', async () => {
    const srv = await healthServer();
    servers.push(srv);
    const view = new MapView(instance('h-0', { pid: process.pid, ports: { http: srv.port } }));
    const sink = new RecordingSink();
    source = new ProbeSource({
      target: (i) => ({ http: { port: i.ports['http']!, path: '/healthz' } }),
      intervalMs: 200,
      timeoutMs: 400,
    });
    source.start(sink, view);
    await waitFor('ok probes', () => sink.of('h-0', 'probe').filter((p) => p.ok).length >= 3, {
      timeoutMs: 3000,
    });
    expect(sink.of('h-0', 'probe').every((p) => p.ok && p.latencyMs < 400)).toBe(true);

    srv.hang = true;
    const t0 = Date.now();
    await waitFor('3 failed probes', () => sink.of('h-0', 'probe').filter((p) => !p.ok).length >= 3, {
      timeoutMs: 4000,
    });
    // One probe in flight per instance: 3 timeouts of 400 ms take at least ~1.2 s, and not much more.
    expect(Date.now() - t0).toBeLessThan(3000);
    const failed = sink.of('h-0', 'probe').filter((p) => !p.ok);
    expect(failed[0]?.error).toMatch(/no answer within 400 ms/);
    expect(failed[0]).toMatchObject({ timedOut: true });
    expect(failed.every((p) => p.latencyMs >= 390)).toBe(true);
    // Never more than one probe outstanding on the hung instance.
    expect(srv.hits - sink.of('h-0', 'probe').length).toBeLessThanOrEqual(1);
  });

  it('fails an HTTP probe on a non-2xx/3xx answer and a TCP probe on a refused connection', async () => {
    const srv = await healthServer();
    servers.push(srv);
    const closed = await freePort();
    const view = new MapView(
      instance('bad-path', { pid: process.pid, ports: { http: srv.port } }),
      instance('tcp-ok', { pid: process.pid, ports: { http: srv.port } }),
      instance('tcp-dead', { pid: process.pid, ports: { http: closed } }),
    );
    const sink = new RecordingSink();
    const httpServer = http.createServer((_q, r) => {
      r.statusCode = 503;
      r.end();
    });
    await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
    const p503 = (httpServer.address() as net.AddressInfo).port;
    try {
      source = new ProbeSource({
        target: (i) =>
          i.id === 'bad-path' ? { http: { port: p503, path: '/ready' } } : defaultProbeTarget(i),
        intervalMs: 50,
      });
      source.start(sink, view);
      await waitFor('all probed', () =>
        ['bad-path', 'tcp-ok', 'tcp-dead'].every((id) => sink.of(id, 'probe').length >= 2),
      );
      expect(sink.of('bad-path', 'probe')[0]).toMatchObject({ ok: false, error: 'GET /ready answered 503' });
      expect(sink.of('tcp-ok', 'probe').every((p) => p.ok)).toBe(true);
      expect(sink.of('tcp-dead', 'probe')[0]?.error).toMatch(/ECONNREFUSED/);
      expect(sink.of('tcp-dead', 'probe')[0]).not.toHaveProperty('timedOut');
    } finally {
      await source?.stop();
      await new Promise<void>((r) => httpServer.close(() => r()));
    }
  });

  it('skips instances not yet ready, without a pid, stopping or quarantined, and bounds concurrency', async () => {
    const srv = await healthServer();
    servers.push(srv);
    srv.hang = true;
    const ports = { http: srv.port };
    const view = new MapView(
      instance('starting', { pid: process.pid, ports, phase: 'starting', ready: false }),
      instance('nopid', { ports }),
      instance('stopping', { pid: process.pid, ports, phase: 'stopping' }),
      instance('quarantined', { pid: process.pid, ports, phase: 'quarantined', ready: false }),
      ...['h1', 'h2', 'h3', 'h4'].map((id) => instance(id, { pid: process.pid, ports })),
    );
    const sink = new RecordingSink();
    source = new ProbeSource({
      target: (i) => ({ http: { port: i.ports['http']!, path: '/healthz' } }),
      intervalMs: 20,
      timeoutMs: 300,
      maxConcurrent: 2,
    });
    source.start(sink, view);
    await sleep(1000);
    const probed = new Set(sink.signals.map((s) => s.id));
    expect([...probed].sort()).toEqual(['h1', 'h2', 'h3', 'h4']);
    const c = source.counters();
    expect(c.inflight).toBeLessThanOrEqual(2);
    expect(c.skippedBusy).toBeGreaterThan(0);
    // 2 slots x 1000 ms / 300 ms timeout: about 6-8 probes, never 4 instances x 50 rounds.
    expect(c.probes).toBeLessThanOrEqual(10);
    await source.stop();
    expect(source.counters().inflight).toBe(0);
  });

  it('judges nothing when this process stalled past the probe timeout (host-wide starvation is no fault of the instance)', async () => {
    const srv = await healthServer();
    servers.push(srv);
    const view = new MapView(instance('s-0', { pid: process.pid, ports: { http: srv.port } }));
    const sink = new RecordingSink();
    source = new ProbeSource({
      target: (i) => ({ http: { port: i.ports['http']!, path: '/healthz' } }),
      intervalMs: 50,
      timeoutMs: 200,
    });
    source.start(sink, view);
    await waitFor('ok probes', () => sink.of('s-0', 'probe').filter((p) => p.ok).length >= 2, {
      timeoutMs: 3000,
    });
    // Block the event loop for 4 timeouts while a probe is in flight (the instance takes 100 ms
    // to answer, so one always is): its timer fires late.
    srv.delayMs = 100;
    for (let i = 0; i < 3; i++) {
      await sleep(60);
      const until = performance.now() + 800;
      while (performance.now() < until) {
        // busy: the control plane starved of CPU
      }
    }
    await sleep(300);
    // Without the lateness check each stall failed the probe in flight ("no answer within
    // 200 ms") although the answer was due 100 ms after it was sent: the answer is read first
    // now, or the probe is inconclusive.
    expect(sink.of('s-0', 'probe').filter((p) => !p.ok)).toEqual([]);
    // A real hang is still seen once the process runs on time again.
    srv.hang = true;
    await waitFor('failed probes', () => sink.of('s-0', 'probe').some((p) => !p.ok), { timeoutMs: 3000 });
  });
});
