/**
 * The built-in signature library. Names are stable: users override or disable
 * them by name in `spec.isolation.signatures`. Rationale for every threshold
 * (against Kubernetes readiness 10 s x 3, Envoy 5 consecutive 5xx, HAProxy
 * inter 2 s fall 3) is in docs/isolation-signatures.md.
 */
import type { Rule } from './types.ts';

export const BUILTIN_RULES: readonly Rule[] = Object.freeze([
  {
    name: 'start-failure',
    description:
      'The process could not start (no such executable, no permission; a shell exit of 127 or 126): a configuration error, not a crash. The runtime retries with backoff; repeats are one incident with a count.',
    when: { exited: { reasons: ['start-failed'] } },
    severity: 'major',
    action: 'restart',
  },
  {
    name: 'crash',
    description:
      'The process exited (crash, SIGKILL, OOM kill, liveness failure). It cannot be kept alive: replace it, and record the incident.',
    when: { exited: { reasons: ['exited', 'signaled', 'oom-killed', 'liveness-failed'] } },
    severity: 'critical',
    action: 'restart',
  },
  {
    name: 'hang',
    description:
      'No successful response for 1 s while probes fail or requests wait or time out: a deadlock, a stopped process, a saturated event loop.',
    when: { noResponse: { forMs: 1000 } },
    severity: 'critical',
    action: 'isolate',
  },
  {
    name: 'stopped',
    description: 'The process is in state T (SIGSTOP or a job-control stop): it cannot answer until resumed.',
    when: { stopped: {} },
    severity: 'critical',
    action: 'isolate',
  },
  {
    name: 'http-5xx-burst',
    description:
      '3 server-fault answers in a row within 1 s, as logged by the gateway (5xx, aborted or invalid responses). Failures inferred from counters count in error-rate only.',
    when: { consecutive5xx: { count: 3, withinMs: 1000 } },
    severity: 'critical',
    action: 'isolate',
  },
  {
    name: 'connect-failures',
    description:
      '3 connections refused or timed out in a row within 1 s with no answer between them: a live process that does not accept connections (a dead one is the crash rule).',
    when: { connectFailures: { count: 3, withinMs: 1000 } },
    severity: 'critical',
    action: 'isolate',
  },
  {
    name: 'error-rate',
    description:
      'More than half of the requests of the last 2 s failed (at least 10 requests): intermittent faults a streak misses.',
    when: { errorRate: { above: 0.5, windowMs: 2000, minRequests: 10 } },
    severity: 'major',
    action: 'isolate',
  },
  {
    name: 'latency-spike',
    description:
      "p99 latency above 5x the instance's own p99 baseline (and above 50 ms) for 2 s: slow answers from one instance.",
    when: { latency: { percentile: 99, aboveBaselineFactor: 5, aboveMs: 50, forMs: 2000 } },
    severity: 'major',
    action: 'isolate',
  },
  {
    name: 'probe-failures',
    description: '3 active probes failed in a row.',
    when: { probeFailures: { consecutive: 3 } },
    severity: 'major',
    action: 'isolate',
  },
  {
    name: 'java-oom-log',
    description:
      'A JVM logged java.lang.OutOfMemoryError: it is unreliable from now on, keep it for its heap.',
    when: { logPattern: { regex: 'OutOfMemoryError' } },
    severity: 'critical',
    action: 'isolate',
  },
  {
    name: 'node-heap-oom',
    description: 'V8 reported "JavaScript heap out of memory" (the process is about to abort).',
    when: { logPattern: { regex: 'JavaScript heap out of memory' } },
    severity: 'critical',
    action: 'isolate',
  },
  {
    name: 'memory-leak',
    description:
      'Memory above 30% of the cgroup limit, rising steadily for 2 s (a straight line, R² >= 0.9; at least 6% of the limit, in every quarter of the window; no GC dip over 2%) and projected to reach the limit within 10 s: a leak, isolate it while it is alive.',
    when: {
      memoryTrend: {
        reachLimitWithinMs: 10_000,
        aboveRatio: 0.3,
        windowMs: 2000,
        minSamples: 5,
        minR2: 0.9,
        minRiseRatio: 0.06,
        maxDipRatio: 0.02,
      },
    },
    severity: 'major',
    action: 'isolate',
  },
  {
    name: 'memory-leak-fast',
    description:
      'Memory above 55% of the cgroup limit, growing without a dip over 2% for the last 1 s fast enough to reach the limit within 2 s: a leak so fast that the OOM kill would come before memory-leak has watched it for 2 s.',
    when: { memoryTrend: { reachLimitWithinMs: 2000, aboveRatio: 0.55, maxDipRatio: 0.02 } },
    severity: 'major',
    action: 'isolate',
  },
  {
    name: 'memory-near-limit',
    description:
      'Memory above 90% of the cgroup limit for 1 s, growing or not: the backstop for a leak too slow for memory-leak.',
    when: { memoryNearLimit: { aboveRatio: 0.9, forMs: 1000 } },
    severity: 'major',
    action: 'isolate',
  },
  {
    name: 'cpu-throttled',
    description: 'More than half of the CPU periods throttled for 5 s: under-provisioned, not broken.',
    when: { cpuThrottled: { aboveRatio: 0.5, forMs: 5000 } },
    severity: 'minor',
    action: 'alert',
  },
  {
    name: 'restart-loop',
    description: '3 restarts within 60 s: replacing again will not help, a human should look.',
    when: { restartLoop: { restarts: 3, withinMs: 60_000 } },
    severity: 'major',
    action: 'alert',
  },
] satisfies Rule[]);
