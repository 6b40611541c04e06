import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKOFF, nextBackoff } from './backoff.ts';

describe('nextBackoff', () => {
  it('doubles from 500 ms up to the 30 s cap on consecutive crashes', () => {
    let crashes = 0;
    const delays: number[] = [];
    for (let i = 0; i < 9; i++) {
      const b = nextBackoff(DEFAULT_BACKOFF, crashes, 1000);
      crashes = b.crashes;
      delays.push(b.delayMs);
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  it('resets to the initial delay after a run of at least 60 s', () => {
    expect(nextBackoff(DEFAULT_BACKOFF, 6, 60_000)).toEqual({ delayMs: 500, crashes: 1 });
    expect(nextBackoff(DEFAULT_BACKOFF, 6, 59_999).delayMs).toBe(30_000);
  });
});
