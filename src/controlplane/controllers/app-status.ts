/**
 * Derive an App's status (per-workload instance summaries and conditions)
 * from what the runtime reports. Pure, so the condition rules are testable.
 */
import type {
  AppPlacementStatus,
  AppResource,
  AppStatus,
  Condition,
  WorkloadStatus,
} from '../../model/types.ts';
import type { InstanceStatus } from '../../runtime/driver.ts';
import { setCondition } from './conditions.ts';

export function computeAppStatus(
  app: AppResource,
  instances: InstanceStatus[],
  placedSites: string[],
  problems: string[],
  now: string,
  /** Several sites: replicas expected per workload (placement's split) and where they run. */
  placement?: { expected: Record<string, number>; status: AppPlacementStatus },
): AppStatus {
  const project = app.metadata.project ?? '';
  const mine = instances.filter((i) => i.project === project && i.app === app.metadata.name);
  const workloads: WorkloadStatus[] = app.spec.workloads.map((w) => {
    const ofW = mine.filter((i) => i.workload === w.name).sort((a, b) => a.id.localeCompare(b.id));
    return {
      name: w.name,
      replicas: placement?.expected[w.name] ?? (w.replicas ?? 1) * placedSites.length,
      readyReplicas: ofW.filter((i) => i.ready || (w.type === 'job' && i.phase === 'succeeded')).length,
      instances: ofW.map((i) => ({
        id: i.id,
        site: i.site,
        phase: i.phase,
        ready: i.ready,
        ...(i.ip ? { address: i.ip } : {}),
        ...(i.pid !== undefined ? { pid: i.pid } : {}),
        restarts: i.restarts,
        ...(i.lastExit ? { lastExitReason: `${i.lastExit.reason}: ${i.lastExit.message}` } : {}),
      })),
    };
  });
  let conditions: Condition[] = app.status?.conditions ?? [];
  const notReady = workloads.filter((w) => w.readyReplicas < w.replicas);
  conditions = setCondition(
    conditions,
    'Ready',
    notReady.length === 0 ? 'True' : 'False',
    notReady.length === 0 ? 'AllReplicasReady' : 'ReplicasNotReady',
    notReady.length === 0
      ? 'all workloads have their replicas ready'
      : notReady.map((w) => `${w.name}: ${w.readyReplicas}/${w.replicas} ready`).join('; '),
    now,
  );
  const looping = mine.filter((i) => i.phase === 'backoff' || i.phase === 'failed');
  conditions = setCondition(
    conditions,
    'Degraded',
    looping.length > 0 || problems.length > 0 ? 'True' : 'False',
    looping.some((i) => i.phase === 'backoff')
      ? 'CrashLoopBackOff'
      : looping.length > 0
        ? 'InstanceFailed'
        : problems.length > 0
          ? 'ReconcileError'
          : 'AsExpected',
    [
      ...looping.map(
        (i) =>
          `${i.id} ${i.phase}${i.lastExit ? ` (${i.lastExit.reason}: ${i.lastExit.message})` : ''}${
            i.nextRestartAt ? `, next restart at ${i.nextRestartAt}` : ''
          }`,
      ),
      ...problems,
    ].join('; ') || 'no failing instances',
    now,
  );
  const quarantined = mine.filter((i) => i.phase === 'quarantined');
  conditions = setCondition(
    conditions,
    'Quarantined',
    quarantined.length > 0 ? 'True' : 'False',
    quarantined.length > 0 ? 'FaultIsolated' : 'NoneQuarantined',
    quarantined.length > 0
      ? `kept out of traffic for diagnosis (see 'bulwark incidents'): ${quarantined
          .map((i) => `${i.id}${i.quarantine ? ` (${i.quarantine.reason})` : ''}`)
          .join('; ')}`
      : 'no quarantined instances',
    now,
  );
  return {
    conditions,
    observedGeneration: app.metadata.generation ?? 0,
    workloads,
    ...(placement ? { placement: placement.status } : {}),
  };
}
