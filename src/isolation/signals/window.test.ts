import { describe, expect, it } from 'vitest';
import { classifyTermination } from './request.ts';
import type { RequestSignal } from './types.ts';
import { InstanceWindow } from './window.ts';

function req(at: number, status = 200, totalMs = 10, tsc = '----'): RequestSignal {
  return {
    type: 'request',
    at,
    startedAt: at - totalMs,
    method: 'GET',
    status,
    totalMs,
    serverMs: totalMs,
    retries: 0,
    terminationState: tsc,
    outcome: classifyTermination(tsc, status),
  };
}

describe('InstanceWindow request queries', () => {
  it('counts requests and faults that ended within the last N ms', () => {
    const w = new InstanceWindow();
    w.observe(req(1000, 200));
    w.observe(req(1500, 503));
    w.observe(req(1900, 200));
    w.observe(req(2000, 500));
    expect(w.requestCounts(1000, 2000)).toMatchObject({ requests: 3, faults: 2 });
    expect(w.requestCounts(100, 2000)).toMatchObject({ requests: 1, faults: 1 }); // (1900, 2000]
    // Requests stamped after `now` are not counted yet.
    expect(w.requestCounts(5000, 1600)).toMatchObject({ requests: 2, faults: 1 });
  });

  it('stays exact after the ring wraps', () => {
    const w = new InstanceWindow({ capacity: 16 });
    for (let i = 0; i < 100; i++) w.observe(req(i * 10, i % 3 === 0 ? 503 : 200));
    // The ring holds the last 16 requests (840..990): faults at i = 84, 87, 90, 93, 96, 99.
    expect(w.requestCounts(1_000_000, 990)).toMatchObject({ requests: 16, faults: 6 });
    // Last 50 ms: i = 95..99 -> faults at 96, 99.
    expect(w.requestCounts(50, 990)).toMatchObject({ requests: 5, faults: 2 });
  });

  it('tracks consecutive server faults and resets on a good answer', () => {
    const w = new InstanceWindow();
    w.observe(req(1, 503));
    w.observe(req(2, 504, 5, 'sH--'));
    expect(w.consecutiveFaults).toBe(2);
    w.observe(req(3, 404));
    expect(w.consecutiveFaults).toBe(0);
    w.observe(req(4, 503));
    w.observe(req(5, 200, 5, 'CD--')); // client abort: neither a failure nor an answer
    w.observe(req(6, -1, 900, 'CH--')); // client gave up waiting: neutral for the streak
    expect(w.consecutiveFaults).toBe(1);
    w.observe(req(7, 502, 5, 'SH--'));
    expect(w.lastStreakFaults(5).map((r) => r.status)).toEqual([503, 502]);
  });

  it('streaks connection failures apart from answers: a refusal is not a 5xx', () => {
    const w = new InstanceWindow();
    w.observe(req(1, 503));
    w.observe(req(2, 503, 5, 'SC--'));
    w.observe(req(3, -1, 5, 'sC--'));
    expect(w.consecutiveFaults).toBe(1);
    expect(w.consecutiveConnectFailures).toBe(2);
    expect(w.lastConnectFailures(5).map((r) => r.at)).toEqual([2, 3]);
    // Both are still faults for rates.
    expect(w.requestCounts(10, 3)).toMatchObject({ requests: 3, faults: 3 });
    w.observe(req(4, 200));
    expect(w.consecutiveConnectFailures).toBe(0);
    expect(w.consecutiveFaults).toBe(0);
  });

  it('never streaks failures inferred from counters, but counts them in rates', () => {
    const w = new InstanceWindow();
    w.observe(req(1, 503));
    // A poll's worth of inferred failures, all stamped at once.
    for (let i = 0; i < 5; i++)
      w.observe({ ...req(2, -1, 0, 'retried-l7'), outcome: 'http-5xx', inferred: true });
    for (let i = 0; i < 5; i++)
      w.observe({ ...req(2, -1, 0, 'retried-conn'), outcome: 'connect-refused', inferred: true });
    expect(w.consecutiveFaults).toBe(1);
    expect(w.consecutiveConnectFailures).toBe(0);
    expect(w.requestCounts(10, 2)).toMatchObject({ requests: 11, faults: 11 });
    // ...and they do not break a logged streak either.
    w.observe(req(3, 500));
    expect(w.consecutiveFaults).toBe(2);
  });

  it('clamps slightly out-of-order request times so windows stay sorted', () => {
    const w = new InstanceWindow();
    w.observe(req(1000));
    w.observe(req(995));
    expect(w.lastRequests(2).map((r) => r.at)).toEqual([1000, 1000]);
  });

  it('computes nearest-rank percentiles over the window, honouring minSamples', () => {
    const w = new InstanceWindow();
    for (let i = 1; i <= 100; i++) w.observe(req(1000 + i, 200, i));
    expect(w.latencyPercentile(50, 1000, 1100)).toBe(50);
    expect(w.latencyPercentile(99, 1000, 1100)).toBe(99);
    expect(w.latencyPercentile(90, 10, 1100)).toBe(99); // last 10 ms: 91..100 ended after 1090 -> 91..100
    expect(w.latencyPercentile(99, 1000, 1100, 101)).toBeUndefined();
    expect(w.latencyPercentile(99, 1000, 500)).toBeUndefined();
  });
});

describe('InstanceWindow latency baseline', () => {
  const opts = {
    baselineHorizonMs: 60_000,
    baselineExcludeMs: 5000,
    baselineSliceMs: 1000,
    baselineMinSamples: 50,
  };

  it('is not trusted until it has the minimum number of samples', () => {
    const w = new InstanceWindow(opts);
    for (let i = 0; i < 49; i++) w.observe(req(i * 100, 200, 20));
    expect(w.baseline(99, 20_000)).toBeUndefined();
    w.observe(req(4900, 200, 20));
    const b = w.baseline(99, 20_000);
    expect(b?.samples).toBe(50);
    expect(b?.valueMs).toBeGreaterThanOrEqual(20);
    expect(b?.valueMs).toBeLessThan(21.5); // log buckets: within ~5%
  });

  it('excludes the most recent span so an ongoing slowdown does not raise its own baseline', () => {
    const w = new InstanceWindow(opts);
    for (let i = 0; i < 100; i++) w.observe(req(i * 100, 200, 10)); // 0..9.9 s at 10 ms
    for (let i = 0; i < 40; i++) w.observe(req(10_000 + i * 100, 200, 1000)); // 10..14 s at 1 s
    const b = w.baseline(99, 14_000);
    expect(b?.valueMs).toBeLessThan(11);
    expect(b?.samples).toBe(90); // slices that ended by 14000 - 5000: [0, 1000) .. [8000, 9000)
  });

  it('forgets samples older than the horizon', () => {
    const w = new InstanceWindow(opts);
    for (let i = 0; i < 100; i++) w.observe(req(i * 10, 200, 500)); // first second: slow
    for (let i = 0; i < 600; i++) w.observe(req(2000 + i * 100, 200, 10)); // 2..62 s: fast
    expect(w.baseline(99, 30_000)?.valueMs).toBeGreaterThan(400);
    expect(w.baseline(99, 70_000)?.valueMs).toBeLessThan(11);
    // Moving time backwards rebuilds from what is kept instead of corrupting the sums.
    expect(w.baseline(99, 68_000)?.valueMs).toBeLessThan(11);
  });
});

describe('InstanceWindow answers', () => {
  it('marks demand unanswered since the earliest failed probe after the last success', () => {
    const w = new InstanceWindow();
    w.observe({ type: 'probe', at: 1000, ok: true, latencyMs: 2 });
    w.observe({ type: 'probe', at: 1500, ok: false, latencyMs: 300, error: 'timeout' });
    w.observe({ type: 'probe', at: 1800, ok: false, latencyMs: 300, error: 'timeout' });
    expect(w.unansweredSince).toBe(1200);
    expect(w.consecutiveProbeFailures).toBe(2);
    expect(w.probeFailuresSince).toBe(1200);
    expect(w.sinceLastSuccessMs(2000)).toBe(1000);
    w.observe(req(1900, 200));
    expect(w.unansweredSince).toBeUndefined();
    expect(w.consecutiveProbeFailures).toBe(2); // a request success does not end a probe streak
  });

  it('ignores demand that began before the last success, and demand before any success', () => {
    const w = new InstanceWindow();
    w.observe({ type: 'inflight', at: 500, count: 3 });
    expect(w.unansweredSince).toBeUndefined(); // never answered yet: starting, not hung
    w.observe(req(1000, 200));
    w.observe(req(6000, 504, 5500, 'sH--')); // started at 500, before the success at 1000
    expect(w.unansweredSince).toBeUndefined();
    w.observe({ type: 'inflight', at: 6100, count: 2 });
    expect(w.unansweredSince).toBe(6100);
    expect(w.inflight).toBe(2);
  });

  it('treats silence after an exit as a restart in progress until the new process answers', () => {
    const w = new InstanceWindow();
    w.observe({ type: 'probe', at: 1000, ok: true, latencyMs: 2 });
    w.observe({ type: 'probe', at: 1300, ok: false, latencyMs: 300 });
    expect(w.unansweredSince).toBe(1000);
    w.observe({ type: 'exit', at: 1400, reason: 'signaled', code: null, signal: 'SIGKILL' });
    expect(w.unansweredSince).toBeUndefined();
    w.observe({ type: 'probe', at: 1700, ok: false, latencyMs: 300 });
    expect(w.unansweredSince).toBeUndefined();
    expect(w.consecutiveProbeFailures).toBe(1);
    w.observe({ type: 'probe', at: 2000, ok: true, latencyMs: 2 });
    w.observe({ type: 'probe', at: 2500, ok: false, latencyMs: 300 });
    expect(w.unansweredSince).toBe(2200);
  });

  it('rejects inconsistent options with the option name', () => {
    expect(() => new InstanceWindow({ baselineExcludeMs: 10_000, baselineHorizonMs: 5000 })).toThrow(
      /baselineExcludeMs \(10000\) must be below baselineHorizonMs/,
    );
    expect(() => new InstanceWindow({ capacity: 0 })).toThrow(/capacity/);
  });

  it('sums cgroup throttling over the samples of a window', () => {
    const w = new InstanceWindow();
    expect(w.throttledRatio(2000, 1000)).toBeUndefined();
    w.observe({ type: 'cpu-throttle', at: 500, throttledPeriods: 10, nrPeriods: 10 });
    w.observe({ type: 'cpu-throttle', at: 1500, throttledPeriods: 2, nrPeriods: 10 });
    w.observe({ type: 'cpu-throttle', at: 2500, throttledPeriods: 0, nrPeriods: 10 });
    expect(w.throttledRatio(2000, 2500)).toBeCloseTo(0.1); // (1500, 2500]: 2 of 20
    expect(w.throttledRatio(3000, 2500)).toBeCloseTo(0.4); // all three: 12 of 30
  });
});
