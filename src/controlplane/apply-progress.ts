/**
 * Progress of the applies this server runs, for `GET /api/v1/applies`: a big
 * apply (up to 1000 resources, tens of seconds on a busy store) says where it
 * is (parsing, validating, writing N of M) instead of one silent request, and
 * the last few finished ones stay listed with their outcome and duration.
 * In memory: an apply belongs to the request that runs it.
 */
import { randomBytes } from 'node:crypto';

export type ApplyPhase = 'parsing' | 'validating' | 'writing' | 'done' | 'failed';

export interface ApplyProgressRecord {
  /** `apl-<random>`, also sent as the response header `x-bulwark-apply-id`. */
  id: string;
  dryRun: boolean;
  phase: ApplyPhase;
  startedAt: string;
  /** Resources in the request (known once parsed). */
  total?: number;
  /** Resources planned or written so far. */
  done: number;
  created: number;
  updated: number;
  unchanged: number;
  finishedAt?: string;
  durationMs?: number;
  /** Why it failed (phase `failed`). */
  error?: string;
}

/** Finished applies kept for `GET /api/v1/applies`. @default 20 */
export const KEEP_FINISHED = 20;

export class ApplyProgress {
  private readonly running = new Map<string, ApplyProgressRecord & { t0: number }>();
  private readonly finished: ApplyProgressRecord[] = [];

  start(dryRun: boolean): ApplyHandle {
    const rec: ApplyProgressRecord & { t0: number } = {
      id: `apl-${randomBytes(6).toString('hex')}`,
      dryRun,
      phase: 'parsing',
      startedAt: new Date().toISOString(),
      done: 0,
      created: 0,
      updated: 0,
      unchanged: 0,
      t0: performance.now(),
    };
    this.running.set(rec.id, rec);
    const end = (phase: 'done' | 'failed', error?: string): void => {
      if (!this.running.delete(rec.id)) return;
      const { t0, ...out } = rec;
      const final: ApplyProgressRecord = {
        ...out,
        phase,
        finishedAt: new Date().toISOString(),
        durationMs: Math.round(performance.now() - t0),
        ...(error !== undefined ? { error } : {}),
      };
      this.finished.unshift(final);
      this.finished.length = Math.min(this.finished.length, KEEP_FINISHED);
    };
    return {
      id: rec.id,
      phase: (phase, total) => {
        rec.phase = phase;
        if (total !== undefined) rec.total = total;
      },
      item: (done, action) => {
        rec.done = done;
        rec[action]++;
      },
      done: () => end('done'),
      failed: (error) => end('failed', error),
    };
  }

  /** Running applies (oldest first), then finished ones (newest first). */
  list(): { running: ApplyProgressRecord[]; finished: ApplyProgressRecord[] } {
    return {
      running: [...this.running.values()].map(({ t0: _t0, ...r }) => ({ ...r })),
      finished: this.finished.map((r) => ({ ...r })),
    };
  }
}

export interface ApplyHandle {
  readonly id: string;
  phase(phase: 'parsing' | 'validating' | 'writing', total?: number): void;
  item(done: number, action: 'created' | 'updated' | 'unchanged'): void;
  done(): void;
  failed(error: string): void;
}
