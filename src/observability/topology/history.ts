/**
 * The in-memory history: a ring of per-interval snapshots for the recent
 * past (default 5 minutes at 1 s) and a ring of coarse snapshots, each the
 * merge of `coarseEvery` intervals, for the last hour. Plain arrays with a
 * fixed capacity: no time-series database, nothing on disk, bounded memory.
 */
import { emptySnapshot, mergeSnapshot, type Snapshot } from './snapshot.ts';

export interface HistoryOptions {
  /** Fine snapshots kept. @default 300 */
  fineCapacity?: number;
  /** Intervals per coarse snapshot. @default 10 */
  coarseEvery?: number;
  /** Coarse snapshots kept (with the defaults: 360 x 10 s = 1 hour). @default 360 */
  coarseCapacity?: number;
}

class Ring<T> {
  readonly #items: (T | undefined)[];
  #next = 0;
  #size = 0;
  constructor(capacity: number) {
    this.#items = new Array<T | undefined>(capacity);
  }
  push(v: T): void {
    this.#items[this.#next] = v;
    this.#next = (this.#next + 1) % this.#items.length;
    this.#size = Math.min(this.#size + 1, this.#items.length);
  }
  /** Oldest first. */
  toArray(): T[] {
    const out: T[] = [];
    const cap = this.#items.length;
    for (let i = 0; i < this.#size; i++) {
      const v = this.#items[(this.#next - this.#size + i + cap) % cap];
      if (v !== undefined) out.push(v);
    }
    return out;
  }
  get size(): number {
    return this.#size;
  }
}

export class SnapshotHistory {
  readonly #fine: Ring<Snapshot>;
  readonly #coarse: Ring<Snapshot>;
  readonly #coarseEvery: number;
  #pending: Snapshot | undefined;
  #pendingCount = 0;

  constructor(opts: HistoryOptions = {}) {
    this.#fine = new Ring(opts.fineCapacity ?? 300);
    this.#coarse = new Ring(opts.coarseCapacity ?? 360);
    this.#coarseEvery = opts.coarseEvery ?? 10;
  }

  push(s: Snapshot): void {
    this.#fine.push(s);
    this.#pending ??= emptySnapshot(s.atMs - s.spanMs, 0);
    mergeSnapshot(this.#pending, s);
    if (++this.#pendingCount >= this.#coarseEvery) {
      this.#coarse.push(this.#pending);
      this.#pending = undefined;
      this.#pendingCount = 0;
    }
  }

  /**
   * Snapshots covering the last `windowMs` before `nowMs`, oldest first: fine ones
   * when they reach back far enough, otherwise coarse ones plus the fine tail
   * not yet folded into a coarse snapshot.
   */
  window(windowMs: number, nowMs: number): Snapshot[] {
    const from = nowMs - windowMs;
    const fine = this.#fine.toArray();
    if (fine.length === 0 || fine[0]!.atMs - fine[0]!.spanMs <= from || this.#coarse.size === 0) {
      return fine.filter((s) => s.atMs > from);
    }
    const coarse = this.#coarse.toArray().filter((s) => s.atMs > from);
    const lastCoarse = coarse.at(-1)?.atMs ?? -Infinity;
    return [...coarse, ...fine.filter((s) => s.atMs > lastCoarse)];
  }

  /**
   * The full hour, oldest first, for history points: coarse snapshots from before the fine
   * ring's reach, then every fine one (so the recent minutes keep their 1 s resolution).
   */
  all(): Snapshot[] {
    const fine = this.#fine.toArray();
    const fineStart = fine.length > 0 ? fine[0]!.atMs - fine[0]!.spanMs : Infinity;
    return [...this.#coarse.toArray().filter((s) => s.atMs <= fineStart), ...fine];
  }
}

/** Merge a window's snapshots into one (a new object; the history is not changed). */
export function mergeWindow(snapshots: Snapshot[], nowMs: number): Snapshot {
  const out = emptySnapshot(nowMs, 0);
  out.atMs = 0;
  for (const s of snapshots) mergeSnapshot(out, s);
  if (out.atMs === 0) out.atMs = nowMs;
  return out;
}
