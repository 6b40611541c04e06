/**
 * The accounting of ServerStatsSource against scripted counters: a late log
 * line must not be reported as a failed attempt unless HAProxy's retry
 * counters moved (the false isolations seen in bench/isolation).
 */
import { describe, expect, it } from 'vitest';
import type { RequestLog, ServerRuntimeStats } from '../../dataplane/dataplane.ts';
import { sleep } from '../../util/time.ts';
import { ServerStatsSource } from './server-stats.ts';
import { MapView, RecordingSink, instance } from './testing.ts';

function scripted() {
  const row: ServerRuntimeStats = {
    backend: 'web.app.proj',
    server: 'i1',
    state: 'UP',
    checkStatus: 'L7OK',
    currentSessions: 0,
    totalSessions: 0,
    responses5xx: 0,
    retries: 0,
    redispatches: 0,
  };
  const listeners = new Set<(l: RequestLog) => void>();
  const log = (): void => {
    for (const l of listeners)
      l({
        at: new Date().toISOString(),
        clientIp: '127.0.0.1',
        backend: row.backend,
        server: row.server,
        method: 'GET',
        path: '/',
        status: 200,
        totalMs: 1,
        serverMs: 1,
        retries: 0,
        terminationState: '----',
        bytesRead: 10,
      });
  };
  return {
    row,
    log,
    dataPlane: {
      stats: async () => [{ ...row }],
      onRequest: (l: (x: RequestLog) => void) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
    },
  };
}

describe('ServerStatsSource accounting', () => {
  it('ignores attempts whose log lines arrive late when no retry counter moved', async () => {
    const s = scripted();
    const src = new ServerStatsSource({ dataPlane: s.dataPlane, intervalMs: 20, logGraceMs: 40 });
    const sink = new RecordingSink();
    src.start(sink, {
      list: () => [instance('i1')],
      get: (id) => (id === 'i1' ? instance('i1') : undefined),
    });
    try {
      await sleep(60);
      s.row.totalSessions += 3; // three finished attempts...
      await sleep(200); // ...whose log lines are much later than the grace period
      for (let i = 0; i < 3; i++) s.log();
      await sleep(60);
      expect(sink.of('i1', 'request')).toEqual([]);
      // A real hidden failure moves the retry counters: it is reported.
      s.row.totalSessions += 1;
      s.row.retries! += 1;
      s.row.redispatches! += 1;
      await sleep(200);
      expect(sink.of('i1', 'request').map((r) => r.outcome)).toEqual(['http-5xx']);
    } finally {
      await src.stop();
    }
  });

  it("starts a restarted process's accounting afresh: its predecessor's failed attempts are not its own", async () => {
    const s = scripted();
    const src = new ServerStatsSource({
      dataPlane: s.dataPlane,
      intervalMs: 20,
      logGraceMs: 40,
      admitGraceMs: 0,
    });
    const sink = new RecordingSink();
    const view = new MapView(instance('i1', { pid: 100 }));
    src.start(sink, view);
    try {
      await sleep(60);
      // The process dies: attempts are refused and redispatched, then it restarts as pid 101
      // before the accounting settled those attempts.
      s.row.totalSessions += 4;
      s.row.redispatches! += 4;
      view.set(instance('i1', { pid: 101, restarts: 1 }));
      await sleep(200);
      expect(sink.of('i1', 'request')).toEqual([]);
      // The new run's own failures are charged to it.
      s.row.totalSessions += 2;
      s.row.redispatches! += 2;
      await sleep(200);
      expect(sink.of('i1', 'request').map((r) => [r.outcome, r.inferred])).toEqual([
        ['connect-refused', true],
        ['connect-refused', true],
      ]);
    } finally {
      await src.stop();
    }
  });

  it('charges nothing inferred to an instance for admitGraceMs after it joined traffic', async () => {
    const s = scripted();
    const src = new ServerStatsSource({
      dataPlane: s.dataPlane,
      intervalMs: 20,
      logGraceMs: 40,
      admitGraceMs: 400,
    });
    const sink = new RecordingSink();
    const view = new MapView(instance('i1', { ready: false, phase: 'starting' }));
    src.start(sink, view);
    try {
      await sleep(60);
      view.set(instance('i1'));
      await sleep(60);
      s.row.totalSessions += 3;
      s.row.redispatches! += 3;
      await sleep(200);
      expect(sink.of('i1', 'request')).toEqual([]);
      expect(src.counters().graced).toBe(3);
      await sleep(300); // past the grace
      s.row.totalSessions += 1;
      s.row.redispatches! += 1;
      await sleep(200);
      expect(sink.of('i1', 'request')).toHaveLength(1);
    } finally {
      await src.stop();
    }
  });

  it('refuses a negative admitGraceMs with the option name', () => {
    const s = scripted();
    expect(() => new ServerStatsSource({ dataPlane: s.dataPlane, admitGraceMs: -1 })).toThrow(/admitGraceMs/);
  });
});
