/**
 * Pod -> InstanceStatus: what the kubelet (or kwok) reports, in the driver
 * seam's vocabulary. Pure.
 */
import type { ExitInfo, ExitReason, InstancePhase, InstanceStatus } from '../driver.ts';
import { ANNOTATION, LABEL, POOL } from './names.ts';
import type { InstanceEntry, WorkloadState } from './render.ts';
import type { ContainerStateTerminated, Pod } from './types.ts';

/** Image and config problems the kubelet reports as a waiting reason: the instance cannot start. */
const START_FAILURES = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'ErrImageNeverPull',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
]);

const SIGNALS: Record<number, string> = {
  1: 'SIGHUP',
  2: 'SIGINT',
  6: 'SIGABRT',
  9: 'SIGKILL',
  15: 'SIGTERM',
};

function exitOf(t: ContainerStateTerminated): ExitInfo {
  let reason: ExitReason = 'exited';
  let signal: string | null = null;
  // Containers killed by a signal exit with 128+n.
  if (t.signal || t.exitCode > 128) {
    reason = 'signaled';
    signal = SIGNALS[t.signal ?? t.exitCode - 128] ?? `signal ${t.signal ?? t.exitCode - 128}`;
  }
  if (t.reason === 'OOMKilled') reason = 'oom-killed';
  if (t.reason === 'StartError' || t.reason === 'ContainerCannotRun') reason = 'start-failed';
  return {
    reason,
    code: reason === 'signaled' || reason === 'oom-killed' ? null : t.exitCode,
    signal,
    at: t.finishedAt ?? new Date().toISOString(),
    message: [t.reason, t.message].filter(Boolean).join(': ') || `exited with ${t.exitCode}`,
  };
}

/** The kubelet's crash-loop backoff: 10 s doubling per restart, capped at 5 minutes. */
export function kubeletBackoffMs(restarts: number): number {
  return Math.min(300_000, 10_000 * 2 ** Math.max(0, restarts - 1));
}

/**
 * When the kubelet killed containers of a pod for a failed liveness probe (epoch ms of its
 * `Killing` events, by pod uid): the container's terminated state does not say why.
 */
export type LivenessKills = ReadonlyMap<string, readonly number[]>;

/** Was the run that ended in `t` killed for liveness (a kill event between its start and end)? */
function killedForLiveness(t: ContainerStateTerminated, kills: readonly number[] | undefined): boolean {
  if (!kills?.length || !t.finishedAt) return false;
  // Event and state times have one-second resolution: allow a second either side.
  const start = t.startedAt ? Date.parse(t.startedAt) - 1000 : -Infinity;
  const end = Date.parse(t.finishedAt) + 1000;
  return kills.some((k) => k >= start && k <= end);
}

export function instanceStatus(
  w: WorkloadState,
  e: InstanceEntry,
  pod: Pod | undefined,
  livenessKills?: LivenessKills,
): InstanceStatus {
  const base = {
    id: e.id,
    site: w.site,
    project: w.project,
    app: w.app,
    workload: w.workload,
    ordinal: e.ordinal,
    specHash: e.specHash,
    isolation: {},
  };
  const portsOf = (): Record<string, number> =>
    Object.fromEntries((w.template.ports ?? []).map((p) => [p.name, p.port]));
  if (!pod) {
    return {
      ...base,
      phase: 'starting',
      ready: false,
      ip: '',
      ports: portsOf(),
      restarts: 0,
      message: 'waiting for a pod',
    };
  }
  const cs = pod.status?.containerStatuses?.[0];
  const restarts = cs?.restartCount ?? 0;
  const readyCond = pod.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
  const waiting = cs?.state?.waiting;
  const terminated = cs?.state?.terminated;
  let lastExit: ExitInfo | undefined;
  const ended = terminated ?? cs?.lastState?.terminated;
  if (ended) {
    lastExit = exitOf(ended);
    if (
      lastExit.reason !== 'oom-killed' &&
      killedForLiveness(ended, livenessKills?.get(pod.metadata.uid ?? ''))
    )
      lastExit = {
        ...lastExit,
        reason: 'liveness-failed',
        message: `liveness probe failed; ${lastExit.message}`,
      };
  }
  if (waiting?.reason && START_FAILURES.has(waiting.reason)) {
    const image = pod.spec?.containers?.[0]?.image ?? '';
    lastExit = {
      reason: 'start-failed',
      code: null,
      signal: null,
      at: pod.status?.startTime ?? new Date().toISOString(),
      message: `${waiting.reason}: ${waiting.message ?? `cannot start image ${image}`}`,
    };
  }
  let phase: InstancePhase;
  let nextRestartAt: string | undefined;
  const quarantined = pod.metadata.labels?.[LABEL.pool] === POOL.quarantined;
  if (quarantined) phase = 'quarantined';
  else if (pod.metadata.deletionTimestamp) phase = 'stopping';
  else if (pod.status?.phase === 'Succeeded') phase = 'succeeded';
  else if (pod.status?.phase === 'Failed') phase = 'failed';
  else if (
    waiting?.reason === 'CrashLoopBackOff' ||
    (waiting?.reason && START_FAILURES.has(waiting.reason))
  ) {
    phase = 'backoff';
    const from = Date.parse(lastExit?.at ?? '') || Date.now();
    nextRestartAt = new Date(from + kubeletBackoffMs(restarts)).toISOString();
  } else if (pod.status?.phase === 'Running') phase = readyCond ? 'ready' : 'running';
  else phase = 'starting';
  let quarantine: InstanceStatus['quarantine'];
  if (quarantined) {
    try {
      const q = JSON.parse(pod.metadata.annotations?.[ANNOTATION.quarantine] ?? '{}') as {
        since?: string;
        reason?: string;
      };
      quarantine = { since: q.since ?? '', reason: q.reason ?? '' };
    } catch {
      quarantine = { since: '', reason: '' };
    }
  }
  const startedAt = cs?.state?.running?.startedAt ?? pod.status?.startTime ?? pod.metadata.creationTimestamp;
  const message =
    phase === 'quarantined'
      ? `quarantined: ${quarantine?.reason ?? ''}`
      : (waiting?.message ?? pod.status?.message ?? undefined);
  return {
    ...base,
    phase,
    ready: phase === 'ready',
    ip: pod.status?.podIP ?? '',
    ports: portsOf(),
    restarts,
    ...(lastExit ? { lastExit } : {}),
    ...(nextRestartAt ? { nextRestartAt } : {}),
    ...(quarantine ? { quarantine } : {}),
    ...(startedAt ? { startedAt } : {}),
    ...(message ? { message } : {}),
  };
}
