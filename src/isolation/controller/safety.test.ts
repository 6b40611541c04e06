import { describe, expect, it } from 'vitest';
import { effectivePolicy } from './policy.ts';
import { decide, type SafetyContext } from './safety.ts';

const base: SafetyContext = {
  action: 'isolate',
  policy: effectivePolicy(undefined),
  otherReady: 3,
  total: 4,
  recentIsolations: 0,
  recentlyFaulty: 1,
};

describe('decide', () => {
  it('isolates when enough healthy instances remain', () => {
    expect(decide(base)).toMatchObject({ action: 'isolate', reason: expect.stringMatching(/3 other ready/) });
  });

  it('passes restart and alert through, whatever the safety state', () => {
    expect(decide({ ...base, action: 'restart', otherReady: 0 }).action).toBe('restart');
    expect(decide({ ...base, action: 'alert' }).action).toBe('alert');
  });

  it('never isolates below minHealthy', () => {
    const d = decide({ ...base, otherReady: 1, policy: effectivePolicy({ minHealthy: 2 }) });
    expect(d).toEqual({
      action: 'alert',
      reason: 'isolating would leave 1 ready instance(s), below minHealthy 2: kept in traffic',
    });
    expect(decide({ ...base, otherReady: 0 }).action).toBe('alert');
  });

  it('limits the isolation rate', () => {
    expect(decide({ ...base, recentIsolations: 3 }).reason).toMatch(/maxIsolationsPerMinute 3/);
    expect(decide({ ...base, recentIsolations: 2 }).action).toBe('isolate');
  });

  it('suspects a shared dependency when most instances fail at once', () => {
    const d = decide({ ...base, recentlyFaulty: 3 });
    expect(d.action).toBe('alert');
    expect(d.reason).toMatch(/3 of 4 instances look faulty .* suspect a shared dependency/);
    expect(decide({ ...base, recentlyFaulty: 2 }).action).toBe('isolate');
  });

  it('only alerts when isolation is disabled for the app', () => {
    expect(decide({ ...base, policy: effectivePolicy({ enabled: false }) }).reason).toMatch(/disabled/);
  });

  it('does not isolate a slow instance while half or more of its peers are slower than their own baselines too', () => {
    const shared = decide({ ...base, peersSlow: { slow: 1, judged: 2 } });
    expect(shared.action).toBe('alert');
    expect(shared.reason).toMatch(/^1 of 2 other instance\(s\) are slower than their own baseline too/);
    expect(decide({ ...base, peersSlow: { slow: 1, judged: 3 } }).action).toBe('isolate');
    // Nothing to compare with (no baselines yet): judged on its own.
    expect(decide({ ...base, peersSlow: { slow: 0, judged: 0 } }).action).toBe('isolate');
  });

  it('does not isolate a slow instance that is at its CPU limit (overloaded, not faulty)', () => {
    const d = decide({ ...base, throttledRatio: 0.6 });
    expect(d.action).toBe('alert');
    expect(d.reason).toMatch(/^throttled in 60% of its CPU periods over the last 2 s: overloaded/);
    expect(decide({ ...base, throttledRatio: 0.1 }).action).toBe('isolate');
  });

  it('does not isolate a slow instance while a peer that just left traffic is not replaced yet', () => {
    const d = decide({ ...base, loadShift: { notReady: 1, msAgo: 1200 } });
    expect(d.action).toBe('alert');
    expect(d.reason).toMatch(
      /^1 other instance\(s\) out of traffic \(the last left 1\.2 s ago\): its slowness is the load/,
    );
    // Capacity back (every peer serving), or the loss long past: judged on its own.
    expect(decide({ ...base, loadShift: { notReady: 0, msAgo: 1200 } }).action).toBe('isolate');
    expect(decide({ ...base, loadShift: { notReady: 1, msAgo: 31_000 } }).action).toBe('isolate');
  });
});
