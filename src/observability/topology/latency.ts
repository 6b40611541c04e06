/**
 * Mergeable latency histogram for per-interval edge statistics: log-spaced
 * buckets (+25% each, 0.25 ms .. ~2 min), stored sparsely because one
 * edge's latencies sit in a handful of buckets. Percentiles are read as the
 * upper bound of the bucket holding the rank (at most 25% high).
 */

const BASE_MS = 0.25;
const GROWTH = 1.25;
const MAX_INDEX = 60;
const LOG_GROWTH = Math.log(GROWTH);

/** Bucket index -> count. */
export type SparseHistogram = Map<number, number>;

export function bucketOf(ms: number): number {
  if (!(ms > BASE_MS)) return 0;
  return Math.min(MAX_INDEX, Math.ceil(Math.log(ms / BASE_MS) / LOG_GROWTH));
}

export function upperBoundMs(index: number): number {
  return BASE_MS * GROWTH ** index;
}

export function observe(h: SparseHistogram, ms: number): void {
  const b = bucketOf(ms);
  h.set(b, (h.get(b) ?? 0) + 1);
}

export function mergeInto(into: SparseHistogram, from: SparseHistogram): void {
  for (const [b, n] of from) into.set(b, (into.get(b) ?? 0) + n);
}

/** p in 0..100; null when the histogram is empty. Rounded to 0.01 ms. */
export function percentile(h: SparseHistogram, p: number): number | null {
  let total = 0;
  for (const n of h.values()) total += n;
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * total));
  let seen = 0;
  for (const b of [...h.keys()].sort((x, y) => x - y)) {
    seen += h.get(b) ?? 0;
    if (seen >= rank) return Math.round(upperBoundMs(b) * 100) / 100;
  }
  return null;
}
