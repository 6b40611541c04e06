/**
 * The RuntimeDriver seam: runs instances of workloads somewhere (processes on
 * this machine, pods on a Kubernetes cluster). Controllers speak only this
 * interface; the contract suite in `driver.contract.ts` pins its behaviour and
 * every implementation runs it.
 *
 * The driver is level-triggered like the controllers: `ensure` is idempotent
 * (calling it again with the same spec changes nothing), and `list` is the
 * truth about what runs.
 */
import type { Probe } from '../model/types.ts';

export interface InstanceSpec {
  /** Unique, stable instance id chosen by the controller, e.g. "bank.accounts.api-0-k3f9". DNS-safe. */
  id: string;
  site: string;
  project: string;
  app: string;
  workload: string;
  ordinal: number;
  /** Local runtime: argv. */
  command?: string[];
  cwd?: string;
  /** Kubernetes runtime. */
  image?: string;
  /**
   * The workload's type, for runtimes that map it to different objects (Kubernetes:
   * Deployment / StatefulSet / Job). Absent: `restartPolicy` Always = service, else job.
   */
  workloadType?: 'service' | 'stateful' | 'job';
  env: Record<string, string>;
  ports: { name: string; port: number }[];
  readiness?: Probe;
  liveness?: Probe;
  /** CPU cores (e.g. 0.5) and memory bytes; undefined = unlimited. */
  cpu?: number;
  memoryBytes?: number;
  restartPolicy: 'Always' | 'OnFailure' | 'Never';
  /** @default 10000 */
  terminationGracePeriodMs?: number;
  /** Hash of the fields above; a changed hash means "replace", not "mutate". */
  specHash: string;
}

export type InstancePhase =
  | 'starting' // process launched, not yet ready
  | 'running' // alive, readiness failing or not yet passed
  | 'ready' // alive and readiness passing (or no readiness probe)
  | 'backoff' // exited, waiting to restart
  | 'succeeded' // exited 0 and will not restart
  | 'failed' // exited non-zero and will not restart (or cannot start)
  | 'stopping'
  | 'quarantined'; // reserved for fault isolation: alive but out of traffic

export type ExitReason = 'exited' | 'signaled' | 'oom-killed' | 'liveness-failed' | 'start-failed';

export interface ExitInfo {
  reason: ExitReason;
  code: number | null;
  signal: string | null;
  at: string;
  message: string;
}

export interface InstanceStatus {
  id: string;
  site: string;
  project: string;
  app: string;
  workload: string;
  ordinal: number;
  specHash: string;
  phase: InstancePhase;
  ready: boolean;
  pid?: number;
  /** Address other components use to reach the instance: its netns IP, or 127.0.0.1. */
  ip: string;
  /** Port name -> actual port reachable at `ip`. */
  ports: Record<string, number>;
  restarts: number;
  lastExit?: ExitInfo;
  /** When a restart is scheduled during backoff. */
  nextRestartAt?: string;
  /** Isolation of this instance as actually applied. */
  isolation: { netns?: string; cgroup?: string };
  /** Set while the instance is quarantined (phase `quarantined`). */
  quarantine?: { since: string; reason: string; cpu?: number; memoryBytes?: number };
  startedAt?: string;
  message?: string;
}

export interface QuarantineOptions {
  /** Why (the incident and signature), kept on the status. */
  reason: string;
  /** Cap CPU (cores) while quarantined, e.g. 0.1; absent = unchanged. Needs cgroups. */
  cpu?: number;
  /** New memory limit (bytes) while quarantined, e.g. raised so a leak is not OOM-killed before
   * its evidence is taken; absent = unchanged. Needs cgroups. */
  memoryBytes?: number;
}

export type LogListener = (stream: 'stdout' | 'stderr', line: string, at: number) => void;

/** Resource accounting of one instance; cumulative counters only grow while the instance exists. */
export interface InstanceStats {
  memoryBytes: number;
  memoryLimitBytes?: number;
  /** Cumulative CPU time used. */
  cpuUsageNs?: number;
  /** Cumulative CFS enforcement periods that elapsed with a CPU quota set (cgroup cpu.stat nr_periods). */
  cpuPeriods?: number;
  /** Cumulative periods in which the quota ran out and the instance was throttled (nr_throttled). */
  cpuThrottledPeriods?: number;
  /** Cumulative kernel OOM kills in the instance's memory cgroup. */
  oomKills?: number;
  /** Pressure stall information of the instance's cgroup (cgroup v2 with PSI on; absent on v1). */
  pressure?: { cpu?: Pressure; memory?: Pressure; io?: Pressure };
}

/** One line of a PSI file: stalled share of wall time (percent) over 10 s, 60 s, 300 s, and in total. */
export interface PressureLine {
  avg10: number;
  avg60: number;
  avg300: number;
  totalUs: number;
}

/** `some`: at least one task stalled on the resource; `full`: all runnable tasks at once (absent for cpu on old kernels). */
export interface Pressure {
  some: PressureLine;
  full?: PressureLine;
}

export type DriverEvent = { type: 'changed'; instance: InstanceStatus } | { type: 'removed'; id: string };

export interface Capability {
  available: boolean;
  /** Why it is unavailable, and how to get it. */
  reason?: string;
}

/** How the host mounts cgroups and which hierarchy limits go through (local driver). */
export interface CgroupCapability extends Capability {
  /** v1, v2 (unified only), hybrid (both), none. */
  mode?: 'v1' | 'v2' | 'hybrid' | 'none';
  /** The hierarchy limits are applied through; absent when unavailable. */
  version?: 1 | 2;
  /** Controllers mounted on v1, and offered by the v2 root (cgroup.controllers). */
  controllers?: { v1: string[]; v2: string[] };
  /** Per-instance pressure stall information in stats (needs v2 and a kernel with PSI on). */
  psi?: boolean;
}

export interface DriverCapabilities {
  networkNamespaces: Capability;
  cgroups: CgroupCapability;
  /**
   * Instances are real processes: they answer on their address, exit, restart and are
   * probed for real. Unavailable on simulated nodes (kwok). Absent = available.
   */
  processes?: Capability;
  /**
   * Instances run confined (local driver: bubblewrap with an unprivileged uid, own mount and
   * PID namespaces, no capabilities, seccomp; see docs/security.md). Absent = not reported.
   */
  sandbox?: Capability;
  /** `logs` and `followLogs` return what the instance printed. Absent = available. */
  logs?: Capability;
  /**
   * Logs keep stdout and stderr apart (`logs` with `stream`, and `followLogs` reporting each
   * line's stream). Unavailable: both streams arrive interleaved and are reported as stdout
   * (Kubernetes without the PodLogsQuerySplitStreams feature gate). Absent = available.
   */
  logStreams?: Capability;
  /**
   * Status carries the instance's `pid` (the same pid for as long as one run lasts). The
   * Kubernetes API exposes no container PID. Absent = available.
   */
  pids?: Capability;
  /**
   * A quarantined instance is neither probed nor restarted (the kubelet cannot be told
   * so: on Kubernetes it keeps probing and restarting a quarantined pod). Absent = available.
   */
  quarantineSuspendsSupervision?: Capability;
}

export interface LogQuery {
  /** Last N lines. @default 100 */
  tail?: number;
  stream?: 'stdout' | 'stderr' | 'both';
}

export interface RuntimeDriver {
  readonly kind: 'local' | 'kubernetes';
  capabilities(): DriverCapabilities;
  /** Start the instance if it does not run; no-op if it runs with the same specHash. */
  ensure(spec: InstanceSpec): Promise<InstanceStatus>;
  /** Graceful stop (SIGTERM, then SIGKILL after the grace period) and cleanup. Idempotent. */
  remove(id: string): Promise<void>;
  get(id: string): InstanceStatus | undefined;
  list(): InstanceStatus[];
  /** Subscribe to instance changes; returns the unsubscribe function. */
  watch(listener: (ev: DriverEvent) => void): () => void;
  logs(id: string, query?: LogQuery): Promise<string[]>;
  /** Current resource usage; undefined for an unknown instance or when nothing can be measured. */
  stats(id: string): InstanceStats | undefined;
  /**
   * Follow new log lines of an instance (stdout and stderr, in order per stream) from now
   * on, across restarts and rotations, until unsubscribed or the instance is removed.
   */
  followLogs(id: string, listener: LogListener): () => void;
  /**
   * Keep the process alive but out of supervision: phase `quarantined`, no probes, no
   * restarts, never counted as a replica by controllers. Optional cgroup caps. Idempotent.
   * If the process exits while quarantined the instance stays `quarantined` (with lastExit)
   * until `remove` or `unquarantine`.
   */
  quarantine(id: string, opts: QuarantineOptions): Promise<InstanceStatus>;
  /** Back to normal supervision (limits restored, probes on); restarts it if it exited. */
  unquarantine(id: string): Promise<InstanceStatus>;
  /**
   * Stop supervising without stopping instances (control-plane restart keeps
   * workloads running) unless `stopInstances` is true.
   */
  close(opts?: { stopInstances?: boolean }): Promise<void>;
}
