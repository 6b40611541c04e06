/**
 * One interval of observations, the unit of the in-memory history: L7 edge
 * statistics from the gateway's request log, L4 flow statistics from the
 * node agent, resource usage of instances. Snapshots merge (sum counters,
 * merge histograms, keep the newest gauges), which is how windows and the
 * coarse history are built.
 */
import { mergeInto, type SparseHistogram } from './latency.ts';

export interface L7Stats {
  from: string;
  to: string;
  requests: number;
  /** 5xx answers and requests no server answered. */
  errors: number;
  latency: SparseHistogram;
}

export interface L4Stats {
  from: string;
  to: string;
  opened: number;
  failed: number;
  /** Established connections at the end of the interval (a gauge). */
  established: number;
  bytesToServer: number;
  bytesToClient: number;
  retransmits: number;
  resets: number;
  rttUsSum: number;
  rttN: number;
}

export interface ResourceStats {
  /** CPU cores used over the interval. */
  cpu: number | null;
  memoryBytes: number | null;
  memoryLimitBytes: number | null;
  /** Share of CFS periods throttled over the interval, 0..1. */
  throttled: number | null;
  oomKills: number;
}

export interface Snapshot {
  /** End of the interval, ms since the epoch. */
  atMs: number;
  /** Length covered, ms (a coarse snapshot covers several intervals). */
  spanMs: number;
  l7: Map<string, L7Stats>;
  l4: Map<string, L4Stats>;
  /** Instance id -> resources at the end of the interval. */
  resources: Map<string, ResourceStats>;
  /**
   * Instance id -> what the gateway's per-server counters say happened in the interval. The
   * request log shows only the final attempt of a retried request, so a server whose 5xx
   * answers were retried elsewhere looks clean in the log; its counters do not.
   */
  servers: Map<string, ServerCounters>;
}

export interface ServerCounters {
  sessions: number;
  responses5xx: number;
}

export const edgeKey = (from: string, to: string): string => `${from}->${to}`;

export function emptySnapshot(atMs: number, spanMs: number): Snapshot {
  return { atMs, spanMs, l7: new Map(), l4: new Map(), resources: new Map(), servers: new Map() };
}

/** Fold `s` into `into` (which must be the older one for gauges to end up newest). */
export function mergeSnapshot(into: Snapshot, s: Snapshot): void {
  into.atMs = Math.max(into.atMs, s.atMs);
  into.spanMs += s.spanMs;
  for (const [k, e] of s.l7) {
    const t = into.l7.get(k);
    if (!t) {
      into.l7.set(k, { ...e, latency: new Map(e.latency) });
      continue;
    }
    t.requests += e.requests;
    t.errors += e.errors;
    mergeInto(t.latency, e.latency);
  }
  for (const [k, e] of s.l4) {
    const t = into.l4.get(k);
    if (!t) {
      into.l4.set(k, { ...e });
      continue;
    }
    t.opened += e.opened;
    t.failed += e.failed;
    t.established = e.established;
    t.bytesToServer += e.bytesToServer;
    t.bytesToClient += e.bytesToClient;
    t.retransmits += e.retransmits;
    t.resets += e.resets;
    t.rttUsSum += e.rttUsSum;
    t.rttN += e.rttN;
  }
  // An L4 edge that went quiet holds no connections any more.
  for (const [k, t] of into.l4) if (!s.l4.has(k) && s.atMs >= into.atMs) t.established = 0;
  for (const [id, c] of s.servers) {
    const t = into.servers.get(id);
    into.servers.set(
      id,
      t ? { sessions: t.sessions + c.sessions, responses5xx: t.responses5xx + c.responses5xx } : { ...c },
    );
  }
  for (const [id, r] of s.resources) {
    const t = into.resources.get(id);
    into.resources.set(id, t ? { ...r, oomKills: t.oomKills + r.oomKills } : { ...r });
  }
}
