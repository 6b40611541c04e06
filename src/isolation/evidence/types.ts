/**
 * The evidence bundle of a quarantined instance: a directory holding
 * `manifest.json` (this shape) and the files each part names. Every part says
 * whether it worked; a part that failed or was skipped carries the reason, so
 * the bundle itself is always produced.
 */

export type PartStatus = 'ok' | 'skipped' | 'failed' | 'timeout';

export interface EvidencePart {
  status: PartStatus;
  /** Why the part was skipped, failed or timed out. */
  reason?: string;
  /** Files of this part, relative to the bundle directory. */
  files: string[];
  durationMs: number;
  /** Small structured summary (the full data is in the files). */
  data?: unknown;
}

export type PartName = 'instance' | 'logs' | 'process' | 'cgroup' | 'sockets' | 'history' | 'profile';

export interface ProcessStats {
  state: string;
  threads?: number;
  rssBytes?: number;
  peakRssBytes?: number;
  vmBytes?: number;
  /** CPU time in user and kernel mode since start, ms. */
  userCpuMs?: number;
  systemCpuMs?: number;
  openFds?: number;
  voluntaryCtxSwitches?: number;
  involuntaryCtxSwitches?: number;
}

export interface CgroupStats {
  memory?: {
    usageBytes?: number;
    maxUsageBytes?: number;
    limitBytes?: number;
    failcnt?: number;
    stat?: Record<string, number>;
  };
  cpu?: {
    nrPeriods?: number;
    nrThrottled?: number;
    throttledTimeNs?: number;
    quotaUs?: number;
    periodUs?: number;
  };
  cpuacctUsageNs?: number;
}

export interface EvidenceBundle {
  version: 1;
  /** Absolute path of the bundle directory. */
  dir: string;
  instanceId: string;
  app: string;
  project: string;
  site: string;
  pid?: number;
  netns?: string;
  cgroup?: string;
  /** Instance phase when collection started. */
  phase: string;
  createdAt: string;
  completedAt: string;
  durationMs: number;
  parts: Record<PartName, EvidencePart>;
}
