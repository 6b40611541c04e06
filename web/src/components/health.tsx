/** Health of apps and sites derived from their conditions, and the badge that shows it. */
import type { Condition, Health, Resource } from '../api/types.ts';
import { useI18n } from '../i18n/index.tsx';

function cond(conditions: Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/**
 * ok: Ready; degraded: Ready but failing instances or one quarantined, or
 * Ready=False with some replicas up; down: no ready replica; unknown: not
 * reconciled yet (e.g. just after a control plane restart).
 */
export function appHealth(app: Resource): Health {
  const c = app.status?.conditions;
  const ready = cond(c, 'Ready');
  if (!ready || ready.status === 'Unknown') return 'unknown';
  const degraded = cond(c, 'Degraded')?.status === 'True' || cond(c, 'Quarantined')?.status === 'True';
  if (ready.status === 'True') return degraded ? 'degraded' : 'ok';
  const workloads = app.status?.workloads ?? [];
  const anyReady = workloads.some((w) => w.readyReplicas > 0);
  const wantsNone = workloads.length > 0 && workloads.every((w) => w.replicas === 0);
  if (wantsNone) return 'ok';
  return anyReady ? 'degraded' : 'down';
}

export function siteHealth(site: Resource): Health {
  const ready = cond(site.status?.conditions, 'Ready');
  if (!ready || ready.status === 'Unknown') return 'unknown';
  return ready.status === 'True' ? 'ok' : 'down';
}

export const HEALTH_ORDER: Health[] = ['down', 'degraded', 'unknown', 'ok'];

export function HealthBadge({ health, label }: { health: Health; label?: string }) {
  const { t } = useI18n();
  return (
    <span className={`badge badge-${health}`}>
      <span className="dot" aria-hidden="true" />
      {label ?? t(`health.${health}`)}
    </span>
  );
}

/** A phase the console has words for (anything else is shown as the API says it). */
const PHASES = [
  'starting',
  'running',
  'ready',
  'backoff',
  'quarantined',
  'stopping',
  'succeeded',
  'failed',
] as const;

export function PhaseBadge({ phase }: { phase: string }) {
  const { t } = useI18n();
  const known = (PHASES as readonly string[]).includes(phase)
    ? (phase as (typeof PHASES)[number])
    : undefined;
  const health: Health =
    phase === 'ready' || phase === 'succeeded'
      ? 'ok'
      : phase === 'quarantined' || phase === 'backoff' || phase === 'failed'
        ? 'down'
        : phase === 'starting' || phase === 'running' || phase === 'stopping'
          ? 'degraded'
          : 'unknown';
  return (
    <span
      className={`badge badge-${health} badge-phase`}
      title={known ? t(`phase.${known}.help`) : undefined}
    >
      {known ? t(`phase.${known}`) : phase}
    </span>
  );
}
