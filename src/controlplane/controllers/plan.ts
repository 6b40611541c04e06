/**
 * Pure planning: from an App's desired spec and the instances the driver
 * reports, decide which instances to start and which to stop. No I/O here so
 * the rules (ordinals, surge on update, job completion, duplicates after a
 * crash) are unit-tested exhaustively.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { AppResource, Workload } from '../../model/types.ts';
import type { InstanceSpec, InstanceStatus } from '../../runtime/driver.ts';

export interface PlanContext {
  site: string;
  /** Root of per-project data directories on this site (instances get BULWARK_PROJECT_DATA_DIR). */
  dataRoot?: string;
  /** Env every instance gets (gateway URL, ...), merged under the workload's own env. */
  platformEnv: Record<string, string>;
  /** Parse "128Mi" into bytes. */
  parseMemory: (q: string) => number;
}

export interface Plan {
  start: InstanceSpec[];
  /** Instance ids to stop; they are taken out of traffic before they are stopped. */
  stop: { id: string; why: string }[];
}

export function serviceName(project: string, app: string, workload: string): string {
  return `${workload}.${app}.${project}`;
}

function shortHash(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 12);
}

/** The part of an instance that, when it changes, requires a replacement. */
export function instanceTemplate(
  project: string,
  app: string,
  w: Workload,
  ctx: PlanContext,
): Omit<InstanceSpec, 'id' | 'ordinal' | 'specHash'> {
  return {
    site: ctx.site,
    project,
    app,
    workload: w.name,
    ...(w.run ? { command: w.run.command, ...(w.run.cwd ? { cwd: w.run.cwd } : {}) } : {}),
    ...(w.image ? { image: w.image } : {}),
    env: {
      ...ctx.platformEnv,
      ...(ctx.dataRoot ? { BULWARK_PROJECT_DATA_DIR: `${ctx.dataRoot}/${project}` } : {}),
      BULWARK_SERVICE: serviceName(project, app, w.name),
      ...(w.env ?? {}),
    },
    ports: (w.ports ?? []).map((p) => ({ name: p.name, port: p.port })),
    ...(w.health?.readiness ? { readiness: w.health.readiness } : {}),
    ...(w.health?.liveness ? { liveness: w.health.liveness } : {}),
    ...(w.resources?.cpu !== undefined ? { cpu: w.resources.cpu } : {}),
    ...(w.resources?.memory !== undefined ? { memoryBytes: ctx.parseMemory(w.resources.memory) } : {}),
    restartPolicy: w.restartPolicy ?? (w.type === 'job' ? 'OnFailure' : 'Always'),
    terminationGracePeriodMs: w.terminationGracePeriodMs ?? 10_000,
  };
}

function instanceId(project: string, app: string, w: Workload, ordinal: number): string {
  // Stateful instances keep their identity across replacements (like a
  // StatefulSet's pod-0); the others get a fresh suffix so an old and a new
  // instance of the same ordinal can run side by side during an update.
  const base = `${project}.${app}.${w.name}-${ordinal}`;
  return w.type === 'stateful' ? base : `${base}-${randomBytes(3).toString('hex')}`;
}

function byAge(a: InstanceStatus, b: InstanceStatus): number {
  return (a.startedAt ?? '').localeCompare(b.startedAt ?? '') || a.id.localeCompare(b.id);
}

/**
 * Plan one App on one site. `replicas` is per site: each site in the
 * placement runs the workload's full replica count (weights steer global
 * traffic, not instance counts).
 */
/**
 * The instances that count as replicas: not quarantined, and not a quarantined instance being
 * removed (the driver then reports it `stopping`, with its quarantine still set). Counted, that
 * one was the oldest at its ordinal, so `quarantine delete` stopped the healthy replacement as
 * a "duplicate" and started yet another.
 */
export function countedAsReplicas(instances: readonly InstanceStatus[]): InstanceStatus[] {
  return instances.filter((i) => i.phase !== 'quarantined' && i.quarantine === undefined);
}

export function planApp(
  app: AppResource,
  placedHere: boolean,
  existing: InstanceStatus[],
  ctx: PlanContext,
): Plan {
  const project = app.metadata.project ?? '';
  const name = app.metadata.name;
  const plan: Plan = { start: [], stop: [] };
  const mine = existing.filter((i) => i.project === project && i.app === name && i.site === ctx.site);
  const workloads = placedHere ? app.spec.workloads : [];
  const known = new Set(workloads.map((w) => w.name));
  for (const inst of mine) {
    if (!known.has(inst.workload)) {
      plan.stop.push({
        id: inst.id,
        why: placedHere ? 'workload removed from the app' : 'app not placed on this site',
      });
    }
  }
  for (const w of workloads) {
    const template = instanceTemplate(project, name, w, ctx);
    const replicas = w.replicas ?? 1;
    const ofWorkload = mine.filter((i) => i.workload === w.name).sort(byAge);
    for (const inst of ofWorkload) {
      if (inst.ordinal >= replicas)
        plan.stop.push({ id: inst.id, why: `scaled down to ${replicas} replicas` });
    }
    for (let ordinal = 0; ordinal < replicas; ordinal++) {
      const specHash = shortHash({ ...template, ordinal });
      const atOrdinal = ofWorkload.filter((i) => i.ordinal === ordinal);
      const current = atOrdinal.filter((i) => i.specHash === specHash);
      const stale = atOrdinal.filter((i) => i.specHash !== specHash);
      // Duplicates can exist after a crash between start and record; keep the oldest.
      for (const dup of current.slice(1))
        plan.stop.push({ id: dup.id, why: 'duplicate instance for this ordinal' });
      const keeper = current[0];
      if (!keeper) {
        if (w.type === 'stateful' && stale.length > 0) {
          // Same identity: the old one must be gone before the new one starts.
          for (const s of stale)
            plan.stop.push({ id: s.id, why: 'spec changed (stateful: stop before start)' });
          continue;
        }
        plan.start.push({
          ...template,
          id: instanceId(project, name, w, ordinal),
          ordinal,
          env: { ...template.env, BULWARK_ORDINAL: String(ordinal) },
          specHash,
          // Outside the hash: the type picks the Kubernetes object kind; it never changes a
          // running local instance, so adding it must not replace every instance.
          workloadType: w.type,
        });
        continue;
      }
      // Surge: the stale instance serves until its replacement is ready (or finished, for jobs).
      const replacementDone = keeper.ready || keeper.phase === 'succeeded';
      if (replacementDone) {
        for (const s of stale) plan.stop.push({ id: s.id, why: 'replaced by an instance with the new spec' });
      }
    }
  }
  return plan;
}
