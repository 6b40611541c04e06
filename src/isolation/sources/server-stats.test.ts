import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ServerSpec } from '../../dataplane/dataplane.ts';
import { HaproxyDataPlane } from '../../dataplane/haproxy/haproxy-dataplane.ts';
import {
  request,
  startBackend,
  type BackendBehaviour,
  type TestBackend,
} from '../../dataplane/testing/backends.ts';
import { freePort } from '../../util/ports.ts';
import { sleep, waitFor } from '../../util/time.ts';
import { SERVER_FAULT_OUTCOMES } from '../signals/types.ts';
import { SignatureEngine } from '../signatures/engine.ts';
import { SignalHub } from './hub.ts';
import { RequestLogSource } from './request-log.ts';
import { ServerStatsSource } from './server-stats.ts';
import { RecordingSink, instance } from './testing.ts';
import type { InstanceStatus } from '../../runtime/driver.ts';

describe('request log + server stats sources with a real HAProxy', () => {
  let dp: HaproxyDataPlane;
  let workDir: string;
  const backends: TestBackend[] = [];
  let hub: SignalHub | undefined;
  const start = async (name: string, b?: BackendBehaviour): Promise<TestBackend> => {
    const x = await startBackend(name, b);
    backends.push(x);
    return x;
  };
  const server = (b: TestBackend): ServerSpec => ({
    name: b.name,
    address: '127.0.0.1',
    port: b.port,
    weight: 100,
    state: 'ready',
  });
  /** Hub with the two HAProxy-fed sources over `ids`, delivering to a recorder and an engine. */
  const watch = (
    ids: string[],
  ): { sink: RecordingSink; engine: SignatureEngine; stats: ServerStatsSource } => {
    const sink = new RecordingSink();
    const engine = new SignatureEngine();
    const insts: InstanceStatus[] = ids.map((id) => instance(id));
    for (const id of ids) engine.watch(id);
    const stats = new ServerStatsSource({ dataPlane: dp, intervalMs: 100 });
    hub = new SignalHub({
      instances: () => insts,
      sources: [new RequestLogSource({ dataPlane: dp }), stats],
    });
    hub.start({
      signal: (id, s) => {
        sink.signal(id, s);
        engine.observe(id, s);
      },
      logLine: () => undefined,
    });
    return { sink, engine, stats };
  };
  const faults = (sink: RecordingSink, id: string): number =>
    sink.of(id, 'request').filter((s) => SERVER_FAULT_OUTCOMES.has(s.outcome)).length;

  beforeAll(async () => {
    workDir = mkdtempSync(path.join(os.tmpdir(), 'bw-sources-'));
    dp = await HaproxyDataPlane.create({
      workDir,
      binds: [{ address: '127.0.0.1', port: await freePort() }],
    });
  });
  afterAll(async () => {
    await dp?.close();
    rmSync(workDir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await hub?.stop();
    hub = undefined;
    for (const b of backends.splice(0)) await b.close();
  });

  it('attributes retried 5xx attempts to the failing server while clients get 200, without double counting', async () => {
    const bad = await start('bad5', 'http-500');
    const good = await start('good5');
    await dp.sync({ backends: [{ name: 'f.app.proj', aliases: [], servers: [server(bad), server(good)] }] });
    const { sink, engine, stats } = watch(['bad5', 'good5']);
    await sleep(250); // baseline taken

    const url = `${dp.gatewayUrl}/proj/app/f/x`;
    const gets = [];
    for (let i = 0; i < 30; i++) gets.push(await request(url));
    expect(gets.filter((r) => r.status !== 200)).toEqual([]);
    expect(bad.hits).toBeGreaterThanOrEqual(10);

    // Every attempt the failing server saw is reported once, as a server fault, though no log names it.
    await waitFor('retried attempts reported', () => faults(sink, 'bad5') === bad.hits, { timeoutMs: 3000 });
    expect(
      sink.of('bad5', 'request').every((s) => s.outcome === 'http-5xx' && s.status === -1 && s.inferred),
    ).toBe(true);
    expect(sink.of('good5', 'request').filter((s) => s.outcome === 'ok')).toHaveLength(30);
    expect(faults(sink, 'good5')).toBe(0);
    // Inferred failures make a rate, never a streak (a poll brings them in a bunch).
    const rules = engine.activeMatches('bad5').map((m) => m.rule);
    expect(rules).toContain('error-rate');
    expect(rules).not.toContain('http-5xx-burst');
    expect(engine.activeMatches('good5')).toEqual([]);

    // Unkeyed POSTs are not retried: the log reports the 500s, the stats source must not add them again.
    const hitsBefore = bad.hits;
    for (let i = 0; i < 6; i++) await request(url, { method: 'POST', body: `${i}` });
    expect(bad.hits).toBeGreaterThan(hitsBefore);
    await waitFor('logged 500s', () => faults(sink, 'bad5') === bad.hits, { timeoutMs: 3000 });
    await sleep(500);
    expect(faults(sink, 'bad5')).toBe(bad.hits);
    expect(sink.of('bad5', 'request').filter((s) => s.status === 500)).toHaveLength(bad.hits - hitsBefore);
    expect(stats.counters().retriedAttemptsReported).toBe(hitsBefore);
  });

  it('reports connection failures of a killed server as connect-refused attempts', async () => {
    const dead = await start('deadc');
    const good = await start('goodc');
    await dp.sync({ backends: [{ name: 'c.app.proj', aliases: [], servers: [server(dead), server(good)] }] });
    const { sink } = watch(['deadc', 'goodc']);
    const url = `${dp.gatewayUrl}/proj/app/c/x`;
    for (let i = 0; i < 4; i++) expect((await request(url)).status).toBe(200);
    await dead.kill();
    const results = [];
    // Before HAProxy's own checks mark it down (fall 2 x inter 1 s), round robin still picks it.
    for (let i = 0; i < 10; i++) results.push(await request(url));
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    await waitFor('failed attempts', () => faults(sink, 'deadc') >= 3, { timeoutMs: 3000 });
    // New connections to the dead server are refused (connect-refused). A request HAProxy put on an
    // idle keep-alive connection before it saw that connection close fails after being sent and is
    // retried as a layer-7 retry, which the server counters cannot tell from a retried 5xx (CI saw
    // one). Either way every failed attempt is the dead server's, none the good one's.
    const failed = sink.of('deadc', 'request').filter((s) => s.outcome !== 'ok');
    expect(failed.map((s) => s.outcome).filter((o) => o !== 'connect-refused' && o !== 'http-5xx')).toEqual(
      [],
    );
    expect(faults(sink, 'goodc')).toBe(0);
  });

  it('samples requests in flight on a server that stopped answering', async () => {
    const hung = await start('hangi', 'hang');
    await dp.sync({ backends: [{ name: 'h.app.proj', aliases: [], servers: [server(hung)] }] });
    const { sink } = watch(['hangi']);
    // A POST without key is never retried: it waits on the hung server.
    const pending = request(`${dp.gatewayUrl}/proj/app/h/x`, { method: 'POST', body: 'x' });
    await waitFor('inflight > 0', () => sink.of('hangi', 'inflight').some((s) => s.count >= 1), {
      timeoutMs: 2000,
    });
    await hung.close();
    await pending;
    await waitFor('inflight back to 0', () => sink.of('hangi', 'inflight').at(-1)?.count === 0, {
      timeoutMs: 2000,
    });
  });
});
