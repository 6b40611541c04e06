/**
 * Documented defaults of the App manifest and the helpers that apply them.
 * The JSON Schema (`schema.ts`) publishes the same constants as `default`, so
 * what editors show and what controllers assume cannot drift apart.
 */
import type { AppResource, Probe, Workload, WorkloadType } from './types.ts';

export const DEFAULT_SITE = 'local';
export const DEFAULTS = {
  replicas: 1,
  probe: { intervalMs: 1000, timeoutMs: 1000, failureThreshold: 3, successThreshold: 1, initialDelayMs: 0 },
  portProtocol: 'http',
  portTimeoutMs: 5000,
  terminationGracePeriodMs: 10_000,
  placementWeight: 100,
  placementStrategy: 'replicate',
  siteHealth: { intervalMs: 1000, timeoutMs: 800, failureThreshold: 3, failbackAfterMs: 30_000 },
} as const;

/** A service keeps running; a job is expected to end, so only a failure restarts it. */
export function defaultRestartPolicy(type: WorkloadType): 'Always' | 'OnFailure' {
  return type === 'job' ? 'OnFailure' : 'Always';
}

/** Binary (Ki, Mi, Gi, Ti) and decimal (k/K, M, G, T) suffixes, as Kubernetes spells them. */
const MEMORY_UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
};
export const MEMORY_PATTERN = '^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|k|K|M|G|T)?$';

/**
 * Parse a memory quantity into bytes (rounded down).
 * @example parseMemory('128Mi') === 134217728; parseMemory('512M') === 512000000
 * @throws Error naming the accepted forms when the text is not a quantity.
 */
export function parseMemory(text: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|K|M|G|T)?$/.exec(text.trim());
  if (!m) {
    throw new Error(
      `invalid memory quantity '${text}': use a number of bytes with an optional unit, e.g. 134217728, 128Mi, 1Gi, 512M`,
    );
  }
  return Math.floor(Number(m[1]) * (MEMORY_UNITS[m[2] ?? ''] ?? 1));
}

function probeWithDefaults(p: Probe): Probe {
  return { ...DEFAULTS.probe, ...p };
}

function workloadWithDefaults(w: Workload): Workload {
  const out: Workload = {
    ...w,
    replicas: w.replicas ?? DEFAULTS.replicas,
    restartPolicy: w.restartPolicy ?? defaultRestartPolicy(w.type),
    terminationGracePeriodMs: w.terminationGracePeriodMs ?? DEFAULTS.terminationGracePeriodMs,
  };
  if (w.ports) out.ports = w.ports.map((p) => ({ ...p, protocol: p.protocol ?? DEFAULTS.portProtocol }));
  if (w.health) {
    out.health = {};
    if (w.health.readiness) out.health.readiness = probeWithDefaults(w.health.readiness);
    if (w.health.liveness) out.health.liveness = probeWithDefaults(w.health.liveness);
  }
  return out;
}

/**
 * Return a copy of `app` with every documented default filled in; the input is
 * not modified. Controllers call this once so they never re-derive defaults.
 */
export function withDefaults(app: AppResource): AppResource {
  const copy = structuredClone(app);
  copy.spec.workloads = copy.spec.workloads.map(workloadWithDefaults);
  copy.spec.placement = copy.spec.placement
    ? {
        ...copy.spec.placement,
        sites: copy.spec.placement.sites.map((s) => ({ ...s, weight: s.weight ?? DEFAULTS.placementWeight })),
      }
    : { sites: [{ name: DEFAULT_SITE, weight: DEFAULTS.placementWeight }] };
  return copy;
}
