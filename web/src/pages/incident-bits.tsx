/** Small pieces shared by the incident views and the overview. */
import type { Incident } from '../api/types.ts';
import { useI18n } from '../i18n/index.tsx';

export const TIMELINE_EVENTS = [
  'onset',
  'detected',
  'isolated',
  'quarantined',
  'replacement-started',
  'replacement-ready',
  'evidence-collected',
  'alert',
  'suppressed',
  'released',
  'deleted',
  'resolved',
] as const;

export function SeverityBadge({ severity }: { severity: Incident['severity'] }) {
  const { t } = useI18n();
  return <span className={`badge sev-${severity}`}>{t(`severity.${severity}`)}</span>;
}

export function fmtMs(ms: number | undefined): string {
  if (ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}
