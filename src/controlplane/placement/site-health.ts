/**
 * Health of one site as a pure state machine fed with probe results, so
 * detection time and hysteresis are exact and unit-tested (site-health.test.ts):
 *
 *   unknown ──ok──▶ healthy ──N consecutive failures──▶ unreachable
 *      │                ▲                                  │  ▲
 *      └─N failures─────┼──────────────────────────────────┘  │ any failure
 *                       └── ok for failbackAfterMs ◀── recovering (first ok)
 *
 * `unknown` (not probed yet, e.g. right after a control-plane restart) counts
 * as usable, so a restart never moves replicas by itself. A single failed probe
 * while `recovering` sends the site back to `unreachable`: a flapping site never
 * gets its share back.
 */
import type { SiteHealthState } from '../../model/types.ts';

export interface SiteHealthConfig {
  failureThreshold: number;
  failbackAfterMs: number;
}

export interface SiteHealthSnapshot {
  state: SiteHealthState;
  /** Epoch ms when `state` was entered. */
  since: number;
  consecutiveFailures: number;
  lastProbeAt?: number;
  lastProbeMs?: number;
  lastError?: string;
}

export interface Transition {
  from: SiteHealthState;
  to: SiteHealthState;
  at: number;
  reason: string;
}

/** Whether placement may give the site replicas (and its reconciler may act). */
export function isUsable(state: SiteHealthState): boolean {
  return state === 'healthy' || state === 'unknown';
}

export class SiteHealth {
  private snap: SiteHealthSnapshot;
  private readonly config: SiteHealthConfig;

  constructor(config: SiteHealthConfig, now: number) {
    this.config = config;
    this.snap = { state: 'unknown', since: now, consecutiveFailures: 0 };
  }

  snapshot(): SiteHealthSnapshot {
    return { ...this.snap };
  }

  get state(): SiteHealthState {
    return this.snap.state;
  }

  /** When a recovering site gets its share back (epoch ms); undefined otherwise. */
  failbackAt(): number | undefined {
    return this.snap.state === 'recovering' ? this.snap.since + this.config.failbackAfterMs : undefined;
  }

  /** Record one probe; returns the transition it caused, if any. */
  record(
    result: { ok: true } | { ok: false; error: string },
    at: number,
    tookMs: number,
  ): Transition | undefined {
    const s = this.snap;
    s.lastProbeAt = at;
    s.lastProbeMs = tookMs;
    if (result.ok) {
      s.consecutiveFailures = 0;
      delete s.lastError;
      if (s.state === 'unknown') return this.move('healthy', at, 'first probe answered');
      if (s.state === 'unreachable') {
        if (this.config.failbackAfterMs === 0) return this.move('healthy', at, 'answering again');
        return this.move('recovering', at, 'answering again; waiting for the failback period');
      }
      if (s.state === 'recovering' && at - s.since >= this.config.failbackAfterMs) {
        return this.move(
          'healthy',
          at,
          `answered every probe for ${Math.round((at - s.since) / 1000)} s (failback period)`,
        );
      }
      return undefined;
    }
    s.consecutiveFailures++;
    s.lastError = result.error;
    if (s.state === 'recovering')
      return this.move('unreachable', at, `failed again during failback: ${result.error}`);
    if (
      (s.state === 'healthy' || s.state === 'unknown') &&
      s.consecutiveFailures >= this.config.failureThreshold
    ) {
      return this.move(
        'unreachable',
        at,
        `${s.consecutiveFailures} consecutive probes failed: ${result.error}`,
      );
    }
    return undefined;
  }

  private move(to: SiteHealthState, at: number, reason: string): Transition {
    const from = this.snap.state;
    this.snap.state = to;
    this.snap.since = at;
    return { from, to, at, reason };
  }
}

/** Remove anything that looks like a credential from a probe's error before it is stored or logged. */
export function redactSecrets(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const s of secrets) if (s.length >= 8) out = out.split(s).join('<redacted>');
  return out
    .replace(/(bearer\s+)[^\s"']+/gi, '$1<redacted>')
    .replace(/((?:token|password|client-key-data)["']?\s*[:=]\s*["']?)[^\s"',}]+/gi, '$1<redacted>')
    .replace(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g, '<redacted>');
}
