/**
 * Names, labels and annotations of the objects the driver writes. Labels
 * follow the recommended `app.kubernetes.io/*` set so `kubectl get -l`,
 * dashboards and policy engines see Bulwark objects like any others.
 */
import { createHash } from 'node:crypto';

export const LABEL = {
  name: 'app.kubernetes.io/name',
  instance: 'app.kubernetes.io/instance',
  component: 'app.kubernetes.io/component',
  partOf: 'app.kubernetes.io/part-of',
  managedBy: 'app.kubernetes.io/managed-by',
  site: 'bulwark.io/site',
  /** In the Service's and the workload's selector: `serving` normally, `quarantined` or `removing` to take a pod out. */
  pool: 'bulwark.io/pool',
  templateHash: 'bulwark.io/template-hash',
} as const;

export const ANNOTATION = {
  /** `<site>/<project>/<app>`: who owns the object in Bulwark's model. */
  owner: 'bulwark.io/owner',
  /** On the workload object: the instances the controller ensured (JSON, see WorkloadState). */
  instances: 'bulwark.io/instances',
  /** On a pod: the instance id it is bound to. */
  instanceId: 'bulwark.io/instance-id',
  /** On a quarantined pod: JSON {since, reason}. */
  quarantine: 'bulwark.io/quarantine',
  deletionCost: 'controller.kubernetes.io/pod-deletion-cost',
} as const;

/**
 * The scheduling gate a pod template carries when the driver binds pods before they start
 * (`bindBeforeStart`): the pod is not scheduled, so no container starts, until the driver
 * has written the binding and removed the gate; then the container's BULWARK_INSTANCE_ID
 * (downward API from the binding annotation) is the bound instance id.
 */
export const BIND_GATE = 'bulwark.io/instance-id';

export const POOL = { serving: 'serving', quarantined: 'quarantined', removing: 'removing' } as const;
export const MANAGER = 'bulwark';

const short = (s: string, n = 8): string => createHash('sha256').update(s).digest('hex').slice(0, n);

/**
 * A DNS-1123 label (lowercase alphanumerics and '-', at most `max` chars, alphanumeric at both
 * ends). Too long or altered names keep a hash of the original so two inputs never collide.
 */
export function dnsLabel(raw: string, max = 63): string {
  let s = raw
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (!s) s = 'x';
  if (s === raw && s.length <= max) return s;
  const h = short(raw, 6);
  s = s.slice(0, max - h.length - 1).replace(/-+$/g, '');
  return `${s}-${h}`;
}

/** Label values: at most 63 chars of [A-Za-z0-9._-], alphanumeric at both ends. */
export function labelValue(raw: string): string {
  const s = raw.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  if (s === raw && s.length <= 63) return s;
  const h = short(raw, 6);
  return `${s.slice(0, 63 - h.length - 1).replace(/[^A-Za-z0-9]+$/g, '')}-${h}`;
}

export function namespaceName(prefix: string, project: string): string {
  return dnsLabel(`${prefix}${project}`);
}

/**
 * The workload object's name. 47 chars leaves room for the ReplicaSet's and pod's
 * suffixes (`-<10 hex>-<5>`) within 63, so pod names stay valid labels.
 */
export function workloadName(app: string, workload: string): string {
  return dnsLabel(`${app}-${workload}`, 47);
}

/** Port names are IANA service names: at most 15 chars, lowercase alphanumerics and '-'. */
export function portName(raw: string): string {
  return dnsLabel(raw, 15);
}

export { short as shortHash };
