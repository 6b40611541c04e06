/**
 * What a placement change did, as an ActionRecord: the per-site replica
 * changes between the previous and the new split, and whether it was a
 * failover (a placed site stopped being usable), a failback (every placed site
 * usable again) or a rebalance (weights or replica counts changed). Pure.
 */
import { randomBytes } from 'node:crypto';
import type { ActionRecord, PlacementActionKind, ReplicaChange } from '../../model/actions.ts';

/** workload -> site -> replicas */
export type Split = Record<string, Record<string, number>>;

export function replicaChanges(prev: Split, next: Split): ReplicaChange[] {
  const out: ReplicaChange[] = [];
  for (const workload of new Set([...Object.keys(prev), ...Object.keys(next)])) {
    const a = prev[workload] ?? {};
    const b = next[workload] ?? {};
    for (const site of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const from = a[site] ?? 0;
      const to = b[site] ?? 0;
      if (from !== to) out.push({ workload, site, from, to });
    }
  }
  return out.sort((x, y) => x.workload.localeCompare(y.workload) || x.site.localeCompare(y.site));
}

export function placementAction(o: {
  at: number;
  project: string;
  app: string;
  prev: Split;
  next: Split;
  /** Placed sites that are not usable now, and those that were not before. */
  downNow: string[];
  downBefore: string[];
  /** Why, as the placement explains it. */
  reason: string;
}): ActionRecord | undefined {
  const changes = replicaChanges(o.prev, o.next);
  if (changes.length === 0) return undefined;
  const newlyDown = o.downNow.filter((s) => !o.downBefore.includes(s));
  const kind: PlacementActionKind =
    newlyDown.length > 0 ? 'failover' : o.downBefore.length > o.downNow.length ? 'failback' : 'rebalance';
  const moved = changes.map((c) => `${c.workload}@${c.site} ${c.from}->${c.to}`).join(', ');
  const why =
    kind === 'failover'
      ? `${newlyDown.join(', ')} not usable`
      : kind === 'failback'
        ? `${o.downBefore.filter((s) => !o.downNow.includes(s)).join(', ')} usable again`
        : 'placement changed';
  return {
    id: `act-${o.at.toString(36).padStart(9, '0')}-${randomBytes(4).toString('hex')}`,
    at: new Date(o.at).toISOString(),
    kind,
    project: o.project,
    app: o.app,
    summary: `${kind} of ${o.project}/${o.app}: ${why}; ${moved} (${o.reason})`,
    changes,
  };
}
