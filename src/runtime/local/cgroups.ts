/**
 * Instance cgroups on whatever the host mounts: detection (cgroups/detect.ts)
 * picks the unified v2 hierarchy when it offers memory and cpu, the v1
 * controllers otherwise (hybrid hosts with v1 memory/cpu), and reports the
 * mode, controllers, PSI and the reason when limits are unavailable. Both
 * backends implement `Cgroups` (cgroups/types.ts) and produce the same
 * stats shape, so the driver and the isolation signatures do not care.
 */
import type { CgroupCapability } from '../driver.ts';
import { chooseHierarchy, detectCgroupHost, type CgroupHost, type DetectOptions } from './cgroups/detect.ts';
import type { Cgroups } from './cgroups/types.ts';
import { CgroupsV1 } from './cgroups/v1.ts';
import { CgroupsV2 } from './cgroups/v2.ts';

export type { CgroupPaths, CgroupV1Paths, CgroupV2Paths, Cgroups, Limits } from './cgroups/types.ts';
export type { CgroupHost, CgroupMode } from './cgroups/detect.ts';
export { detectCgroupHost } from './cgroups/detect.ts';
export { CgroupsV1 } from './cgroups/v1.ts';
export { CgroupsV2 } from './cgroups/v2.ts';

export interface OpenCgroupsOptions extends DetectOptions {
  /** Parent cgroup of the instances, relative to each hierarchy's root. */
  parent: string;
  /** Detected host, when the caller has it already (tests inject one). */
  host?: CgroupHost;
}

/** What the host offers, for reporting even when limits are off (not root, or privileged: false). */
export function describeCgroupHost(
  host: CgroupHost,
): Omit<CgroupCapability, 'available' | 'reason' | 'version'> {
  return {
    mode: host.mode,
    controllers: { v1: Object.keys(host.v1).sort(), v2: [...host.v2Controllers].sort() },
    // Per-cgroup pressure files exist on v2 only.
    psi: chooseHierarchy(host).version === 2 && host.psi,
  };
}

/**
 * Detect the host, pick a hierarchy and prepare the parent cgroups. `cgroups` is set only when
 * limits can be applied; `capability.reason` says why not otherwise.
 */
export function openCgroups(opts: OpenCgroupsOptions): { capability: CgroupCapability; cgroups?: Cgroups } {
  const host = opts.host ?? detectCgroupHost(opts);
  const described = describeCgroupHost(host);
  const choice = chooseHierarchy(host);
  if (choice.version === undefined)
    return { capability: { available: false, reason: choice.reason, ...described } };
  const cg: Cgroups =
    choice.version === 2
      ? new CgroupsV2({ root: choice.root, parent: opts.parent })
      : new CgroupsV1({ root: choice.root, parent: opts.parent });
  const cap = cg.detect();
  if (!cap.available) return { capability: { ...cap, ...described } };
  return { capability: { ...cap, ...described, version: cg.version }, cgroups: cg };
}
