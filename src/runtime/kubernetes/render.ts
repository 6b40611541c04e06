/**
 * Pure rendering: InstanceSpecs of one workload -> the Kubernetes objects that
 * run them. No I/O, so the shapes are unit-tested and the driver only applies.
 *
 * One workload = one Deployment (service), StatefulSet (stateful) or Indexed
 * Job (job) + a Service + a PodDisruptionBudget, in a Namespace per project.
 * The per-instance parts of an InstanceSpec (id, ordinal, specHash, and
 * BULWARK_ORDINAL in env) are not in the pod template: all pods of a
 * template are alike, and instances are bound to pods afterwards.
 */
import type { Probe } from '../../model/types.ts';
import type { InstanceSpec } from '../driver.ts';
import { ANNOTATION, BIND_GATE, LABEL, MANAGER, POOL, labelValue, portName, shortHash } from './names.ts';
import type { KubeObject } from './types.ts';

export type WorkloadKind = 'Deployment' | 'StatefulSet' | 'Job';
export type WorkloadType = 'service' | 'stateful' | 'job';

/** One ensured instance as recorded on the workload object (so a restarted driver recovers it). */
export interface InstanceEntry {
  id: string;
  ordinal: number;
  specHash: string;
  templateHash: string;
  quarantined?: boolean;
}

/** What the driver keeps per workload; rendered into the workload object. */
export interface WorkloadState {
  namespace: string;
  name: string;
  kind: WorkloadKind;
  site: string;
  project: string;
  app: string;
  workload: string;
  /** The spec the current pod template is rendered from (the last one ensured). */
  template: InstanceSpec;
  templateHash: string;
  instances: InstanceEntry[];
}

export function workloadType(spec: InstanceSpec): WorkloadType {
  if (spec.workloadType) return spec.workloadType;
  // The seam does not carry the workload type; restart policy tells jobs apart (a service always restarts).
  return spec.restartPolicy === 'Always' ? 'service' : 'job';
}

export function workloadKind(t: WorkloadType): WorkloadKind {
  return t === 'stateful' ? 'StatefulSet' : t === 'job' ? 'Job' : 'Deployment';
}

/** Hash of what shapes a pod: a changed hash means a new pod template (a rollout). */
export function templateHash(spec: InstanceSpec): string {
  const env = { ...spec.env };
  delete env.BULWARK_ORDINAL;
  delete env.BULWARK_INSTANCE_ID;
  return shortHash(
    JSON.stringify([
      spec.image,
      env,
      spec.ports,
      spec.readiness,
      spec.liveness,
      spec.cpu,
      spec.memoryBytes,
      spec.restartPolicy,
      spec.terminationGracePeriodMs ?? 10_000,
    ]),
    10,
  );
}

export function commonLabels(s: Pick<WorkloadState, 'site' | 'project' | 'app' | 'workload' | 'name'>) {
  return {
    [LABEL.name]: labelValue(s.app),
    [LABEL.instance]: s.name,
    [LABEL.component]: labelValue(s.workload),
    [LABEL.partOf]: labelValue(s.project),
    [LABEL.managedBy]: MANAGER,
    [LABEL.site]: labelValue(s.site),
  };
}

export function ownerAnnotation(s: Pick<WorkloadState, 'site' | 'project' | 'app'>): Record<string, string> {
  return { [ANNOTATION.owner]: `${s.site}/${s.project}/${s.app}` };
}

/** The labels a workload's Service, PDB and controller select on. */
export function selectorLabels(s: Pick<WorkloadState, 'name'>): Record<string, string> {
  return { [LABEL.instance]: s.name, [LABEL.pool]: POOL.serving };
}

export function renderNamespace(
  prefix: string,
  namespace: string,
  project: string,
  site: string,
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: namespace,
      labels: {
        [LABEL.partOf]: labelValue(project),
        [LABEL.managedBy]: MANAGER,
        [LABEL.site]: labelValue(site),
        ...(prefix ? { 'bulwark.io/namespace-prefix': labelValue(prefix) } : {}),
      },
      annotations: { [ANNOTATION.owner]: `${site}/${project}` },
    },
  };
}

const seconds = (ms: number | undefined, min: number, dflt: number): number =>
  Math.max(min, Math.round((ms ?? dflt) / 1000));

/** Kubernetes probes have a one-second resolution; sub-second intervals round up to 1 s. */
export function renderProbe(p: Probe | undefined, liveness: boolean): Record<string, unknown> | undefined {
  if (!p) return undefined;
  const action =
    'http' in p
      ? {
          httpGet: {
            path: p.http.path,
            port: /^\d+$/.test(p.http.port) ? Number(p.http.port) : portName(p.http.port),
          },
        }
      : 'tcp' in p
        ? { tcpSocket: { port: /^\d+$/.test(p.tcp.port) ? Number(p.tcp.port) : portName(p.tcp.port) } }
        : { exec: { command: p.exec.command } };
  return {
    ...action,
    periodSeconds: seconds(p.intervalMs, 1, 1000),
    timeoutSeconds: seconds(p.timeoutMs, 1, 1000),
    failureThreshold: p.failureThreshold ?? 3,
    // The API requires 1 for liveness.
    successThreshold: liveness ? 1 : (p.successThreshold ?? 1),
    initialDelaySeconds: Math.round((p.initialDelayMs ?? 0) / 1000),
  };
}

/** How long a start-up (not ready yet) may take before liveness acts anyway: the local driver's grace. */
export const STARTUP_GRACE_S = 60;

/**
 * Liveness only acts once the run has been ready (a slow start is not a dead process), as
 * the local driver does: the kubelet probes liveness from the start, unless a startupProbe
 * holds it off until it first succeeds. So with both probes, the readiness check is also the
 * startup probe, for up to STARTUP_GRACE_S (then the kubelet restarts the container, as the
 * local driver lets liveness kill a run that never got ready).
 */
export function startupProbe(
  readiness: Record<string, unknown> | undefined,
  liveness: Record<string, unknown> | undefined,
): Record<string, unknown> | undefined {
  if (!readiness || !liveness) return undefined;
  const period = readiness.periodSeconds as number;
  return {
    ...readiness,
    successThreshold: 1,
    failureThreshold: Math.max(1, Math.ceil(STARTUP_GRACE_S / period)),
  };
}

function envVars(spec: InstanceSpec, type: WorkloadType, bindGate: boolean): Record<string, unknown>[] {
  const env = { ...spec.env };
  delete env.BULWARK_ORDINAL;
  delete env.BULWARK_INSTANCE_ID;
  const first = spec.ports[0];
  if (first && env.PORT === undefined) env.PORT = String(first.port);
  for (const p of spec.ports)
    env[`BULWARK_PORT_${p.name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`] = String(p.port);
  const vars: Record<string, unknown>[] = Object.keys(env)
    .sort()
    .map((name) => ({ name, value: env[name] }));
  const field = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { fieldPath } } });
  vars.push(field('BULWARK_HOST_IP', 'status.hostIP'), field('BULWARK_POD_NAME', 'metadata.name'));
  vars.push(field('BULWARK_POD_IP', 'status.podIP'));
  // Resolved when the container is created: only a pod bound before it starts (the gate) has it.
  if (bindGate) vars.push(field('BULWARK_INSTANCE_ID', `metadata.annotations['${ANNOTATION.instanceId}']`));
  // Pods of a StatefulSet or an Indexed Job know their ordinal when they start; a Deployment's do not.
  if (type === 'stateful')
    vars.push(field('BULWARK_ORDINAL', `metadata.labels['apps.kubernetes.io/pod-index']`));
  if (type === 'job')
    vars.push(field('BULWARK_ORDINAL', `metadata.annotations['batch.kubernetes.io/job-completion-index']`));
  return vars;
}

/** How the driver renders templates (driver options, not per workload). */
export interface RenderOptions {
  /** Pods wait (scheduling gate BIND_GATE) until bound, and get BULWARK_INSTANCE_ID. */
  bindBeforeStart?: boolean;
}

export function renderPodTemplate(
  s: WorkloadState,
  type: WorkloadType,
  ro: RenderOptions = {},
): Record<string, unknown> {
  const spec = s.template;
  if (!spec.image)
    throw new Error(
      `instance ${spec.id}: image is required on Kubernetes (set workloads[].image in the manifest; run.command is for the local runtime)`,
    );
  const resources: Record<string, Record<string, string>> = {};
  if (spec.cpu !== undefined) {
    const cpu = `${Math.max(1, Math.round(spec.cpu * 1000))}m`;
    resources.requests = { ...resources.requests, cpu };
    resources.limits = { ...resources.limits, cpu };
  }
  if (spec.memoryBytes !== undefined) {
    resources.requests = { ...resources.requests, memory: String(spec.memoryBytes) };
    resources.limits = { ...resources.limits, memory: String(spec.memoryBytes) };
  }
  const readiness = renderProbe(spec.readiness, false);
  const liveness = renderProbe(spec.liveness, true);
  const startup = startupProbe(readiness, liveness);
  const restartPolicy = type === 'job' ? (spec.restartPolicy === 'Never' ? 'Never' : 'OnFailure') : 'Always';
  return {
    metadata: {
      labels: { ...commonLabels(s), ...selectorLabels(s), [LABEL.templateHash]: s.templateHash },
      annotations: ownerAnnotation(s),
    },
    spec: {
      restartPolicy,
      terminationGracePeriodSeconds: Math.ceil((spec.terminationGracePeriodMs ?? 10_000) / 1000),
      enableServiceLinks: false,
      ...(ro.bindBeforeStart ? { schedulingGates: [{ name: BIND_GATE }] } : {}),
      containers: [
        {
          name: portName(s.workload),
          image: spec.image,
          env: envVars(spec, type, ro.bindBeforeStart === true),
          ports: spec.ports.map((p) => ({ name: portName(p.name), containerPort: p.port, protocol: 'TCP' })),
          ...(readiness ? { readinessProbe: readiness } : {}),
          ...(liveness ? { livenessProbe: liveness } : {}),
          ...(startup ? { startupProbe: startup } : {}),
          ...(Object.keys(resources).length ? { resources } : {}),
        },
      ],
    },
  };
}

/**
 * Replicas from the ensured instances: one per ordinal, more only where the
 * controller runs two instances of one ordinal with the same template (a
 * duplicate it is about to resolve). A quarantined instance still counts for
 * its ordinal until a replacement is ensured, so the ReplicaSet starts that
 * replacement at once instead of waiting for the next reconcile pass.
 */
export function desiredReplicas(instances: InstanceEntry[]): number {
  const byOrdinal = new Map<number, InstanceEntry[]>();
  for (const i of instances) byOrdinal.set(i.ordinal, [...(byOrdinal.get(i.ordinal) ?? []), i]);
  let n = 0;
  for (const list of byOrdinal.values()) {
    const perTemplate = new Map<string, number>();
    for (const i of list)
      if (!i.quarantined) perTemplate.set(i.templateHash, (perTemplate.get(i.templateHash) ?? 0) + 1);
    n += Math.max(1, ...perTemplate.values());
  }
  return n;
}

/** Ordinal-addressed kinds (StatefulSet, Indexed Job) size by the highest ordinal. */
export function ordinalReplicas(instances: InstanceEntry[]): number {
  return instances.length ? Math.max(...instances.map((i) => i.ordinal)) + 1 : 0;
}

export function encodeInstances(instances: InstanceEntry[]): string {
  return JSON.stringify([...instances].sort((a, b) => a.ordinal - b.ordinal || a.id.localeCompare(b.id)));
}

export function decodeInstances(text: string | undefined): InstanceEntry[] {
  if (!text) return [];
  try {
    const v = JSON.parse(text) as InstanceEntry[];
    return Array.isArray(v)
      ? v.filter((e) => typeof e?.id === 'string' && typeof e.ordinal === 'number')
      : [];
  } catch {
    return [];
  }
}

/** The name of the Job for a template: a Job's template is immutable, so a new template is a new Job. */
export function jobName(s: Pick<WorkloadState, 'name' | 'templateHash'>): string {
  return `${s.name.slice(0, 52)}-${s.templateHash.slice(0, 10)}`;
}

/** The workload object: Deployment, StatefulSet or Job. */
export function renderWorkload(
  s: WorkloadState,
  ro: RenderOptions = {},
): KubeObject & { spec: Record<string, unknown> } {
  const type: WorkloadType = s.kind === 'StatefulSet' ? 'stateful' : s.kind === 'Job' ? 'job' : 'service';
  const metadata = {
    name: s.kind === 'Job' ? jobName(s) : s.name,
    namespace: s.namespace,
    labels: commonLabels(s),
    annotations: {
      ...ownerAnnotation(s),
      [ANNOTATION.instances]: encodeInstances(s.instances),
      'bulwark.io/spec': JSON.stringify({
        ...s.template,
        id: undefined,
        ordinal: undefined,
        specHash: undefined,
      }),
    },
  };
  const template = renderPodTemplate(s, type, ro);
  if (s.kind === 'Deployment') {
    return {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata,
      spec: {
        replicas: desiredReplicas(s.instances),
        selector: { matchLabels: selectorLabels(s) },
        // Like the local surge: the old pod serves until its replacement is ready.
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
        revisionHistoryLimit: 3,
        template,
      },
    };
  }
  if (s.kind === 'StatefulSet') {
    return {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata,
      spec: {
        replicas: ordinalReplicas(s.instances),
        serviceName: s.name,
        podManagementPolicy: 'Parallel',
        selector: { matchLabels: selectorLabels(s) },
        updateStrategy: { type: 'RollingUpdate' },
        template,
      },
    };
  }
  const n = ordinalReplicas(s.instances);
  const never = s.template.restartPolicy === 'Never';
  const jobSelector = { ...selectorLabels(s), [LABEL.templateHash]: s.templateHash };
  const t = template as { metadata: { labels: Record<string, string> } };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata,
    spec: {
      completionMode: 'Indexed',
      completions: n,
      parallelism: n,
      // Never: a failed index stays failed (the contract's Never semantics); OnFailure restarts in place.
      ...(never ? { backoffLimitPerIndex: 0, maxFailedIndexes: n } : { backoffLimit: 6 }),
      // Our own selector (with the pool label) so a quarantined pod leaves the Job like it leaves a ReplicaSet.
      manualSelector: true,
      selector: { matchLabels: jobSelector },
      template: { ...t, metadata: { ...t.metadata, labels: { ...t.metadata.labels, ...jobSelector } } },
    },
  };
}

export function renderService(s: WorkloadState): KubeObject | undefined {
  if (s.kind === 'Job' || s.template.ports.length === 0) return undefined;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: s.name,
      namespace: s.namespace,
      labels: commonLabels(s),
      annotations: ownerAnnotation(s),
    },
    spec: {
      selector: selectorLabels(s),
      // A StatefulSet's governing Service is headless, so each pod gets its DNS name.
      ...(s.kind === 'StatefulSet' ? { clusterIP: 'None' } : {}),
      ports: s.template.ports.map((p) => ({
        name: portName(p.name),
        port: p.port,
        targetPort: portName(p.name),
        protocol: 'TCP',
      })),
    },
  } as KubeObject;
}

/** At most one instance down at a time through voluntary disruptions (node drains). */
export function renderPdb(s: WorkloadState): KubeObject | undefined {
  if (s.kind === 'Job') return undefined;
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: {
      name: s.name,
      namespace: s.namespace,
      labels: commonLabels(s),
      annotations: ownerAnnotation(s),
    },
    spec: { maxUnavailable: 1, selector: { matchLabels: selectorLabels(s) } },
  } as KubeObject;
}
