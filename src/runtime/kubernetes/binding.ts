/**
 * Binding instances to pods. The driver's seam is per instance (ensure with an
 * id and an ordinal); a Deployment's pods are interchangeable and named by the
 * ReplicaSet. So each pod is bound to one instance id by an annotation on the
 * pod itself: it survives a driver restart, and `kubectl get pods -o yaml`
 * shows which instance a pod is. StatefulSets and Indexed Jobs name their pods
 * by ordinal, so there the binding is the ordinal.
 *
 * Pure: the driver applies the returned patches.
 */
import { ANNOTATION, LABEL, POOL } from './names.ts';
import type { InstanceEntry, WorkloadKind } from './render.ts';
import type { Pod } from './types.ts';

export interface BindResult {
  /** Instance id -> the pod that runs it. */
  bound: Map<string, Pod>;
  /** New bindings to write onto pods (annotation `bulwark.io/instance-id`). */
  patches: { pod: string; id: string }[];
}

const created = (p: Pod): string => p.metadata.creationTimestamp ?? '';
const byAge = (a: Pod, b: Pod): number =>
  created(a).localeCompare(created(b)) || a.metadata.name.localeCompare(b.metadata.name);

export function podIndex(p: Pod): number | undefined {
  const l =
    p.metadata.labels?.['apps.kubernetes.io/pod-index'] ??
    p.metadata.labels?.['batch.kubernetes.io/job-completion-index'] ??
    p.metadata.annotations?.['batch.kubernetes.io/job-completion-index'];
  if (l !== undefined && /^\d+$/.test(l)) return Number(l);
  const m = /-(\d+)$/.exec(p.metadata.name);
  return m ? Number(m[1]) : undefined;
}

export function bindPods(
  kind: WorkloadKind,
  instances: InstanceEntry[],
  pods: Pod[],
  statefulName?: string,
): BindResult {
  const bound = new Map<string, Pod>();
  const patches: BindResult['patches'] = [];
  const ids = new Map(instances.map((i) => [i.id, i]));
  const sorted = [...pods].sort(byAge);
  // Explicit bindings first: a pod that says which instance it is, is that instance
  // (quarantined pods keep theirs; they have left their controller but not Bulwark).
  // A pod of another template than its instance's is an old run the rollout is replacing:
  // the instance waits for a pod of its own template (unless the pod is out of its
  // controller, quarantined: then it is that instance whatever its template).
  const current = (p: Pod, inst: InstanceEntry): boolean =>
    p.metadata.labels?.[LABEL.templateHash] === inst.templateHash ||
    p.metadata.labels?.[LABEL.pool] !== POOL.serving;
  for (const p of sorted) {
    const id = p.metadata.annotations?.[ANNOTATION.instanceId];
    const inst = id ? ids.get(id) : undefined;
    if (id && inst && !bound.has(id) && current(p, inst)) bound.set(id, p);
  }
  const taken = new Set([...bound.values()].map((p) => p.metadata.name));
  const serving = (p: Pod): boolean =>
    !taken.has(p.metadata.name) &&
    !p.metadata.deletionTimestamp &&
    p.metadata.labels?.[LABEL.pool] === POOL.serving;
  const waiting = instances
    .filter((i) => !i.quarantined && !bound.has(i.id))
    .sort((a, b) => a.ordinal - b.ordinal || a.id.localeCompare(b.id));
  for (const inst of waiting) {
    let pod: Pod | undefined;
    if (kind === 'Deployment') {
      // An unbound pod of the instance's template, oldest first: deterministic, so two
      // drivers (or one restarted mid-way) would pick the same pairs.
      // (A pod that names an instance which another pod already is, is a duplicate: free.)
      pod = sorted.find((p) => serving(p) && p.metadata.labels?.[LABEL.templateHash] === inst.templateHash);
    } else {
      // Ordinal-addressed: the newest live pod at this index (a Job may have replaced a failed one).
      const at = sorted.filter(
        (p) =>
          !taken.has(p.metadata.name) &&
          podIndex(p) === inst.ordinal &&
          current(p, inst) &&
          (kind !== 'StatefulSet' || !statefulName || p.metadata.name === `${statefulName}-${inst.ordinal}`),
      );
      pod = at.filter((p) => !p.metadata.deletionTimestamp).at(-1) ?? at.at(-1);
    }
    if (!pod) continue;
    bound.set(inst.id, pod);
    taken.add(pod.metadata.name);
    if (pod.metadata.annotations?.[ANNOTATION.instanceId] !== inst.id)
      patches.push({ pod: pod.metadata.name, id: inst.id });
  }
  return { bound, patches };
}
