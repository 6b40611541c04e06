/**
 * The interface the local driver uses for instance cgroups, whichever
 * hierarchy is behind it (v1.ts, v2.ts). Paths are persisted in instance
 * records, so their shape tells the version: v1 has one directory per
 * controller, v2 a single unified one.
 */
import type { Capability, InstanceStats } from '../../driver.ts';

export interface CgroupV1Paths {
  memory: string;
  cpu: string;
  /** Absent when the cpuacct controller is not mounted separately or at all. */
  cpuacct?: string;
}

export interface CgroupV2Paths {
  unified: string;
}

export type CgroupPaths = CgroupV1Paths | CgroupV2Paths;

export interface Limits {
  /** Cores, e.g. 0.5; undefined = unlimited. */
  cpu?: number;
  /** Bytes; undefined = unlimited. */
  memoryBytes?: number;
}

export interface Cgroups {
  readonly version: 1 | 2;
  /** Whether limits can be applied here, and why not. Creates the parent cgroups when it can. */
  detect(): Capability;
  /** Remove this driver's parent cgroups when no instance is left in them. */
  removeParentIfEmpty(): void;
  pathsFor(id: string): CgroupPaths;
  /** Create (or reuse) the instance's cgroup and apply limits. */
  create(id: string, limits: Limits): CgroupPaths;
  /** CPU quota in cores, undefined = unlimited; takes effect at once for running processes. */
  setCpuLimit(p: CgroupPaths, cpu: number | undefined): void;
  /** Memory limit in bytes, undefined = unlimited; lowering it below usage reclaims, then OOM-kills. */
  setMemoryLimit(p: CgroupPaths, bytes: number | undefined): void;
  /** cgroup.procs files a process writes its pid into to join (before exec, see launcher.ts). */
  procsFiles(p: CgroupPaths): string[];
  /** Kernel OOM kills in this cgroup so far (monotonic; compare before/after a run). */
  oomKills(p: CgroupPaths): number;
  stats(p: CgroupPaths): InstanceStats | undefined;
  pids(p: CgroupPaths): number[];
  /** SIGKILL everything left in the cgroup (stragglers that escaped the process group). */
  killAll(p: CgroupPaths): void;
  /** Kill what is left and remove the cgroup. */
  remove(p: CgroupPaths): Promise<void>;
}

export function isV2Paths(p: CgroupPaths): p is CgroupV2Paths {
  return typeof (p as Partial<CgroupV2Paths>).unified === 'string';
}
