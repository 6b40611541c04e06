import { describe, expect, it } from 'vitest';
import { diagnose, type EngineInput } from './engine.ts';
import type { InstanceSignals } from './types.ts';

const healthy = (instance: string, o: Partial<InstanceSignals> = {}): InstanceSignals => ({
  instance,
  phase: 'ready',
  ready: true,
  restarts: 0,
  requests: 500,
  errors: 0,
  errorRate: 0,
  p99Ms: 12,
  retransmits: 0,
  resets: 0,
  failedConnects: 0,
  rttMs: 0.05,
  cpu: 0.1,
  throttled: 0,
  memoryBytes: 40e6,
  memoryLimitBytes: 128 * 1048576,
  oomKills: 0,
  errorLogLines: 0,
  ...o,
});

const input = (instances: InstanceSignals[]): EngineInput => ({
  app: 'bank/ledger',
  windowSeconds: 30,
  nowMs: 0,
  instances,
  exits: [],
  downstream: [],
  sources: { l7: true, l4: true, resources: true, logs: true },
});

describe('fault-layer rules', () => {
  it('puts retransmissions on the network even when errors and latency follow', () => {
    const d = diagnose(
      input([healthy('a'), healthy('b', { retransmits: 80, errors: 40, errorRate: 0.08, p99Ms: 900 })]),
    );
    expect(d).toMatchObject({ verdict: 'network', instance: 'b' });
    expect(d.evidence.some((e) => e.kind === 'tcp-retransmits' && e.instance === 'b')).toBe(true);
  });

  it('puts CPU throttling on the container, not on the code it slows down', () => {
    const d = diagnose(input([healthy('a'), healthy('b', { throttled: 0.7, p99Ms: 400 })]));
    expect(d).toMatchObject({ verdict: 'container', instance: 'b' });
  });

  it('does not blame the network for connections refused while the instance restarted', () => {
    const d = diagnose({
      ...input([
        healthy('a'),
        healthy('b', { failedConnects: 12, throttled: 0.8, ready: false, phase: 'starting' }),
      ]),
      exits: [{ instance: 'b', reason: 'liveness-failed', at: '2026-01-01T00:00:00Z' }],
    });
    expect(d).toMatchObject({ verdict: 'container', instance: 'b' });
    expect(d.evidence.some((e) => e.kind === 'tcp-connect-failed')).toBe(false);
  });

  it('keeps 5xx on the code when they also failed a liveness check and the instance restarted', () => {
    // Seen in CI: 30% 500s failed /livez too; the restart used to count as a container fault,
    // which hid the instance's own 5xx and put a peer's few errors on top.
    const d = diagnose({
      ...input([
        healthy('a', { requests: 47, errors: 10, errorRate: 0.21, restarts: 1 }),
        healthy('b', { requests: 58, errors: 3, errorRate: 0.052 }),
      ]),
      exits: [{ instance: 'a', reason: 'liveness-failed', at: '2026-01-01T00:00:00Z' }],
    });
    expect(d).toMatchObject({ verdict: 'code', instance: 'a' });
    expect(d.evidence.filter((e) => e.instance === 'a').map((e) => e.kind)).toEqual([
      'restarted',
      'http-5xx',
    ]);
  });

  it('puts an OOM kill on the container', () => {
    const d = diagnose({
      ...input([healthy('a'), healthy('b', { requests: 40, errors: 5, errorRate: 0.125 })]),
      exits: [{ instance: 'b', reason: 'oom-killed', at: '2026-01-01T00:00:00Z' }],
    });
    expect(d).toMatchObject({ verdict: 'container', instance: 'b' });
  });

  it('puts memory near its limit on the container', () => {
    const d = diagnose(input([healthy('a'), healthy('b', { memoryBytes: 125 * 1048576 })]));
    expect(d).toMatchObject({ verdict: 'container', instance: 'b' });
  });

  it('puts 5xx with a healthy network and resources on the code', () => {
    const d = diagnose(
      input([healthy('a'), healthy('b', { errors: 250, errorRate: 0.5, errorLogLines: 3 })]),
    );
    expect(d).toMatchObject({ verdict: 'code', instance: 'b' });
    expect(d.evidence.map((e) => e.kind)).toEqual(['http-5xx', 'log-exceptions']);
  });

  it('is healthy without evidence, and points at a failing dependency', () => {
    expect(diagnose(input([healthy('a'), healthy('b')])).verdict).toBe('healthy');
    const d = diagnose({
      ...input([healthy('a')]),
      downstream: [{ app: 'bank/ledger', edge: 'x->y', requests: 100, errorRate: 0.3, p99Ms: 5 }],
    });
    expect(d.summary).toContain('diagnose bank/ledger');
  });
});
