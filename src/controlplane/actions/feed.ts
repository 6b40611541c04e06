/**
 * The merged feed of automatic actions, newest first: stored placement
 * actions plus the isolation steps recorded in incident timelines (taken out
 * of traffic, quarantined, replaced; restarted for crashes). Pure: the route
 * reads both lists from the store and hands them here.
 */
import type { Incident } from '../../model/incidents.ts';
import type { ActionFeedItem, ActionKind, ActionRecord } from '../../model/actions.ts';

function incidentActions(inc: Incident): ActionFeedItem[] {
  const out: ActionFeedItem[] = [];
  inc.timeline.forEach((e, n) => {
    let kind: ActionKind | undefined;
    if (e.event === 'isolated') kind = inc.action.kind === 'restart' ? 'restarted' : 'isolated';
    else if (e.event === 'quarantined') kind = 'quarantined';
    else if (e.event === 'replacement-ready') kind = 'replaced';
    // One entry per kind per incident: isolation may add a second 'isolated' note (held requests).
    if (!kind || out.some((o) => o.kind === kind)) return;
    out.push({
      id: `${inc.id}/${n}`,
      at: e.at,
      kind,
      project: inc.project,
      app: inc.app,
      summary: `${inc.signature}: ${e.detail}`,
      incidentId: inc.id,
      instanceId: inc.instanceId,
    });
  });
  return out;
}

export function actionFeed(actions: ActionRecord[], incidents: Incident[], limit: number): ActionFeedItem[] {
  const items: ActionFeedItem[] = [...actions, ...incidents.flatMap(incidentActions)];
  items.sort((a, b) => b.at.localeCompare(a.at) || b.id.localeCompare(a.id));
  return items.slice(0, limit);
}
