/**
 * Restart backoff like the kubelet's CrashLoopBackOff: the delay doubles with
 * each consecutive crash up to a cap, and resets once an instance has run
 * stably for a while, so a crash loop never turns into a hot loop while a
 * rare crash is restarted fast.
 */
export interface BackoffOptions {
  /** @default 500 */
  initialMs: number;
  /** @default 30000 */
  maxMs: number;
  /** Running this long without exiting resets the delay. @default 60000 */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000, resetAfterMs: 60_000 };

/**
 * Delay before the next start, given how many consecutive crashes came before
 * (`crashes` >= 1 for the first restart) and how long the last run lasted.
 * Returns the new consecutive-crash count along with the delay.
 */
export function nextBackoff(
  opts: BackoffOptions,
  crashes: number,
  ranForMs: number,
): { delayMs: number; crashes: number } {
  const n = ranForMs >= opts.resetAfterMs ? 1 : crashes + 1;
  const delayMs = Math.min(opts.maxMs, opts.initialMs * 2 ** Math.min(n - 1, 30));
  return { delayMs, crashes: n };
}
