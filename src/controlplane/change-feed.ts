/**
 * Tails the store's change log and fans events out to in-process subscribers
 * (controllers, SSE clients). Polling the log rather than trusting in-process
 * notifications means a write made by another control-plane replica on the
 * same PostgreSQL is seen too; `poke()` makes local writes visible at once.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { ChangeEvent, Store } from '../store/store.ts';

export interface ChangeFeedOptions {
  /** @default 250 */
  pollIntervalMs?: number;
}

/** Events per store read: each carries its whole resource, so a page is a big result. @default 100 */
export const FEED_PAGE = 100;

export type ChangeListener = (ev: ChangeEvent) => void;

export class ChangeFeed {
  private readonly store: Store;
  private readonly pollIntervalMs: number;
  private readonly listeners = new Set<ChangeListener>();
  private lastSeq = 0;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private again = false;
  private errors = 0;
  private lastError: string | undefined;

  constructor(store: Store, opts: ChangeFeedOptions = {}) {
    this.store = store;
    this.pollIntervalMs = opts.pollIntervalMs ?? 250;
  }

  /** Start tailing from the current end of the log. */
  async start(): Promise<void> {
    this.lastSeq = await this.store.latestSeq();
    this.timer = setInterval(() => this.poke(), this.pollIntervalMs);
    this.timer.unref();
  }

  get seq(): number {
    return this.lastSeq;
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Read new changes now (coalesced with any poll in flight). */
  poke(): void {
    if (this.polling) {
      this.again = true;
      return;
    }
    this.polling = this.pollOnce().finally(() => {
      this.polling = undefined;
      if (this.again) {
        this.again = false;
        this.poke();
      }
    });
  }

  private async pollOnce(): Promise<void> {
    try {
      for (;;) {
        const batch = await this.store.changesSince(this.lastSeq, FEED_PAGE);
        for (const ev of batch) {
          this.lastSeq = ev.seq;
          for (const l of this.listeners) {
            try {
              l(ev);
            } catch {
              // A faulty subscriber must not stop the feed for the others.
            }
          }
        }
        if (batch.length < FEED_PAGE) break;
        // A backlog (a 1000-resource apply is 1000 events) is read page by page, with turns between.
        await nextTurn();
      }
    } catch (err) {
      this.errors++;
      this.lastError = String(err);
    }
  }

  status(): { seq: number; subscribers: number; errors: number; lastError?: string } {
    return {
      seq: this.lastSeq,
      subscribers: this.listeners.size,
      errors: this.errors,
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.polling;
    this.listeners.clear();
  }
}
