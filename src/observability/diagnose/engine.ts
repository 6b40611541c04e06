/**
 * Pure fault-layer rules: per-instance signals in, a verdict with evidence
 * out. The order of the layers is the order of causation on one machine:
 * a lossy network makes requests slow and failing, a starved container makes
 * them slow, so network evidence explains code symptoms, container evidence
 * explains code symptoms, and only errors or latency with a healthy network
 * and healthy resources are put on the code.
 *
 * Peers matter: an instance is compared with the other instances of its app
 * (the same code under the same load), so "p99 is 3x its peers" finds the
 * odd one out without a fixed latency budget.
 */
import type { Diagnosis, Evidence, InstanceSignals, Layer, Suspect } from './types.ts';

/** Thresholds, documented in docs/observability.md. */
export const RULES = {
  /** Retransmitted segments in the window on the instance's flows. */
  retransmits: 5,
  /** Failed connects (refused or timed out) on the instance's flows, and this many times its peers'. */
  failedConnects: 5,
  peerRatio: 3,
  /** RTT above this many times the peers' median, and above rttFloorMs. */
  rttRatio: 5,
  rttFloorMs: 2,
  /** Share of CFS periods throttled (mean over the window). */
  throttled: 0.2,
  /** Memory use as a share of the limit. */
  memoryShare: 0.9,
  /** Error share of the requests an instance served. */
  errorRate: 0.02,
  /** p99 above this many times the peers' median, and above latencyFloorMs. */
  latencyRatio: 3,
  latencyFloorMs: 50,
  /** Requests an instance must have served before its error share counts. */
  minRequests: 10,
} as const;

const median = (xs: number[]): number | null => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

const fmtPct = (v: number): string => `${(v * 100).toFixed(1)}%`;

export interface EngineInput {
  app: string;
  windowSeconds: number;
  nowMs: number;
  instances: InstanceSignals[];
  /** Evidence about an instance restarting or being killed in the window (exit records). */
  exits: { instance: string; reason: string; at: string }[];
  downstream: Diagnosis['downstream'];
  sources: Diagnosis['sources'];
}

function instanceEvidence(
  i: InstanceSignals,
  peers: InstanceSignals[],
  exits: EngineInput['exits'],
): Evidence[] {
  const ev: Evidence[] = [];
  const add = (e: Omit<Evidence, 'instance'>): void => void ev.push({ ...e, instance: i.instance });
  // Network
  // A busy host retransmits now and then everywhere; evidence is an instance well above its peers.
  const peerRetrans = median(peers.map((p) => p.retransmits).filter((v): v is number => v !== null)) ?? 0;
  if (
    i.retransmits !== null &&
    i.retransmits >= RULES.retransmits &&
    i.retransmits > RULES.peerRatio * peerRetrans
  ) {
    add({
      layer: 'network',
      kind: 'tcp-retransmits',
      value: i.retransmits,
      threshold: RULES.retransmits,
      detail: `${i.retransmits} TCP segments retransmitted on this instance's connections`,
    });
  }
  const peerFailed = median(peers.map((p) => p.failedConnects).filter((v): v is number => v !== null)) ?? 0;
  // Connections refused by a process that exited, restarted or is not ready yet are explained
  // by the container (nothing was listening), not by the network.
  const down = !i.ready || exits.some((e) => e.instance === i.instance);
  if (
    !down &&
    i.failedConnects !== null &&
    i.failedConnects >= RULES.failedConnects &&
    i.failedConnects > RULES.peerRatio * peerFailed
  ) {
    add({
      layer: 'network',
      kind: 'tcp-connect-failed',
      value: i.failedConnects,
      threshold: RULES.failedConnects,
      detail: `${i.failedConnects} connections to or from this instance were refused or timed out`,
    });
  }
  const peerRtt = median(peers.map((p) => p.rttMs).filter((v): v is number => v !== null));
  if (
    i.rttMs !== null &&
    i.rttMs > RULES.rttFloorMs &&
    (peerRtt === null || i.rttMs > RULES.rttRatio * peerRtt)
  ) {
    add({
      layer: 'network',
      kind: 'tcp-rtt',
      value: i.rttMs,
      threshold: Math.max(RULES.rttFloorMs, RULES.rttRatio * (peerRtt ?? 0)),
      detail: `smoothed RTT ${i.rttMs.toFixed(2)} ms${peerRtt !== null ? ` vs ${peerRtt.toFixed(2)} ms on its peers` : ''}`,
    });
  }
  // Container
  if (i.throttled !== null && i.throttled >= RULES.throttled) {
    add({
      layer: 'container',
      kind: 'cpu-throttled',
      value: i.throttled,
      threshold: RULES.throttled,
      detail: `CPU throttled in ${fmtPct(i.throttled)} of scheduling periods (cgroup quota exhausted)`,
    });
  }
  if (
    i.memoryBytes !== null &&
    i.memoryLimitBytes &&
    i.memoryBytes / i.memoryLimitBytes >= RULES.memoryShare
  ) {
    const share = i.memoryBytes / i.memoryLimitBytes;
    add({
      layer: 'container',
      kind: 'memory-pressure',
      value: share,
      threshold: RULES.memoryShare,
      detail: `memory at ${fmtPct(share)} of its limit (${Math.round(i.memoryBytes / 1048576)} of ${Math.round(i.memoryLimitBytes / 1048576)} MiB)`,
    });
  }
  if (i.oomKills > 0) {
    add({
      layer: 'container',
      kind: 'oom-killed',
      value: i.oomKills,
      threshold: 0,
      detail: `${i.oomKills} OOM kill(s) in the instance's memory cgroup`,
    });
  }
  // Only an OOM kill says the container's resources ended the process. A failed liveness check
  // or a crash is the code stopping to answer (a service answering 500 to a share of requests
  // also fails some liveness checks and is restarted): it stays a code symptom, so it adds to
  // that instance's 5xx instead of explaining them away as a resource problem.
  for (const x of exits.filter((e) => e.instance === i.instance)) {
    const oom = x.reason === 'oom-killed';
    add({
      layer: oom ? 'container' : 'code',
      kind: oom ? 'oom-killed' : 'restarted',
      value: 1,
      threshold: 0,
      detail: `exited (${x.reason}) at ${x.at} and was restarted`,
    });
  }
  // Code (symptoms; kept only when nothing above explains them)
  if (i.requests >= RULES.minRequests && i.errorRate >= RULES.errorRate) {
    add({
      layer: 'code',
      kind: 'http-5xx',
      value: i.errorRate,
      threshold: RULES.errorRate,
      detail: `${i.errors} of ${i.requests} requests (${fmtPct(i.errorRate)}) answered 5xx or not at all`,
    });
  }
  const peerP99 = median(peers.map((p) => p.p99Ms).filter((v): v is number => v !== null));
  if (
    i.p99Ms !== null &&
    i.p99Ms > RULES.latencyFloorMs &&
    (peerP99 === null ? false : i.p99Ms > RULES.latencyRatio * peerP99)
  ) {
    add({
      layer: 'code',
      kind: 'latency',
      value: i.p99Ms,
      threshold: RULES.latencyRatio * peerP99!,
      detail: `p99 ${i.p99Ms} ms vs ${peerP99} ms on its peers`,
    });
  }
  if (i.errorLogLines > 0 && ev.some((e) => e.layer === 'code')) {
    add({
      layer: 'code',
      kind: 'log-exceptions',
      value: i.errorLogLines,
      threshold: 0,
      detail: `${i.errorLogLines} error/exception lines in its recent log`,
    });
  }
  return ev;
}

/** Strength of one piece of evidence, relative to its threshold (so layers compare). */
function weight(e: Evidence): number {
  if (e.threshold <= 0) return 2;
  return Math.min(10, e.value / e.threshold);
}

export function diagnose(input: EngineInput): Diagnosis {
  const evidence: Evidence[] = [];
  const suspects: Suspect[] = [];
  for (const i of input.instances) {
    const peers = input.instances.filter((p) => p.instance !== i.instance);
    const ev = instanceEvidence(i, peers, input.exits);
    evidence.push(...ev);
    const byLayer = new Map<Layer, Evidence[]>();
    for (const e of ev) byLayer.set(e.layer, [...(byLayer.get(e.layer) ?? []), e]);
    // Causal order: the first layer with evidence explains the ones after it.
    for (const layer of ['network', 'container', 'code'] as const) {
      const es = byLayer.get(layer);
      if (!es) continue;
      suspects.push({
        layer,
        instance: i.instance,
        score: Math.round(es.reduce((s, e) => s + weight(e), 0) * 100) / 100,
        reason: es.map((e) => e.detail).join('; '),
      });
      break;
    }
  }
  suspects.sort((a, b) => b.score - a.score);
  const top = suspects[0];
  const base = {
    app: input.app,
    at: new Date(input.nowMs).toISOString(),
    windowSeconds: input.windowSeconds,
    suspects,
    evidence,
    instances: input.instances,
    downstream: input.downstream,
    sources: input.sources,
  };
  if (top) {
    const where = `instance ${top.instance}`;
    const what =
      top.layer === 'network'
        ? 'the network'
        : top.layer === 'container'
          ? 'the container (resources)'
          : 'the code (errors or latency with a healthy network and resources)';
    return {
      ...base,
      verdict: top.layer,
      instance: top.instance,
      summary: `${what} at ${where}: ${top.reason}`,
    };
  }
  const bad = input.downstream.filter((d) => d.errorRate >= RULES.errorRate);
  if (bad.length > 0) {
    const d = bad[0]!;
    return {
      ...base,
      verdict: 'healthy',
      summary: `${input.app} itself looks healthy; its calls to ${d.app} fail (${fmtPct(d.errorRate)}): diagnose ${d.app}`,
    };
  }
  const served = input.instances.reduce((s, i) => s + i.requests, 0);
  if (input.instances.length === 0 || (served === 0 && !input.sources.resources)) {
    return {
      ...base,
      verdict: 'unknown',
      summary: `no traffic or resource data for ${input.app} in the last ${input.windowSeconds} s`,
    };
  }
  return {
    ...base,
    verdict: 'healthy',
    summary: `no evidence of a fault in ${input.app} in the last ${input.windowSeconds} s`,
  };
}
