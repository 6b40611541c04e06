/**
 * Building and advancing Incident documents (pure). The timeline is the
 * source of truth; the headline timestamps and durations are derived from it
 * so they can never disagree.
 */
import { randomBytes } from 'node:crypto';
import type { InstanceStatus } from '../../runtime/driver.ts';
import type { Match } from '../signatures/types.ts';
import type { Incident, IncidentState, TimelineEvent } from '../../model/incidents.ts';
import type { Decision } from './safety.ts';

const iso = (ms: number): string => new Date(ms).toISOString();

export function newIncidentId(nowMs: number): string {
  const d = iso(nowMs);
  const stamp = `${d.slice(0, 10).replaceAll('-', '')}-${d.slice(11, 19).replaceAll(':', '')}`;
  return `inc-${stamp}-${randomBytes(3).toString('hex')}`;
}

export function newIncident(inst: InstanceStatus, match: Match, decision: Decision, nowMs: number): Incident {
  const inc: Incident = {
    id: newIncidentId(nowMs),
    site: inst.site,
    project: inst.project,
    app: inst.app,
    workload: inst.workload,
    instanceId: inst.id,
    signature: match.rule,
    severity: match.severity,
    evidenceSummary: match.evidence,
    state: 'open',
    action: { kind: decision.action, reason: decision.reason },
    detectedAt: iso(match.detectedAt),
    durations: {},
    timeline: [],
    createdAt: iso(nowMs),
    updatedAt: iso(nowMs),
  };
  if (match.onsetAt < match.detectedAt) {
    addEvent(inc, 'onset', match.onsetAt, `first bad signal of ${match.rule}`);
  }
  addEvent(inc, 'detected', match.detectedAt, `${match.rule} (${match.severity}): ${match.evidence}`);
  return inc;
}

const STATE_AFTER: Partial<Record<TimelineEvent, IncidentState>> = {
  isolated: 'isolated',
  'replacement-ready': 'mitigated',
  released: 'resolved',
  deleted: 'resolved',
  resolved: 'resolved',
};

/** Append an event, move the state forward (never backward) and re-derive times and durations. */
export function addEvent(inc: Incident, event: TimelineEvent, atMs: number, detail: string): Incident {
  inc.timeline.push({ at: iso(atMs), event, detail });
  inc.timeline.sort((a, b) => a.at.localeCompare(b.at));
  const order: IncidentState[] = ['open', 'isolated', 'mitigated', 'resolved'];
  const next = STATE_AFTER[event];
  if (next && order.indexOf(next) > order.indexOf(inc.state)) inc.state = next;
  const first = (e: TimelineEvent): string | undefined => inc.timeline.find((t) => t.event === e)?.at;
  const onset = first('onset');
  const isolated = first('isolated');
  const ready = first('replacement-ready');
  const resolved = first('released') ?? first('deleted') ?? first('resolved');
  if (onset) inc.onsetAt = onset;
  if (isolated) inc.isolatedAt = isolated;
  if (ready) inc.replacementReadyAt = ready;
  if (resolved) inc.resolvedAt = resolved;
  const ms = (a?: string, b?: string): number | undefined =>
    a && b ? Math.max(0, Date.parse(b) - Date.parse(a)) : undefined;
  const start = inc.onsetAt ?? inc.detectedAt;
  const d: Incident['durations'] = {};
  const detect = ms(inc.onsetAt, inc.detectedAt);
  const isolate = ms(inc.detectedAt, inc.isolatedAt);
  const replace = ms(inc.detectedAt, inc.replacementReadyAt);
  // Service is restored when the replacement is ready, or when the instance is back (released).
  const mttr = ms(start, inc.replacementReadyAt ?? first('released'));
  if (detect !== undefined) d.detectMs = detect;
  if (isolate !== undefined) d.isolateMs = isolate;
  if (replace !== undefined) d.replaceMs = replace;
  if (mttr !== undefined) d.mttrMs = mttr;
  inc.durations = d;
  inc.updatedAt = iso(Math.max(atMs, Date.parse(inc.updatedAt)));
  return inc;
}
