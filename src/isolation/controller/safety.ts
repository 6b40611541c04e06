/**
 * Safety rules between "a signature matched" and "take the instance out of
 * traffic". Pure: given the match, the policy and what the workload looks
 * like right now, decide what to do and say why. The controller records the
 * decision and its reason in the incident, so every automatic action (and
 * every action not taken) is explained.
 */
import type { Action } from '../signatures/types.ts';
import type { EffectivePolicy } from './policy.ts';

export interface SafetyContext {
  /** The rule's action. */
  action: Action;
  policy: EffectivePolicy;
  /** Instances of the workload that serve traffic now, excluding the faulty one. */
  otherReady: number;
  /** Instances of the workload (not quarantined), including the faulty one. */
  total: number;
  /** Isolations of this workload in the last 60 s. */
  recentIsolations: number;
  /** Distinct instances of the workload with a match in the last 10 s, including this one. */
  recentlyFaulty: number;
  /**
   * For a latency match: how many of the other ready instances are slower than their own
   * baseline right now (p99 at least PEER_SLOW_FACTOR x), of how many that could be judged.
   */
  peersSlow?: { slow: number; judged: number };
  /** For a latency match: share of the instance's CPU periods throttled by its cgroup in the last 2 s. */
  throttledRatio?: number;
  /**
   * For a latency match, probes that time out, or no answer while requests wait: peers of
   * the workload not serving now (starting replacements, restarting, taken out), and how
   * long ago the last one left traffic.
   */
  loadShift?: { notReady: number; msAgo: number };
}

/**
 * A latency match, probe timeouts or a silence with requests waiting this soon after a peer
 * left traffic, while capacity is still short, is the load it shed.
 */
export const LOAD_SHIFT_WINDOW_MS = 30_000;

/** A slow instance throttled in this share of its CPU periods is at its limit: overloaded, not faulty. */
export const OVERLOAD_THROTTLE_RATIO = 0.25;

/** A peer at this multiple of its own p99 baseline counts as slowed down too. */
export const PEER_SLOW_FACTOR = 2;

export interface Decision {
  action: Action | 'none';
  reason: string;
}

export const MASS_FAULT_WINDOW_MS = 10_000;

export function decide(c: SafetyContext): Decision {
  if (c.action === 'alert') return { action: 'alert', reason: 'the signature only alerts' };
  if (c.action === 'restart') {
    return {
      action: 'restart',
      reason:
        'the process ended: it cannot be kept, so it leaves traffic at once and the runtime restarts it',
    };
  }
  const p = c.policy;
  if (!p.enabled) {
    return { action: 'alert', reason: 'isolation is disabled for this app (spec.isolation.enabled: false)' };
  }
  // A fault on most instances at once is rarely in the instances: a database, a
  // downstream or a bad config they share. Isolating them would empty the backend.
  if (c.total >= 2 && c.recentlyFaulty / c.total > p.massFaultRatio) {
    return {
      action: 'alert',
      reason: `${c.recentlyFaulty} of ${c.total} instances look faulty within ${MASS_FAULT_WINDOW_MS / 1000} s (more than ${Math.round(p.massFaultRatio * 100)}%): suspect a shared dependency, not isolating`,
    };
  }
  // Slow because it is at its own CPU limit: more load than its share (often because a peer
  // left and its load moved here). Isolating it moves that load onto the rest, which then slow
  // down the same way: the cascade a bank cannot afford. Capacity is the answer, not isolation.
  if (c.throttledRatio !== undefined && c.throttledRatio >= OVERLOAD_THROTTLE_RATIO) {
    return {
      action: 'alert',
      reason: `throttled in ${Math.round(c.throttledRatio * 100)}% of its CPU periods over the last 2 s: overloaded at its CPU limit, not faulty; not isolating (add replicas or CPU)`,
    };
  }
  // Slow right after a peer left traffic, before its replacement serves: this instance took the
  // peer's share (a small accept backlog overflows, SYNs wait for their 1 s retransmission).
  // Isolating it would shed that load onto fewer instances still: the cascade again.
  if (c.loadShift && c.loadShift.notReady > 0 && c.loadShift.msAgo <= LOAD_SHIFT_WINDOW_MS) {
    return {
      action: 'alert',
      reason: `${c.loadShift.notReady} other instance(s) out of traffic (the last left ${(c.loadShift.msAgo / 1000).toFixed(1)} s ago): its slowness is the load they shed, not a fault of its own; not isolating while capacity is short`,
    };
  }
  // Slow everywhere at once is the host or a dependency (CPU starvation, a slow database), not
  // this instance: taking it out moves its load onto peers that are just as slow. Weighed before
  // the first isolation, since latency rises on every instance within the same second or two.
  if (c.peersSlow && c.peersSlow.judged > 0 && c.peersSlow.slow * 2 >= c.peersSlow.judged) {
    return {
      action: 'alert',
      reason: `${c.peersSlow.slow} of ${c.peersSlow.judged} other instance(s) are slower than their own baseline too (p99 at least ${PEER_SLOW_FACTOR}x): suspect a shared cause (host CPU, a dependency), not isolating`,
    };
  }
  if (c.otherReady < p.minHealthy) {
    return {
      action: 'alert',
      reason: `isolating would leave ${c.otherReady} ready instance(s), below minHealthy ${p.minHealthy}: kept in traffic`,
    };
  }
  if (c.recentIsolations >= p.maxIsolationsPerMinute) {
    return {
      action: 'alert',
      reason: `${c.recentIsolations} isolations in the last minute reached maxIsolationsPerMinute ${p.maxIsolationsPerMinute}: not isolating`,
    };
  }
  return {
    action: 'isolate',
    reason: `${c.otherReady} other ready instance(s) keep serving (minHealthy ${p.minHealthy})`,
  };
}
