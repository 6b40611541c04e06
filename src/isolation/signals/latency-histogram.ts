/**
 * Log-bucketed latency histogram: fixed memory, O(1) add/merge per bucket and
 * percentiles within ~5% relative error. Used for an instance's own latency
 * baseline over minutes, where keeping and sorting every sample would cost
 * too much at hundreds of requests per second across dozens of instances.
 */

/** Bucket b >= 1 covers [GROWTH^(b-1), GROWTH^b) ms; bucket 0 covers [0, 1) ms. */
const GROWTH = 1.05;
const LOG_GROWTH = Math.log(GROWTH);
/** GROWTH^300 ~ 2.3e6 ms (38 min): enough for any request; larger values land in the last bucket. */
export const BUCKETS = 301;

export function bucketOf(ms: number): number {
  if (!(ms >= 1)) return 0;
  return Math.min(BUCKETS - 1, 1 + Math.floor(Math.log(ms) / LOG_GROWTH));
}

/** Upper bound of a bucket: a conservative (slightly high) stand-in for the samples in it. */
export function bucketUpperMs(b: number): number {
  return b === 0 ? 1 : GROWTH ** b;
}

export class LatencyHistogram {
  readonly counts = new Uint32Array(BUCKETS);
  total = 0;

  add(ms: number): void {
    this.counts[bucketOf(ms)]!++;
    this.total++;
  }

  /** this += other (sign 1) or this -= other (sign -1). */
  merge(other: LatencyHistogram, sign: 1 | -1): void {
    const c = this.counts;
    const o = other.counts;
    for (let i = 0; i < BUCKETS; i++) c[i] = c[i]! + sign * o[i]!;
    this.total += sign * other.total;
  }

  clear(): void {
    this.counts.fill(0);
    this.total = 0;
  }

  /** Nearest-rank percentile (0 < p <= 100), or undefined when empty. */
  percentile(p: number): number | undefined {
    if (this.total === 0) return undefined;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return bucketUpperMs(i);
    }
    return bucketUpperMs(BUCKETS - 1);
  }
}
