/**
 * Why an app is not healthy, next to its health badge: an app can be
 * Degraded with "2 of 2 ready" (an instance quarantined and already
 * replaced, a start that failed, an instance in crash-loop backoff), and the
 * badge alone would contradict the count. The reasons come from the
 * conditions that made it so (app health: components/health.tsx), each
 * through the status-text table.
 */
import type { Condition, Resource } from '../api/types.ts';
import { explainText, type ExplainContext, type Explained } from './explain.ts';

export interface HealthReason extends Explained {
  /** The condition this reason comes from (Degraded, Quarantined, Ready). */
  condition: string;
  /** Its machine reason (CrashLoopBackOff, FaultIsolated, …), kept for the technical details. */
  reason: string;
}

/** Entries of the Quarantined condition's message: "<instance> (<incident>: <signature>)". */
const QUARANTINED_ENTRY = /([\w.-]+) \((inc-[\w-]+): ([^)]+)\)/g;

function explainQuarantined(c: Condition, ctx: ExplainContext): Explained {
  const entries = [...c.message.matchAll(QUARANTINED_ENTRY)].map((m) => ({
    instance: m[1]!,
    incident: m[2]!,
    signature: m[3]!,
  }));
  if (entries.length === 0) return explainText(c.message, ctx);
  return {
    what: ctx.t('reason.quarantined', {
      n: entries.length,
      signatures: [...new Set(entries.map((e) => e.signature))].join(', '),
    }),
    todo: ctx.t('todo.quarantined'),
    original: c.message,
  };
}

/** The reasons an app is degraded or down, worst first; empty when its conditions say nothing is wrong. */
export function healthReasons(app: Resource, ctx: ExplainContext): HealthReason[] {
  const conditions = app.status?.conditions ?? [];
  const of = (type: string): Condition | undefined =>
    conditions.find((c) => c.type === type && c.status === (type === 'Ready' ? 'False' : 'True'));
  const out: HealthReason[] = [];
  const degraded = of('Degraded');
  if (degraded) {
    out.push({ condition: 'Degraded', reason: degraded.reason, ...explainText(degraded.message, ctx) });
  }
  const quarantined = of('Quarantined');
  if (quarantined) {
    out.push({
      condition: 'Quarantined',
      reason: quarantined.reason,
      ...explainQuarantined(quarantined, ctx),
    });
  }
  const notReady = of('Ready');
  if (notReady) {
    out.push({
      condition: 'Ready',
      reason: notReady.reason,
      ...explainText(notReady.message, ctx),
    });
  }
  return out;
}
