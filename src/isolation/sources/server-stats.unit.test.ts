/**
 * The accounting of ServerStatsSource against scripted counters: a late log
 * line must not be reported as a failed attempt unless HAProxy's retry
 * counters moved (the false isolations seen in bench/isolation).
 */
import { describe, expect, it } from 'vitest';
import type { RequestLog, ServerRuntimeStats } from '../../dataplane/dataplane.ts';
import { sleep } from '../../util/time.ts';
import { ServerStatsSource } from './server-stats.ts';
import { RecordingSink, instance } from './testing.ts';

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
});
