/**
 * Cooperative time slicing for long loops on the event-loop thread (a big
 * apply, a reconcile pass over thousands of apps): the loop calls
 * `yieldIfDue()` after each step and gives timers and I/O a turn once it has
 * run `sliceMs`. Awaiting a store call is not enough on its own: PGlite runs
 * in this thread and resolves its promises without ever returning to the
 * event loop, so a loop of awaited queries can starve every other request.
 *
 * @example
 *   const slice = new TimeSlice();
 *   for (const r of batch) { await write(r); await slice.yieldIfDue(); }
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

export class TimeSlice {
  private readonly sliceMs: number;
  private startedAt = performance.now();
  private yields = 0;

  /** @param sliceMs longest run between two yields. @default 5 */
  constructor(sliceMs = 5) {
    this.sliceMs = sliceMs;
  }

  async yieldIfDue(): Promise<void> {
    if (performance.now() - this.startedAt < this.sliceMs) return;
    await nextTurn();
    this.yields++;
    this.startedAt = performance.now();
  }

  /** How often the loop gave way (tests check that a long loop did). */
  get yielded(): number {
    return this.yields;
  }
}
