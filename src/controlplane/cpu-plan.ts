/**
 * Which CPUs the local site's parts run on. The gateway (`gatewayCpus`) and
 * the control plane (`controlPlaneCpus`, which hosts the gateway's request-log
 * receiver) are the platform; when either is pinned the instances get the
 * other CPUs, like Kubernetes' reserved CPUs for system daemons. On a small
 * box the two platform parts share one core (`--gateway-cpus 1
 * --control-plane-cpus 1`): measured in bench/dataplane, the log receiver's
 * work there costs the gateway less than it costs the instances (and a
 * benchmark's load generator) on theirs.
 */
export interface CpuPlan {
  /** The instances' CPUs; undefined when nothing is pinned (the scheduler decides). */
  instances?: number[];
}

export function planCpus(
  cpuCount: number,
  gatewayCpus: readonly number[] | undefined,
  controlPlaneCpus: readonly number[] | undefined,
): CpuPlan {
  if (!gatewayCpus && !controlPlaneCpus) return {};
  const platform = new Set([...(gatewayCpus ?? []), ...(controlPlaneCpus ?? [])]);
  const instances = Array.from({ length: cpuCount }, (_, c) => c).filter((c) => !platform.has(c));
  if (instances.length === 0)
    throw new Error(
      `the gateway's CPUs (${gatewayCpus?.join(',') ?? 'none'}) and the control plane's (${controlPlaneCpus?.join(',') ?? 'none'}) are all ${cpuCount} CPUs: leave at least one to the instances`,
    );
  return { instances };
}
