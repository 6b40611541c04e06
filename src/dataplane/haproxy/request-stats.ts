/**
 * Per-instance request aggregation over a sliding time window: counts per
 * status class and latency percentiles. Feeds isolation signals (5xx bursts,
 * latency regressions) without keeping unbounded history.
 */
import type { RequestLog } from '../dataplane.ts';

export interface RequestStatsOptions {
  /** @default 60000 */
  windowMs?: number;
  /** Samples kept per instance (oldest dropped first). @default 10000 */
  maxSamplesPerInstance?: number;
  now?: () => number;
}

export interface InstanceRequestStats {
  backend: string;
  server: string;
  count: number;
  byClass: { '2xx': number; '3xx': number; '4xx': number; '5xx': number; other: number };
  p50Ms: number;
  p99Ms: number;
  retries: number;
}

/**
 * Fixed-capacity ring of samples in columns: adding is O(1) (an earlier
 * array + splice version cost ~80 us per line once full, more than HAProxy
 * spends on the request itself).
 */
class SampleRing {
  readonly at: Float64Array;
  readonly status: Uint16Array;
  readonly totalMs: Float64Array;
  readonly retries: Uint8Array;
  private start = 0;
  size = 0;

  constructor(capacity: number) {
    this.at = new Float64Array(capacity);
    this.status = new Uint16Array(capacity);
    this.totalMs = new Float64Array(capacity);
    this.retries = new Uint8Array(capacity);
  }

  push(at: number, status: number, totalMs: number, retries: number): void {
    const cap = this.at.length;
    const i = (this.start + this.size) % cap;
    this.at[i] = at;
    this.status[i] = Math.max(0, Math.min(65535, status));
    this.totalMs[i] = totalMs;
    this.retries[i] = Math.max(0, Math.min(255, retries));
    if (this.size < cap) this.size++;
    else this.start = (this.start + 1) % cap;
  }

  /** Drop samples older than `cutoff` (they are oldest-first). */
  dropBefore(cutoff: number): void {
    const cap = this.at.length;
    while (this.size > 0 && (this.at[this.start] ?? 0) < cutoff) {
      this.start = (this.start + 1) % cap;
      this.size--;
    }
  }

  /** Physical index of the k-th oldest sample. */
  index(k: number): number {
    return (this.start + k) % this.at.length;
  }
}

export class RequestStats {
  private readonly windowMs: number;
  private readonly maxSamples: number;
  private readonly now: () => number;
  /**
   * backend -> server -> samples. Two levels rather than one `backend/server`
   * key: `add` runs once per proxied request and a key string per line was a
   * measurable part of the receiver's cost.
   */
  private readonly samples = new Map<string, Map<string, SampleRing>>();

  constructor(opts: RequestStatsOptions = {}) {
    this.windowMs = opts.windowMs ?? 60_000;
    this.maxSamples = opts.maxSamplesPerInstance ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /** Record a log line; lines without a server (404s, no instance up) are not per-instance. */
  add(log: RequestLog): void {
    if (!log.server) return;
    let servers = this.samples.get(log.backend);
    if (!servers) this.samples.set(log.backend, (servers = new Map()));
    let ring = servers.get(log.server);
    if (!ring) servers.set(log.server, (ring = new SampleRing(this.maxSamples)));
    ring.push(this.now(), log.status, log.totalMs, log.retries);
  }

  /** Snapshot of one instance, or undefined when it had no request in the window. */
  get(backend: string, server: string): InstanceRequestStats | undefined {
    const servers = this.samples.get(backend);
    const ring = servers?.get(server);
    if (!servers || !ring) return undefined;
    ring.dropBefore(this.now() - this.windowMs);
    if (ring.size === 0) {
      servers.delete(server);
      if (servers.size === 0) this.samples.delete(backend);
      return undefined;
    }
    const byClass = { '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0, other: 0 };
    let retries = 0;
    const lat = new Float64Array(ring.size);
    for (let k = 0; k < ring.size; k++) {
      const i = ring.index(k);
      const c = Math.floor((ring.status[i] ?? 0) / 100);
      if (c === 2) byClass['2xx']++;
      else if (c === 3) byClass['3xx']++;
      else if (c === 4) byClass['4xx']++;
      else if (c === 5) byClass['5xx']++;
      else byClass.other++;
      retries += ring.retries[i] ?? 0;
      lat[k] = ring.totalMs[i] ?? 0;
    }
    lat.sort();
    const sorted = Array.from(lat);
    return {
      backend,
      server,
      count: ring.size,
      byClass,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      retries,
    };
  }

  all(): InstanceRequestStats[] {
    const out: InstanceRequestStats[] = [];
    for (const [backend, servers] of [...this.samples]) {
      for (const server of [...servers.keys()]) {
        const s = this.get(backend, server);
        if (s) out.push(s);
      }
    }
    return out;
  }
}

/** Nearest-rank percentile of an ascending array; 0 for an empty one. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? 0;
}
