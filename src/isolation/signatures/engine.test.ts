import { describe, expect, it } from 'vitest';
import { classifyTermination } from '../signals/request.ts';
import type { RequestSignal, Signal } from '../signals/types.ts';
import { BUILTIN_RULES } from './builtins.ts';
import { SignatureEngine } from './engine.ts';
import { resolveRules } from './rules.ts';
import type { Condition, Match, Rule } from './types.ts';

/** A test bench: fake clock, one engine, helpers that advance time as signals arrive. */
function bench(rules: readonly Rule[] = BUILTIN_RULES, window = {}) {
  let t = 1_000_000;
  const engine = new SignatureEngine({ defaultRules: rules, now: () => t, window });
  const matches: Match[] = [];
  const api = {
    engine,
    matches,
    get now() {
      return t;
    },
    /** Advance the clock to `at` (absolute) and observe. */
    at(at: number, instance: string, s: Signal): Match[] {
      t = Math.max(t, at);
      const m = engine.observe(instance, s);
      matches.push(...m);
      return m;
    },
    /** Advance the clock by `ms`, evaluating every `stepMs` like the controller's tick. */
    tick(ms: number, stepMs = 50): Match[] {
      const out: Match[] = [];
      const end = t + ms;
      while (t < end) {
        t = Math.min(end, t + stepMs);
        out.push(...engine.evaluate(t));
      }
      matches.push(...out);
      return out;
    },
    req(instance: string, status: number, totalMs = 10, tsc = '----', at = t): Match[] {
      const s: RequestSignal = {
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
      return api.at(at, instance, s);
    },
  };
  return api;
}

const only = (name: string, when: Condition, action: Rule['action'] = 'isolate'): Rule[] => [
  { name, when, severity: 'critical', action },
];

describe('consecutive5xx (http-5xx-burst: 3 within 1000 ms)', () => {
  const rules = resolveRules([]).filter((r) => r.name === 'http-5xx-burst');

  it('does not fire on 2 consecutive 5xx', () => {
    const b = bench(rules);
    b.req('i', 503);
    b.tick(100);
    b.req('i', 500);
    b.tick(2000);
    expect(b.matches).toEqual([]);
  });

  it('fires on the 3rd consecutive 5xx within 1 s, with statuses and span in the evidence', () => {
    const b = bench(rules);
    const t0 = b.now;
    b.req('i', 503);
    b.tick(200);
    b.req('i', 500, 10, 'SH--');
    b.tick(212);
    const m = b.req('i', 503);
    expect(m).toHaveLength(1);
    expect(m[0]).toMatchObject({
      instanceId: 'i',
      rule: 'http-5xx-burst',
      severity: 'critical',
      action: 'isolate',
      detectedAt: t0 + 412,
      onsetAt: t0 - 10,
    });
    expect(m[0]!.evidence).toContain('3 consecutive 5xx within 412 ms (503, 500, 503)');
  });

  it('does not fire when 3 5xx are spread over 2 s', () => {
    const b = bench(rules);
    b.req('i', 503);
    b.tick(1000);
    b.req('i', 503);
    b.tick(1000);
    expect(b.req('i', 503)).toEqual([]);
  });

  it('includes the boundary: first to third exactly withinMs apart fires, 1 ms more does not', () => {
    const at1000 = bench(rules);
    const t0 = at1000.now;
    at1000.req('i', 503, 10, '----', t0);
    at1000.req('i', 503, 10, '----', t0 + 500);
    expect(at1000.req('i', 503, 10, '----', t0 + 1000)).toHaveLength(1);
    const at1001 = bench(rules);
    at1001.req('i', 503, 10, '----', t0);
    at1001.req('i', 503, 10, '----', t0 + 500);
    expect(at1001.req('i', 503, 10, '----', t0 + 1001)).toEqual([]);
    // ...but the streak goes on: the 4th within 1 s of the 2nd fires.
    expect(at1001.req('i', 503, 10, '----', t0 + 1400)).toHaveLength(1);
  });

  it('does not fire when a good answer breaks the streak', () => {
    const b = bench(rules);
    b.req('i', 503);
    b.req('i', 503);
    b.req('i', 200);
    expect(b.req('i', 503)).toEqual([]);
  });

  it('counts server timeouts and aborts as failures, client aborts not at all', () => {
    const b = bench(rules);
    b.req('i', 503, 1, '----');
    b.req('i', -1, 5, 'CD--'); // client gone: neither failure nor success
    b.req('i', 504, 5, 'sH--');
    expect(b.req('i', 502, 5, 'SH--')).toHaveLength(1);
  });

  it('leaves connection failures to connectFailures: refusals never make a 5xx streak', () => {
    const b = bench(rules);
    for (let i = 0; i < 5; i++) b.req('i', 503, 1, 'SC--');
    b.req('i', -1, 1, 'sC--');
    expect(b.matches).toEqual([]);
  });

  it('ignores failures inferred from counters: a poll delivers them in a bunch, without the successes between', () => {
    const b = bench(rules);
    for (let i = 0; i < 6; i++) {
      const m = b.at(b.now, 'i', {
        type: 'request',
        at: b.now,
        startedAt: b.now,
        method: '-',
        status: -1,
        totalMs: 0,
        serverMs: -1,
        retries: 0,
        terminationState: 'retried-l7',
        outcome: 'http-5xx',
        inferred: true,
      });
      expect(m).toEqual([]);
    }
  });

  it('keeps instances apart', () => {
    const b = bench(rules);
    b.req('a', 503);
    b.req('b', 503);
    b.req('a', 503);
    expect(b.req('b', 503)).toEqual([]);
  });
});

describe('connectFailures (connect-failures: 3 within 1000 ms)', () => {
  const rules = only('connect-failures', { connectFailures: { count: 3, withinMs: 1000 } });

  it('fires on three refused or timed-out connects in a row, not on answers', () => {
    const b = bench(rules);
    b.req('i', 503);
    b.req('i', 503);
    b.req('i', 503, 1, 'SC--');
    b.req('i', -1, 1000, 'sC--');
    const m = b.req('i', 503, 1, 'SC--');
    expect(m).toHaveLength(1);
    expect(m[0]!.evidence).toMatch(/^3 connection failures in a row within/);
  });

  it('is broken by an answer', () => {
    const b = bench(rules);
    b.req('i', 503, 1, 'SC--');
    b.req('i', 503, 1, 'SC--');
    b.req('i', 200);
    expect(b.req('i', 503, 1, 'SC--')).toEqual([]);
  });
});

describe('errorRate', () => {
  const rules = only('rate', { errorRate: { above: 0.5, windowMs: 1000, minRequests: 10 } });

  it('needs minRequests and a rate strictly above the threshold', () => {
    const b = bench(rules);
    for (let i = 0; i < 9; i++) b.req('i', i % 2 ? 200 : 503); // 5 of 9 fail: too few requests
    expect(b.matches).toEqual([]);
    b.req('i', 200); // 5 of 10 = 0.5: not above
    expect(b.matches).toEqual([]);
    const m = b.req('i', 500); // 6 of 11
    expect(m[0]?.evidence).toContain('6 of 11 requests');
  });

  it('slides: old failures leave the window as time passes', () => {
    const b = bench(rules);
    for (let i = 0; i < 10; i++) b.req('i', 503); // would fire...
    b.engine.reset('i');
    for (let i = 0; i < 6; i++) b.req('i', 503);
    b.tick(1100); // ...but these leave the window
    for (let i = 0; i < 10; i++) b.req('i', 200);
    b.tick(500);
    expect(b.engine.activeMatches('i')).toEqual([]);
  });
});

describe('latency (latency-spike: p99 > 5x own baseline and > 50 ms for 2000 ms)', () => {
  const rules = resolveRules([]).filter((r) => r.name === 'latency-spike');
  const win = { baselineMinSamples: 100, baselineExcludeMs: 5000, baselineHorizonMs: 120_000 };

  /** `seconds` of steady traffic at 100 req/s with latency `ms`, evaluating every 50 ms. */
  function traffic(b: ReturnType<typeof bench>, seconds: number, ms: (i: number) => number): void {
    for (let i = 0; i < seconds * 20; i++) {
      b.req('i', 200, ms(i));
      b.tick(25, 25);
      b.req('i', 200, ms(i));
      b.tick(25, 25);
    }
  }

  it('needs a trusted baseline: a slow instance with no history does not fire', () => {
    const b = bench(rules, { ...win, baselineMinSamples: 10_000 });
    traffic(b, 3, () => 20);
    traffic(b, 5, () => 1000);
    expect(b.matches).toEqual([]);
  });

  it('does not fire on a single slow request', () => {
    const b = bench(rules, win);
    traffic(b, 10, () => 20);
    traffic(b, 5, (i) => (i === 3 ? 3000 : 20));
    expect(b.matches).toEqual([]);
  });

  it('does not fire when the slowdown lasts less than forMs - windowMs (it stays in the 1 s window after)', () => {
    const b = bench(rules, win);
    traffic(b, 10, () => 20);
    traffic(b, 0.8, () => 500);
    traffic(b, 3, () => 20);
    expect(b.matches).toEqual([]);
  });

  it('fires after p99 stays above 5x baseline for 2 s, with onset at the first slow request', () => {
    const b = bench(rules, win);
    traffic(b, 10, () => 20);
    const slowFrom = b.now;
    traffic(b, 4, () => 500);
    expect(b.matches).toHaveLength(1);
    const m = b.matches[0]!;
    expect(m.rule).toBe('latency-spike');
    // Held from the first evaluation after the first slow answer for 2000 ms.
    expect(m.detectedAt - slowFrom).toBeGreaterThanOrEqual(2000);
    expect(m.detectedAt - slowFrom).toBeLessThanOrEqual(2100);
    expect(m.onsetAt).toBe(slowFrom - 500);
    expect(m.evidence).toMatch(/p99 latency 500 ms over the last 1000 ms above 5x baseline p99 2\d ms/);
  });

  it('respects the aboveMs floor for very fast services', () => {
    const b = bench(rules, win);
    traffic(b, 10, () => 2);
    traffic(b, 4, () => 40); // 20x the baseline, but under 50 ms
    expect(b.matches).toEqual([]);
  });

  it('supports an absolute threshold without baseline', () => {
    const b = bench(only('slow', { latency: { percentile: 50, aboveMs: 300, forMs: 500 } }), win);
    traffic(b, 2, () => 400);
    expect(b.matches.map((m) => m.rule)).toEqual(['slow']);
  });
});

describe('noResponse (hang: 1000 ms)', () => {
  const rules = resolveRules([]).filter((r) => r.name === 'hang');
  const probe = (ok: boolean, latencyMs = 2) => ({ type: 'probe' as const, at: 0, ok, latencyMs });

  function healthy(b: ReturnType<typeof bench>): void {
    for (let i = 0; i < 10; i++) {
      b.at(b.now, 'i', { ...probe(true), at: b.now });
      b.tick(200);
    }
  }

  it('fires 1 s after the first unanswered probe was sent, not before', () => {
    const b = bench(rules);
    healthy(b);
    const hungAt = b.now; // probe sent now times out after 300 ms
    b.tick(300);
    b.at(b.now, 'i', { ...probe(false, 300), at: b.now, error: 'timeout' });
    b.tick(600);
    expect(b.matches).toEqual([]);
    b.at(b.now, 'i', { ...probe(false, 300), at: b.now, error: 'timeout' });
    b.tick(100);
    expect(b.matches).toHaveLength(1);
    expect(b.matches[0]).toMatchObject({ rule: 'hang', onsetAt: hungAt, detectedAt: hungAt + 1000 });
    expect(b.matches[0]!.evidence).toMatch(/no successful response for 1000 ms .*2 failed probes in a row/);
  });

  it('fires from in-flight requests that never complete', () => {
    const b = bench(rules);
    b.req('i', 200);
    b.tick(100);
    const t0 = b.now;
    for (let i = 0; i < 12; i++) {
      b.at(b.now, 'i', { type: 'inflight', at: b.now, count: 4 + i });
      b.tick(100);
    }
    expect(b.matches).toHaveLength(1);
    expect(b.matches[0]!.onsetAt).toBe(t0);
    expect(b.matches[0]!.evidence).toContain('requests in flight');
  });

  it('does not fire while answers keep coming, even with requests in flight', () => {
    const b = bench(rules);
    for (let i = 0; i < 40; i++) {
      b.at(b.now, 'i', { type: 'inflight', at: b.now, count: 8 });
      b.req('i', 200, 30);
      b.tick(100);
    }
    expect(b.matches).toEqual([]);
  });

  it('does not fire for a starting instance that never answered', () => {
    const b = bench(rules);
    for (let i = 0; i < 10; i++) {
      b.at(b.now, 'i', { ...probe(false, 300), at: b.now });
      b.tick(300);
    }
    expect(b.matches).toEqual([]);
  });
});

describe('event rules', () => {
  it('probeFailures fires on the Nth failed probe in a row', () => {
    const b = bench(only('p', { probeFailures: { consecutive: 3 } }));
    const p = (ok: boolean) =>
      b.at(b.now, 'i', { type: 'probe', at: b.now, ok, latencyMs: 5, error: ok ? undefined : 'HTTP 500' });
    p(false);
    p(false);
    p(true);
    p(false);
    p(false);
    expect(b.matches).toEqual([]);
    expect(p(false)[0]?.evidence).toMatch(/3 consecutive failed probes .*last error: HTTP 500/);
  });

  it('crash fires on any exit with action restart; a reasons filter narrows it', () => {
    const b = bench();
    const m = b.at(b.now, 'i', {
      type: 'exit',
      at: b.now,
      reason: 'signaled',
      code: null,
      signal: 'SIGKILL',
    });
    expect(m).toMatchObject([{ rule: 'crash', action: 'restart', severity: 'critical', onsetAt: b.now }]);
    expect(m[0]!.evidence).toBe('process killed by SIGKILL');
    const oomOnly = bench(only('oom', { exited: { reasons: ['oom-killed'] } }, 'restart'));
    expect(oomOnly.at(0, 'i', { type: 'exit', at: 0, reason: 'exited', code: 1, signal: null })).toEqual([]);
    expect(
      oomOnly.at(0, 'i', { type: 'exit', at: 0, reason: 'oom-killed', code: null, signal: 'SIGKILL' }),
    ).toHaveLength(1);
  });

  it('stopped fires on a process in state T', () => {
    const b = bench();
    const m = b.at(b.now, 'i', { type: 'stopped', at: b.now });
    expect(m.map((x) => x.rule)).toEqual(['stopped']);
    expect(m[0]!.evidence).toContain('SIGSTOP');
  });

  it('restartLoop counts restarts from the running total within the window', () => {
    const b = bench(only('loop', { restartLoop: { restarts: 3, withinMs: 10_000 } }, 'alert'));
    b.at(0, 'i', { type: 'restart', at: 1_000_000, count: 1 });
    b.at(0, 'i', { type: 'restart', at: 1_020_000, count: 2 }); // 20 s later: the first left the window
    expect(b.matches).toEqual([]);
    const m = b.at(0, 'i', { type: 'restart', at: 1_025_000, count: 4 }); // +2 at once
    expect(m[0]?.evidence).toContain('3 restarts within 5000 ms (restart count now 4)');
  });
});

describe('logPattern', () => {
  const javaOom = [
    'Exception in thread "http-nio-8080-exec-4" java.lang.OutOfMemoryError: Java heap space',
    '\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)',
    '\tat com.bank.ledger.Journal.append(Journal.java:88)',
    '\t... 31 more',
  ];

  it('matches java.lang.OutOfMemoryError in a multi-line trace once, as one event, after the flush delay', () => {
    const b = bench();
    for (const l of javaOom) b.matches.push(...b.engine.observeLogLine('i', 'stderr', l, b.now));
    expect(b.matches).toEqual([]); // held for more frames
    b.tick(50);
    expect(b.matches).toHaveLength(1);
    expect(b.matches[0]).toMatchObject({ rule: 'java-oom-log', action: 'isolate' });
    expect(b.matches[0]!.evidence).toContain('java.lang.OutOfMemoryError: Java heap space"');
    expect(b.matches[0]!.evidence).toContain('(+3 more lines)');
  });

  it('matches V8 heap exhaustion as soon as the next unrelated line arrives', () => {
    const b = bench();
    b.engine.observeLogLine(
      'i',
      'stderr',
      'FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory',
      b.now,
    );
    b.engine.observeLogLine('i', 'stderr', ' 1: 0xb7a940 node::Abort() [node]', b.now);
    const m = b.engine.observeLogLine('i', 'stderr', '<--- JS stacktrace --->', b.now);
    expect(m.map((x) => x.rule)).toEqual(['node-heap-oom']);
  });

  it('honours stream and flags', () => {
    const b = bench(only('panic', { logPattern: { regex: '^panic:', flags: 'im', stream: 'stderr' } }));
    b.at(b.now, 'i', { type: 'log', at: b.now, stream: 'stdout', lines: ['PANIC: not here'] });
    expect(b.matches).toEqual([]);
    expect(
      b.at(b.now, 'i', { type: 'log', at: b.now, stream: 'stderr', lines: ['ok', 'PANIC: here'] }),
    ).toHaveLength(1);
  });
});

describe('memoryNearLimit and cpuThrottled', () => {
  const mem = (usage: number, limit = 1000) => ({
    type: 'memory' as const,
    at: 0,
    usageBytes: usage,
    limitBytes: limit,
  });

  it('memory-near-limit fires after staying above 90% for 1 s, not on a brief peak', () => {
    const b = bench(resolveRules([]).filter((r) => r.name === 'memory-near-limit'));
    b.at(b.now, 'i', { ...mem(950), at: b.now });
    b.tick(500);
    b.at(b.now, 'i', { ...mem(800), at: b.now }); // dropped: the hold restarts
    b.tick(500);
    const t0 = b.now;
    b.at(b.now, 'i', { ...mem(920), at: b.now });
    b.tick(950);
    b.at(b.now, 'i', { ...mem(960), at: b.now });
    expect(b.matches).toEqual([]);
    b.tick(50);
    expect(b.matches).toHaveLength(1);
    expect(b.matches[0]).toMatchObject({ rule: 'memory-near-limit', onsetAt: t0, detectedAt: t0 + 1000 });
    expect(b.matches[0]!.evidence).toMatch(/memory at 96% of its limit .* for 1000 ms, above 90%/);
  });

  it('never fires for an unlimited cgroup', () => {
    const b = bench(resolveRules([]).filter((r) => r.name === 'memory-near-limit'));
    b.at(b.now, 'i', { ...mem(1e12, Infinity), at: b.now });
    b.at(b.now, 'i', { ...mem(1e12, 0), at: b.now });
    b.tick(3000);
    expect(b.matches).toEqual([]);
  });

  it('cpu-throttled alerts after 5 s above half the periods', () => {
    const b = bench(resolveRules([]).filter((r) => r.name === 'cpu-throttled'));
    for (let i = 0; i < 60; i++) {
      b.at(b.now, 'i', { type: 'cpu-throttle', at: b.now, throttledPeriods: 8, nrPeriods: 10 });
      b.tick(100);
    }
    expect(b.matches).toMatchObject([{ rule: 'cpu-throttled', action: 'alert', severity: 'minor' }]);
    expect(b.matches[0]!.detectedAt - b.matches[0]!.onsetAt).toBe(5000);
  });
});

describe('engine behaviour', () => {
  it('reports one active match per instance and rule until reset', () => {
    const b = bench();
    const stop = () => b.at(b.now, 'i', { type: 'stopped', at: b.now });
    expect(stop()).toHaveLength(1);
    expect(stop()).toEqual([]);
    expect(b.engine.activeMatches('i').map((m) => m.rule)).toEqual(['stopped']);
    b.engine.reset('i');
    expect(b.engine.activeMatches('i')).toEqual([]);
    expect(stop()).toHaveLength(1);
  });

  it('applies per-instance rule sets: overrides by name and disabled built-ins', () => {
    const b = bench();
    const strict = resolveRules([
      {
        name: 'http-5xx-burst',
        when: { consecutive5xx: { count: 2, withinMs: 500 } },
        severity: 'critical',
        action: 'isolate',
      },
      { name: 'stopped', enabled: false },
    ]);
    b.engine.watch('strict', strict);
    b.req('strict', 503);
    expect(b.req('strict', 503).map((m) => m.rule)).toEqual(['http-5xx-burst']);
    expect(b.at(b.now, 'strict', { type: 'stopped', at: b.now })).toEqual([]);
    b.req('default', 503);
    expect(b.req('default', 503)).toEqual([]);
  });

  it('re-watching an instance with other rules keeps its history but clears its matches', () => {
    const b = bench();
    b.req('i', 503);
    b.req('i', 503);
    expect(b.req('i', 503).map((m) => m.rule)).toEqual(['http-5xx-burst']);
    const fourInARow = resolveRules([
      {
        name: 'http-5xx-burst',
        when: { consecutive5xx: { count: 4, withinMs: 1000 } },
        severity: 'critical',
        action: 'isolate',
      },
    ]);
    b.engine.watch('i', fourInARow);
    expect(b.engine.activeMatches('i')).toEqual([]);
    expect(b.engine.window('i')?.consecutiveFaults).toBe(3);
    expect(b.req('i', 503).map((m) => m.rule)).toEqual(['http-5xx-burst']);
  });

  it('exposes a status snapshot', () => {
    const b = bench();
    b.req('a', 200);
    b.engine.observeLogLine('a', 'stdout', 'hello', b.now);
    b.tick(60, 60); // flushes the held log line
    expect(b.engine.status()).toMatchObject({
      instances: 1,
      signalsObserved: 2,
      evaluations: 1,
      activeMatches: 0,
    });
    b.engine.forget('a');
    expect(b.engine.status().instances).toBe(0);
  });

  it('processes 100k signals across 50 instances with evaluations quickly', () => {
    const engine = new SignatureEngine({ now: () => 0 });
    const t0 = 1_000_000;
    const start = performance.now();
    let matches = 0;
    for (let i = 0; i < 100_000; i++) {
      const at = t0 + i; // 1000 signals per simulated second: ~20 per instance per second
      const id = `inst-${i % 50}`;
      const status = i % 50 === 7 && i > 50_000 ? 503 : 200;
      matches += engine.observe(id, {
        type: 'request',
        at,
        startedAt: at - 12,
        method: 'GET',
        status,
        totalMs: 12 + (i % 7),
        serverMs: 10,
        retries: 0,
        terminationState: '----',
        outcome: status >= 500 ? 'http-5xx' : 'ok',
      }).length;
      if (i % 50 === 0) matches += engine.evaluate(at).length; // every 50 ms of simulated time
    }
    const elapsedMs = performance.now() - start;
    console.log(`[perf] 100k signals, 50 instances, 2000 evaluations: ${elapsedMs.toFixed(0)} ms`);
    expect(matches).toBeGreaterThanOrEqual(1); // inst-7 turned 100% 5xx
    expect(elapsedMs).toBeLessThan(10_000); // generous: a sanity bound, not a benchmark
  });
});
