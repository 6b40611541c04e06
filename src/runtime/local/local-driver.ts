/**
 * LocalDriver: runs instances as supervised processes on this machine.
 *
 * Each run of an instance is owned by a detached shim (shim.ts) that survives
 * the control plane, so a restarted driver re-adopts what runs instead of
 * starting duplicates. The driver keeps one record per instance (through the
 * injected InstanceRecords) with the identities (pid + start time) of shim and
 * child, its address, ports, netns and cgroup; `create()` reconciles those
 * records against /proc and the shims' files.
 *
 * Privileged mode (root): own netns + IP on a bridge, cgroup limits (v2, or v1 on hybrid hosts), OOM
 * detection. Unprivileged: plain processes on 127.0.0.1 with allocated ports.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import type {
  DriverCapabilities,
  DriverEvent,
  ExitInfo,
  InstancePhase,
  InstanceSpec,
  InstanceStats,
  InstanceStatus,
  LogListener,
  LogQuery,
  QuarantineOptions,
  RuntimeDriver,
} from '../driver.ts';
import { freePort } from '../../util/ports.ts';
import { sleep } from '../../util/time.ts';
import { nextBackoff } from './backoff.ts';
import {
  describeCgroupHost,
  detectCgroupHost,
  openCgroups,
  type CgroupPaths,
  type Cgroups,
} from './cgroups.ts';
import { resolveExecutable } from './executable.ts';
import { launch } from './launcher.ts';
import { Sandbox } from './sandbox/sandbox.ts';
import { LogFollower } from './log-follower.ts';
import { tailLogs } from './log-reader.ts';
import { tightenTree } from '../../util/private-files.ts';
import { BridgeNetwork, type InstanceNet } from './network.ts';
import { compileOptions, validateSpec, type CompiledOptions, type LocalDriverOptions } from './options.ts';
import { ProbeRunner, type ProbeTarget } from './probes.ts';
import { isAlive, signalGroup, type ProcIdentity } from './proc.ts';
import { FILES, readJson, type ChildFile, type ExitFile, type ShimStatusFile } from './shim-protocol.ts';

export type { LocalDriverOptions } from './options.ts';

/** Longest start-up (no readiness yet) that liveness tolerates before it may kill a run. */
const STARTUP_GRACE_MS = 60_000;
export type { InstanceStats } from '../driver.ts';

/** What the driver persists per instance (InstanceRecord.data). */
export interface LocalRecordData {
  spec: InstanceSpec;
  ip: string;
  ports: Record<string, number>;
  net?: InstanceNet;
  cgroup?: CgroupPaths;
  shim?: ProcIdentity;
  child?: ProcIdentity;
  restarts: number;
  /** Consecutive crashes, for backoff. */
  crashes: number;
  runStartedAtMs?: number;
  startedAt?: string;
  /** OOM-kill counter of the cgroup when the current run started. */
  oomBaseline: number;
  lastExit?: ExitInfo;
  /** This run has passed readiness at least once (liveness only acts after that, or after the start-up grace). */
  readyOnce?: boolean;
  nextRestartAtMs?: number;
  terminal?: 'succeeded' | 'failed';
  message?: string;
  /** Last readiness verdict, restored on adoption so a control-plane restart does not flap traffic. */
  lastReady?: boolean;
  /** Present while quarantined; persisted so a control-plane restart keeps the instance out of supervision. */
  quarantine?: QuarantineRecord;
}

interface QuarantineRecord {
  since: string;
  reason: string;
  /** Caps actually written to the cgroup (restored to the spec's limits on unquarantine). */
  cpu?: number;
  memoryBytes?: number;
  /** Why requested caps were not applied (no cgroups, or the kernel refused). */
  capsNote?: string;
}

interface Inst {
  data: LocalRecordData;
  ready: boolean;
  everReady: boolean;
  stopping: boolean;
  launching: boolean;
  pendingReason?: 'liveness-failed';
  readiness?: ProbeRunner;
  liveness?: ProbeRunner;
  restartTimer?: NodeJS.Timeout;
  killTimer?: NodeJS.Timeout;
  droppedLogLines: number;
  logError?: string;
  lastEmitted?: string;
  persistChain: Promise<void>;
}

export interface LocalDriverStatus {
  mode: 'privileged' | 'unprivileged';
  stateDir: string;
  site: string;
  instances: number;
  phases: Partial<Record<InstancePhase, number>>;
  droppedLogLines: number;
  capabilities: DriverCapabilities;
}

const DEFAULT_GRACE_MS = 10_000;
/** How often followed log files are checked: new lines reach listeners within about this long. */
const FOLLOW_INTERVAL_MS = 100;

interface Follow {
  follower: LogFollower;
  listener: LogListener;
}

export class LocalDriver implements RuntimeDriver {
  readonly kind = 'local' as const;
  private readonly opts: CompiledOptions;
  private readonly caps: DriverCapabilities;
  private readonly network: BridgeNetwork | undefined;
  private readonly cgroups: Cgroups | undefined;
  private readonly sandbox: Sandbox | undefined;
  private readonly insts = new Map<string, Inst>();
  private readonly listeners = new Set<(ev: DriverEvent) => void>();
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Addresses handed out whose instance is still being set up (not yet in `insts`). */
  private readonly pendingIps = new Set<string>();
  private monitor: NodeJS.Timeout | undefined;
  private readonly follows = new Map<string, Set<Follow>>();
  private followTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    opts: CompiledOptions,
    caps: DriverCapabilities,
    network: BridgeNetwork | undefined,
    cgroups: Cgroups | undefined,
    sandbox: Sandbox | undefined,
  ) {
    this.opts = opts;
    this.caps = caps;
    this.network = network;
    this.cgroups = cgroups;
    this.sandbox = sandbox;
  }

  /** Detect capabilities, prepare the bridge, and re-adopt (or clean up) instances from the records. */
  static async create(options: LocalDriverOptions): Promise<LocalDriver> {
    const opts = compileOptions(options);
    // 0700: instance dirs hold launch files with the instances' env (their secrets).
    mkdirSync(path.join(opts.stateDir, 'instances'), { recursive: true, mode: 0o700 });
    // Launch records an earlier version wrote with the umask's modes (0644 launch.json: env).
    tightenTree(path.join(opts.stateDir, 'instances'));
    const root = process.getuid?.() === 0;
    const privileged = opts.privileged ?? root;
    const off = (what: string) => ({
      available: false,
      reason: root
        ? `privileged mode disabled by option (privileged: false): enable it to get ${what}`
        : `not running as root: run the control plane as root to get ${what}`,
    });
    let network: BridgeNetwork | undefined;
    let cgroups: Cgroups | undefined;
    const caps: DriverCapabilities = {
      networkNamespaces: off('network namespaces'),
      // The host's cgroup mode is reported even when limits are off.
      cgroups: { ...off('cgroup limits'), ...describeCgroupHost(detectCgroupHost()) },
    };
    const sb = await Sandbox.detect(opts.stateDir, opts.sandbox);
    caps.sandbox = sb.capability;
    if (opts.sandbox.enabled === true && !sb.sandbox)
      throw new Error(`LocalDriver option sandbox: true, but ${sb.capability.reason ?? 'it is unavailable'}`);
    if (privileged) {
      const net = new BridgeNetwork({
        bridge: opts.bridge,
        subnet: opts.subnet,
        owner: path.resolve(opts.stateDir),
        scope: opts.scope,
        // Sandboxed instances reach each other only through the gateway, and bind as non-root.
        isolatePorts: sb.sandbox !== undefined,
        unprivilegedPorts: sb.sandbox !== undefined,
      });
      caps.networkNamespaces = net.detect();
      if (caps.networkNamespaces.available) {
        await net.ensureBridge();
        network = net;
      }
      const cg = openCgroups({ parent: `${opts.cgroupParent}/${opts.scope}` });
      caps.cgroups = cg.capability;
      cgroups = cg.cgroups;
    }
    const d = new LocalDriver(opts, caps, network, cgroups, sb.sandbox);
    await d.adoptAll();
    d.monitor = setInterval(() => d.poll(), opts.pollIntervalMs);
    return d;
  }

  capabilities(): DriverCapabilities {
    return structuredClone(this.caps);
  }

  /**
   * The address instances use to reach the host (and so the site gateway): the bridge
   * gateway when instances live in their own network namespaces, loopback otherwise.
   */
  get hostIp(): string {
    return this.network ? this.network.gateway : '127.0.0.1';
  }

  status(): LocalDriverStatus {
    const phases: Partial<Record<InstancePhase, number>> = {};
    let dropped = 0;
    for (const inst of this.insts.values()) {
      const p = this.toStatus(inst).phase;
      phases[p] = (phases[p] ?? 0) + 1;
      dropped += inst.droppedLogLines;
    }
    return {
      mode: this.network || this.cgroups ? 'privileged' : 'unprivileged',
      stateDir: this.opts.stateDir,
      site: this.opts.site,
      instances: this.insts.size,
      phases,
      droppedLogLines: dropped,
      capabilities: this.capabilities(),
    };
  }

  async ensure(spec: InstanceSpec): Promise<InstanceStatus> {
    this.assertOpen();
    validateSpec(spec, this.opts.site);
    return await this.withLock(spec.id, async () => {
      const existing = this.insts.get(spec.id);
      if (existing && !existing.stopping && existing.data.spec.specHash === spec.specHash) {
        return this.toStatus(existing);
      }
      if (existing) await this.removeLocked(spec.id);
      const inst = await this.createInstance(structuredClone(spec));
      await this.startRun(inst);
      return this.toStatus(inst);
    });
  }

  async remove(id: string): Promise<void> {
    await this.withLock(id, () => this.removeLocked(id));
  }

  get(id: string): InstanceStatus | undefined {
    const inst = this.insts.get(id);
    return inst ? this.toStatus(inst) : undefined;
  }

  list(): InstanceStatus[] {
    return [...this.insts.values()].map((i) => this.toStatus(i));
  }

  watch(listener: (ev: DriverEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async logs(id: string, query: LogQuery = {}): Promise<string[]> {
    if (!this.insts.has(id)) throw new Error(`unknown instance '${id}'`);
    const stream = query.stream ?? 'both';
    const streams = stream === 'both' ? ['stdout', 'stderr'] : [stream];
    const lines = await tailLogs(path.join(this.dirOf(id), 'logs'), streams, {
      tail: query.tail ?? 100,
      files: this.opts.logFiles,
    });
    return lines.map((l) => l.text);
  }

  /**
   * Memory and CPU accounting: from the cgroup when privileged (with throttling and OOM
   * counters), else from /proc of the main process (memory = its RSS).
   */
  stats(id: string): InstanceStats | undefined {
    const inst = this.insts.get(id);
    if (!inst) return undefined;
    if (inst.data.cgroup && this.cgroups) return this.cgroups.stats(inst.data.cgroup);
    const child = inst.data.child;
    if (!child || !isAlive(child)) return undefined;
    try {
      const st = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const rss = /VmRSS:\s+(\d+) kB/.exec(st);
      const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime + stime (fields 14, 15) are in clock ticks; USER_HZ is 100 on Linux.
      const ticks = Number(f[11]) + Number(f[12]);
      return { memoryBytes: rss ? Number(rss[1]) * 1024 : 0, cpuUsageNs: ticks * 10_000_000 };
    } catch {
      return undefined;
    }
  }

  followLogs(id: string, listener: LogListener): () => void {
    this.assertOpen();
    if (!this.insts.has(id)) throw new Error(`unknown instance '${id}': cannot follow its logs`);
    const follow: Follow = {
      follower: new LogFollower(path.join(this.dirOf(id), 'logs'), this.opts.logFiles),
      listener,
    };
    follow.follower.start();
    let set = this.follows.get(id);
    if (!set) this.follows.set(id, (set = new Set()));
    set.add(follow);
    this.followTimer ??= setInterval(() => this.pollFollows(), FOLLOW_INTERVAL_MS);
    return () => this.unfollow(id, follow);
  }

  /**
   * Take the instance out of supervision without touching its process: no probes, no restarts,
   * not ready. Caps are applied to its cgroup (absent ones keep the current limit; a repeated
   * call keeps `since` and earlier caps it does not override). See `QuarantineOptions`.
   */
  async quarantine(id: string, opts: QuarantineOptions): Promise<InstanceStatus> {
    this.assertOpen();
    if (typeof opts?.reason !== 'string' || opts.reason.trim() === '')
      throw new Error('quarantine: reason must be a non-empty string (the incident and signature)');
    if (opts.cpu !== undefined && !(Number.isFinite(opts.cpu) && opts.cpu > 0))
      throw new Error(`quarantine: cpu must be a positive number of cores, got ${opts.cpu}`);
    if (opts.memoryBytes !== undefined && !(Number.isSafeInteger(opts.memoryBytes) && opts.memoryBytes > 0))
      throw new Error(`quarantine: memoryBytes must be a positive integer, got ${opts.memoryBytes}`);
    return await this.withLock(id, async () => {
      const inst = this.insts.get(id);
      if (!inst || inst.stopping)
        throw new Error(`quarantine: unknown instance '${id}' on site '${this.opts.site}'`);
      const d = inst.data;
      const q: QuarantineRecord = d.quarantine ?? { since: new Date().toISOString(), reason: opts.reason };
      q.reason = opts.reason;
      this.stopProbes(inst);
      // Leave the process exactly as it is: a pending liveness kill is called off too.
      if (inst.killTimer) clearTimeout(inst.killTimer);
      inst.killTimer = undefined;
      inst.pendingReason = undefined;
      if (inst.restartTimer) clearTimeout(inst.restartTimer);
      inst.restartTimer = undefined;
      if (d.nextRestartAtMs !== undefined && !d.shim && d.lastExit)
        d.message = `${d.lastExit.message}; not restarted while quarantined`;
      delete d.nextRestartAtMs;
      inst.ready = false;
      d.lastReady = false;
      const wanted: { cpu?: number; memoryBytes?: number } = {};
      if (opts.cpu !== undefined) wanted.cpu = opts.cpu;
      if (opts.memoryBytes !== undefined) wanted.memoryBytes = opts.memoryBytes;
      const notes: string[] = [];
      if (wanted.cpu !== undefined || wanted.memoryBytes !== undefined) {
        if (!d.cgroup || !this.cgroups) {
          notes.push(
            `quarantine caps (${Object.keys(wanted).join(', ')}) ignored: cgroups unavailable (${this.caps.cgroups.reason ?? 'no cgroup for this instance'})`,
          );
        } else {
          if (wanted.cpu !== undefined) {
            try {
              this.cgroups.setCpuLimit(d.cgroup, wanted.cpu);
              q.cpu = wanted.cpu;
            } catch (err) {
              notes.push(`quarantine cpu cap not applied: ${String(err)}`);
            }
          }
          if (wanted.memoryBytes !== undefined) {
            try {
              this.cgroups.setMemoryLimit(d.cgroup, wanted.memoryBytes);
              q.memoryBytes = wanted.memoryBytes;
            } catch (err) {
              notes.push(`quarantine memory cap not applied: ${String(err)}`);
            }
          }
        }
      }
      if (notes.length) q.capsNote = notes.join('; ');
      else if (wanted.cpu !== undefined || wanted.memoryBytes !== undefined) delete q.capsNote;
      d.quarantine = q;
      await this.persist(inst);
      this.emit(inst);
      return this.toStatus(inst);
    });
  }

  /**
   * Back under supervision: the spec's limits restored, probes resumed (readiness from
   * scratch). A run that exited while quarantined is handled by the restart policy now
   * (restarted at once, or left succeeded/failed). Idempotent.
   */
  async unquarantine(id: string): Promise<InstanceStatus> {
    this.assertOpen();
    return await this.withLock(id, async () => {
      const inst = this.insts.get(id);
      if (!inst || inst.stopping)
        throw new Error(`unquarantine: unknown instance '${id}' on site '${this.opts.site}'`);
      const d = inst.data;
      const q = d.quarantine;
      if (!q) return this.toStatus(inst);
      const notes: string[] = [];
      if (d.cgroup && this.cgroups) {
        try {
          if (q.cpu !== undefined) this.cgroups.setCpuLimit(d.cgroup, d.spec.cpu);
        } catch (err) {
          notes.push(`could not restore the cpu limit: ${String(err)}`);
        }
        try {
          if (q.memoryBytes !== undefined) this.cgroups.setMemoryLimit(d.cgroup, d.spec.memoryBytes);
        } catch (err) {
          notes.push(`could not restore the memory limit: ${String(err)}`);
        }
      }
      delete d.quarantine;
      if (notes.length) d.message = notes.join('; ');
      if (d.shim) {
        inst.ready = !d.spec.readiness;
        d.lastReady = inst.ready;
        this.startProbes(inst);
      } else if (!d.terminal) {
        const info = d.lastExit;
        const success = info?.reason === 'exited' && info.code === 0;
        const policy = d.spec.restartPolicy;
        if (info && (policy === 'Never' || (policy === 'OnFailure' && success))) {
          d.terminal = success ? 'succeeded' : 'failed';
          d.message = info.message;
        } else {
          // The quarantine outlasted any backoff this exit would have earned.
          d.nextRestartAtMs = Date.now();
          this.scheduleRestart(inst);
        }
      }
      await this.persist(inst);
      this.emit(inst);
      return this.toStatus(inst);
    });
  }

  async close(opts: { stopInstances?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    if (opts.stopInstances) {
      await Promise.all([...this.insts.keys()].map((id) => this.remove(id)));
      this.cgroups?.removeParentIfEmpty();
    }
    this.closed = true;
    if (this.monitor) clearInterval(this.monitor);
    for (const id of [...this.follows.keys()]) this.dropFollows(id);
    for (const inst of this.insts.values()) {
      this.stopProbes(inst);
      if (inst.restartTimer) clearTimeout(inst.restartTimer);
      if (inst.killTimer) clearTimeout(inst.killTimer);
    }
    await Promise.all([...this.insts.values()].map((i) => i.persistChain));
    this.listeners.clear();
  }

  // ------------------------------------------------------------ lifecycle

  private async createInstance(spec: InstanceSpec): Promise<Inst> {
    let ip = '127.0.0.1';
    let ports: Record<string, number> = {};
    let net: InstanceNet | undefined;
    if (this.network) {
      const used = [...this.insts.values()].map((i) => i.data.ip);
      ip = this.network.allocate([...used, ...this.pendingIps]);
      for (const p of spec.ports) ports[p.name] = p.port;
      // Reserved synchronously: ensures of other ids run concurrently and must not get the same address.
      this.pendingIps.add(ip);
      try {
        net = await this.network.setup(spec.id, ip);
      } catch (err) {
        this.pendingIps.delete(ip);
        this.network.release(ip);
        throw err;
      }
    } else {
      for (const p of spec.ports) ports[p.name] = await freePort();
    }
    let cgroup: CgroupPaths | undefined;
    try {
      if (this.cgroups) {
        const limits: { cpu?: number; memoryBytes?: number } = {};
        if (spec.cpu !== undefined) limits.cpu = spec.cpu;
        if (spec.memoryBytes !== undefined) limits.memoryBytes = spec.memoryBytes;
        cgroup = this.cgroups.create(spec.id, limits);
      }
    } catch (err) {
      if (net) await this.network?.teardown(net);
      this.pendingIps.delete(ip);
      if (net) this.network?.release(ip);
      throw err;
    }
    const data: LocalRecordData = { spec, ip, ports, restarts: 0, crashes: 0, oomBaseline: 0 };
    if (net) data.net = net;
    if (cgroup) data.cgroup = cgroup;
    ports = data.ports;
    mkdirSync(this.dirOf(spec.id), { recursive: true, mode: 0o700 });
    const inst = this.newInst(data);
    this.insts.set(spec.id, inst);
    this.pendingIps.delete(ip);
    // Persist before launching so a crash right after launch still leaves a record to adopt from.
    await this.persist(inst);
    return inst;
  }

  private newInst(data: LocalRecordData): Inst {
    return {
      data,
      ready: false,
      everReady: false,
      stopping: false,
      launching: false,
      droppedLogLines: 0,
      persistChain: Promise.resolve(),
    };
  }

  private envFor(d: LocalRecordData): Record<string, string> {
    const env: Record<string, string> = {};
    for (const k of this.opts.inheritEnv) {
      const v = process.env[k];
      if (v !== undefined) env[k] = v;
    }
    // `node` in a run command means the Node.js that runs Bulwark (pinned to 24), not
    // whatever older node the host PATH happens to find first.
    const nodeDir = path.dirname(process.execPath);
    if (env.PATH !== undefined && !env.PATH.split(':').includes(nodeDir)) env.PATH = `${nodeDir}:${env.PATH}`;
    Object.assign(env, d.spec.env);
    const first = d.spec.ports[0];
    if (first) env.PORT = String(d.ports[first.name]);
    for (const p of d.spec.ports) {
      env[`BULWARK_PORT_${p.name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`] = String(d.ports[p.name]);
    }
    env.BULWARK_INSTANCE_ID = d.spec.id;
    if (this.sandbox) env.BULWARK_INSTANCE_DATA_DIR = this.sandbox.dataDirOf(d.spec);
    env.BULWARK_HOST_IP = this.hostIp;
    // In the host's network namespace an inspector opened by SIGUSR1 (a profile, evidence) would
    // listen on 127.0.0.1:9229, which every local process can reach and drive: make Node pick a
    // random port instead (see profiling/exposure.ts). First, so the workload's own setting wins.
    if (!this.network) env.NODE_OPTIONS = ['--inspect-port=0', env.NODE_OPTIONS].filter(Boolean).join(' ');
    return env;
  }

  /** Launch one run. Caller holds the instance lock and made sure no run is alive. */
  private async startRun(inst: Inst): Promise<void> {
    const d = inst.data;
    const spec = d.spec;
    const cwd = spec.cwd ?? process.cwd();
    const env = this.envFor(d);
    delete d.terminal;
    delete d.nextRestartAtMs;
    inst.pendingReason = undefined;
    inst.ready = false;
    inst.everReady = false;
    delete d.readyOnce;
    const exe = resolveExecutable(spec.command![0]!, { cwd, pathEnv: env.PATH });
    if ('error' in exe) {
      this.onExit(inst, {
        reason: 'start-failed',
        code: null,
        signal: null,
        at: new Date().toISOString(),
        message: `start-failed: ${exe.error}`,
      });
      return;
    }
    // The monitor leaves the instance alone until this run's outcome is recorded here,
    // so an early exit is processed exactly once.
    inst.launching = true;
    try {
      if (d.net && this.network && !existsSync(this.network.netnsPath(d.net.netns))) {
        // The netns vanished (host reboot, manual cleanup): rebuild it at the same address.
        d.net = await this.network.setup(spec.id, d.ip);
      }
      if (d.cgroup && this.cgroups) d.oomBaseline = this.cgroups.oomKills(d.cgroup);
      // Recorded before the shim exists: if the control plane dies mid-launch, the next one
      // finds no pending backoff in the record and adopts (or replaces) whatever the files show.
      await this.persist(inst);
      await this.launchRun(inst, exe.path, cwd, env);
    } catch (err) {
      // A host-side failure (netns setup, full state disk) is retried with backoff, never left hanging.
      this.onExit(inst, {
        reason: 'start-failed',
        code: null,
        signal: null,
        at: new Date().toISOString(),
        message: `start-failed: ${err instanceof Error ? err.message : String(err)}`,
      });
    } finally {
      inst.launching = false;
    }
  }

  private async launchRun(
    inst: Inst,
    exePath: string,
    cwd: string,
    env: Record<string, string>,
  ): Promise<void> {
    const d = inst.data;
    const spec = d.spec;
    const args = spec.command!.slice(1);
    const sandbox = this.sandbox?.prepare(spec, cwd, exePath, args);
    const r = await launch({
      dir: this.dirOf(spec.id),
      argv: [exePath, ...args],
      ...(sandbox ? { sandbox } : {}),
      cwd,
      env,
      ...(d.net && this.network ? { netnsPath: this.network.netnsPath(d.net.netns) } : {}),
      ...(d.cgroup && this.cgroups ? { cgroupProcs: this.cgroups.procsFiles(d.cgroup) } : {}),
      logMaxBytes: this.opts.logMaxBytes,
      logFiles: this.opts.logFiles,
      waitMs: this.opts.launchWaitMs,
      ...(this.opts.cpus ? { cpus: this.opts.cpus } : {}),
    });
    d.runStartedAtMs = Date.now();
    d.startedAt = new Date().toISOString();
    delete d.message;
    if (r.shim) d.shim = r.shim;
    if (r.child) d.child = r.child;
    inst.ready = !spec.readiness;
    inst.everReady = inst.ready;
    d.lastReady = inst.ready;
    await this.persist(inst);
    if (r.exit) this.processExitFile(inst, r.exit);
    else if (!r.shim) {
      this.onExit(inst, {
        reason: 'start-failed',
        code: null,
        signal: null,
        at: new Date().toISOString(),
        message:
          'start-failed: the shim process could not be started (see shim.log in the instance state dir)',
      });
    } else {
      this.startProbes(inst);
      this.emit(inst);
    }
  }

  /** Classify a shim-reported exit and hand it to onExit. */
  private processExitFile(inst: Inst, ef: ExitFile): void {
    const d = inst.data;
    let info: ExitInfo;
    if (ef.spawnError) {
      info = {
        reason: 'start-failed',
        code: null,
        signal: null,
        at: ef.at,
        message: `start-failed: ${ef.spawnError}`,
      };
    } else if (inst.pendingReason === 'liveness-failed') {
      info = {
        reason: 'liveness-failed',
        code: ef.code,
        signal: ef.signal,
        at: ef.at,
        message: `killed after the liveness probe failed: ${inst.liveness?.lastMessage ?? ''}`.trim(),
      };
    } else if (
      ef.signal === 'SIGKILL' &&
      d.cgroup &&
      this.cgroups &&
      this.cgroups.oomKills(d.cgroup) > d.oomBaseline
    ) {
      info = {
        reason: 'oom-killed',
        code: null,
        signal: ef.signal,
        at: ef.at,
        message: `OOM-killed: exceeded its memory limit of ${d.spec.memoryBytes ?? 'unlimited'} bytes`,
      };
    } else if (ef.signal) {
      info = {
        reason: 'signaled',
        code: null,
        signal: ef.signal,
        at: ef.at,
        message: `killed by ${ef.signal}`,
      };
    } else {
      info = {
        reason: 'exited',
        code: ef.code,
        signal: null,
        at: ef.at,
        message: `exited with code ${ef.code}`,
      };
    }
    this.onExit(inst, info);
  }

  /** Record an exit and decide: restart after backoff, or stay succeeded/failed. */
  private onExit(inst: Inst, info: ExitInfo): void {
    const d = inst.data;
    this.stopProbes(inst);
    if (inst.killTimer) clearTimeout(inst.killTimer);
    inst.killTimer = undefined;
    if (d.cgroup && this.cgroups) this.cgroups.killAll(d.cgroup);
    const ranForMs = d.runStartedAtMs !== undefined ? Date.now() - d.runStartedAtMs : 0;
    delete d.shim;
    delete d.child;
    delete d.runStartedAtMs;
    // This run's files are consumed: leaving them would make a later adoption replay the exit.
    const dir = this.dirOf(d.spec.id);
    for (const f of [FILES.exit, FILES.child, FILES.shim]) rmSync(path.join(dir, f), { force: true });
    d.lastExit = info;
    d.lastReady = false;
    inst.ready = false;
    inst.pendingReason = undefined;
    if (d.quarantine && !inst.stopping) {
      d.message = `${info.message}; not restarted while quarantined`;
    } else if (!inst.stopping) {
      const policy = d.spec.restartPolicy;
      const success = info.reason === 'exited' && info.code === 0;
      if (policy === 'Never' || (policy === 'OnFailure' && success)) {
        d.terminal = success ? 'succeeded' : 'failed';
        d.message = info.message;
      } else {
        const b = nextBackoff(this.opts.backoff, d.crashes, ranForMs);
        d.crashes = b.crashes;
        d.nextRestartAtMs = Date.now() + b.delayMs;
        d.message = `${info.message}; restarting in ${b.delayMs} ms`;
        this.scheduleRestart(inst);
      }
    }
    void this.persist(inst);
    this.emit(inst);
  }

  private scheduleRestart(inst: Inst): void {
    if (this.closed || inst.data.nextRestartAtMs === undefined) return;
    if (inst.restartTimer) clearTimeout(inst.restartTimer);
    const id = inst.data.spec.id;
    inst.restartTimer = setTimeout(
      () => {
        inst.restartTimer = undefined;
        this.withLock(id, async () => {
          if (this.closed || inst.stopping || this.insts.get(id) !== inst || inst.data.shim) return;
          if (inst.data.quarantine) return;
          inst.data.restarts++;
          await this.startRun(inst);
        }).catch((err: unknown) => {
          inst.data.message = `restart failed: ${String(err)}`;
          this.emit(inst);
        });
      },
      Math.max(0, inst.data.nextRestartAtMs - Date.now()),
    );
  }

  private async removeLocked(id: string): Promise<void> {
    const inst = this.insts.get(id);
    if (!inst) return;
    inst.stopping = true;
    if (inst.restartTimer) clearTimeout(inst.restartTimer);
    this.stopProbes(inst);
    this.emit(inst);
    await this.stopRun(inst, inst.data.spec.terminationGracePeriodMs ?? DEFAULT_GRACE_MS);
    const d = inst.data;
    if (d.net && this.network) {
      await this.network.teardown(d.net);
      this.network.release(d.ip);
    }
    if (d.cgroup && this.cgroups) await this.cgroups.remove(d.cgroup);
    this.sandbox?.release(d.spec);
    await inst.persistChain;
    await this.opts.records.deleteInstance(id);
    // Followers get the last lines (e.g. what the process said on SIGTERM) before the files go.
    this.pollFollows(id);
    this.dropFollows(id);
    rmSync(this.dirOf(id), { recursive: true, force: true });
    this.insts.delete(id);
    this.emitRaw({ type: 'removed', id });
  }

  /** SIGTERM the child's process group, SIGKILL after the grace period, then make sure the shim is gone. */
  private async stopRun(inst: Inst, graceMs: number): Promise<void> {
    const d = inst.data;
    const dir = this.dirOf(d.spec.id);
    const shim = d.shim ?? readJson<ChildFile>(path.join(dir, FILES.shim));
    let child = d.child ?? readJson<ChildFile>(path.join(dir, FILES.child));
    if (!child && isAlive(shim)) {
      // Launched a moment ago: give the shim a moment to report its child.
      for (let i = 0; i < 50 && !child && isAlive(shim); i++) {
        await sleep(20);
        child = readJson<ChildFile>(path.join(dir, FILES.child));
      }
    }
    if (child && isAlive(child)) {
      signalGroup(child, 'SIGTERM');
      // A stopped process (SIGSTOPped, e.g. frozen for inspection) only acts on SIGTERM once continued.
      signalGroup(child, 'SIGCONT');
      const deadline = Date.now() + graceMs;
      while (isAlive(child) && Date.now() < deadline) await sleep(25);
      if (isAlive(child)) signalGroup(child, 'SIGKILL');
    }
    if (d.cgroup && this.cgroups) this.cgroups.killAll(d.cgroup);
    // The shim exits right after recording the exit; wait for that, then insist.
    for (let i = 0; i < 80 && isAlive(shim); i++) await sleep(25);
    if (shim && isAlive(shim)) signalGroup(shim, 'SIGKILL');
    const ef = readJson<ExitFile>(path.join(dir, FILES.exit));
    if (d.shim || d.child) {
      if (ef) this.processExitFile(inst, ef);
      else
        this.onExit(inst, {
          reason: 'signaled',
          code: null,
          signal: 'SIGKILL',
          at: new Date().toISOString(),
          message: 'stopped',
        });
    }
  }

  // ------------------------------------------------------------ adoption

  private async adoptAll(): Promise<void> {
    const recs = await this.opts.records.listInstances(this.opts.site);
    for (const rec of recs) {
      const d = rec.data as unknown as LocalRecordData;
      if (!d || typeof d !== 'object' || !d.spec || typeof d.spec.id !== 'string') {
        await this.opts.records.deleteInstance(rec.id);
        continue;
      }
      const inst = this.newInst(d);
      this.insts.set(d.spec.id, inst);
      if (d.net && this.network) this.network.claim(d.ip, d.net.netns);
      await this.adoptOne(inst);
    }
    // Instance dirs without a record (the driver died between mkdir and persist): kill and remove.
    const root = path.join(this.opts.stateDir, 'instances');
    for (const name of readdirSync(root)) {
      if (this.insts.has(name)) continue;
      const dir = path.join(root, name);
      const child = readJson<ChildFile>(path.join(dir, FILES.child));
      const shim = readJson<ChildFile>(path.join(dir, FILES.shim));
      if (child && isAlive(child)) signalGroup(child, 'SIGKILL');
      if (shim && isAlive(shim)) signalGroup(shim, 'SIGKILL');
      // Names are derived from the id, so isolation set up before the record was written can be found.
      if (this.cgroups) await this.cgroups.remove(this.cgroups.pathsFor(name)).catch(() => {});
      if (this.network)
        await this.network.teardown({ netns: this.network.netnsFor(name), vethHost: '', ip: '' });
      rmSync(dir, { recursive: true, force: true });
    }
  }

  private async adoptOne(inst: Inst): Promise<void> {
    const d = inst.data;
    const dir = this.dirOf(d.spec.id);
    if (d.terminal) return;
    const shim = d.shim ?? readJson<ChildFile>(path.join(dir, FILES.shim));
    const childFile = readJson<ChildFile>(path.join(dir, FILES.child));
    const child = d.child ?? (childFile ? { pid: childFile.pid, startTime: childFile.startTime } : undefined);
    const ef = readJson<ExitFile>(path.join(dir, FILES.exit));
    if (shim && isAlive(shim) && !ef) {
      // Alive and ours: adopt without touching the process.
      d.shim = { pid: shim.pid, startTime: shim.startTime };
      if (child) d.child = child;
      d.runStartedAtMs ??= Date.now();
      inst.ready = !d.quarantine && (!d.spec.readiness || d.lastReady === true);
      // Persisted, so an adopted process that hangs is still liveness-killed.
      inst.everReady = inst.ready || d.readyOnce === true;
      if (!d.quarantine) this.startProbes(inst);
      await this.persist(inst);
      this.emit(inst);
      return;
    }
    if (ef && (d.shim || shim)) {
      d.shim ??= shim;
      this.processExitFile(inst, ef);
      return;
    }
    if (d.shim || shim || child) {
      // The shim died while nobody watched: its child would be an orphan nobody logs or reaps.
      if (child && isAlive(child)) signalGroup(child, 'SIGKILL');
      if (d.cgroup && this.cgroups) this.cgroups.killAll(d.cgroup);
      d.shim ??= shim;
      this.onExit(inst, {
        reason: 'signaled',
        code: null,
        signal: 'SIGKILL',
        at: new Date().toISOString(),
        message: 'shim died while the control plane was down; instance killed and replaced',
      });
      return;
    }
    // Quarantined and exited: stays so until unquarantined or removed.
    if (d.quarantine) {
      this.emit(inst);
      return;
    }
    // Waiting in backoff (or never launched): resume the schedule.
    d.nextRestartAtMs ??= Date.now();
    this.scheduleRestart(inst);
    this.emit(inst);
  }

  // ------------------------------------------------------------ monitoring

  private poll(): void {
    for (const inst of this.insts.values()) {
      if (inst.launching) continue;
      const d = inst.data;
      this.readShimStatus(inst);
      if (!d.shim || inst.stopping) continue;
      const dir = this.dirOf(d.spec.id);
      const ef = readJson<ExitFile>(path.join(dir, FILES.exit));
      if (ef) {
        this.processExitFile(inst, ef);
        continue;
      }
      if (!isAlive(d.shim)) {
        const again = readJson<ExitFile>(path.join(dir, FILES.exit));
        if (again) {
          this.processExitFile(inst, again);
          continue;
        }
        const child = d.child ?? readJson<ChildFile>(path.join(dir, FILES.child));
        if (child && isAlive(child)) signalGroup(child, 'SIGKILL');
        this.onExit(inst, {
          reason: 'signaled',
          code: null,
          signal: 'SIGKILL',
          at: new Date().toISOString(),
          message: 'shim exited unexpectedly; instance killed so it does not run unsupervised',
        });
        continue;
      }
      if (!d.child) {
        const c = readJson<ChildFile>(path.join(dir, FILES.child));
        if (c) {
          d.child = { pid: c.pid, startTime: c.startTime };
          void this.persist(inst);
          this.emit(inst);
        }
      }
    }
  }

  private readShimStatus(inst: Inst): void {
    const s = readJson<ShimStatusFile>(path.join(this.dirOf(inst.data.spec.id), FILES.status));
    if (!s) return;
    const before = inst.droppedLogLines;
    inst.droppedLogLines = Math.max(inst.droppedLogLines, s.droppedLogLines);
    inst.logError = s.lastLogError;
    if (inst.droppedLogLines !== before) this.emit(inst);
  }

  private startProbes(inst: Inst): void {
    this.stopProbes(inst);
    const d = inst.data;
    const target: ProbeTarget = {
      ip: d.ip,
      ports: d.ports,
      env: this.envFor(d),
      cwd: d.spec.cwd ?? process.cwd(),
      ...(d.net && this.network ? { netnsPath: this.network.netnsPath(d.net.netns) } : {}),
    };
    if (d.spec.readiness) {
      inst.readiness = new ProbeRunner(d.spec.readiness, target, inst.ready, (passing) => {
        inst.ready = passing;
        if (passing) {
          inst.everReady = true;
          d.readyOnce = true;
        }
        d.lastReady = passing;
        void this.persist(inst);
        this.emit(inst);
      });
      inst.readiness.start();
    }
    if (d.spec.liveness) {
      inst.liveness = new ProbeRunner(d.spec.liveness, target, true, (passing) => {
        // A slow start (a loaded host, a cold compile) is not a dead process: with a readiness
        // probe, liveness only acts once this run has been ready (Kubernetes needs a startupProbe
        // for the same).
        const startingFor = Date.now() - (d.runStartedAtMs ?? 0);
        if (!passing && (inst.everReady || !d.spec.readiness || startingFor > STARTUP_GRACE_MS))
          this.killForLiveness(inst);
      });
      inst.liveness.start();
    }
  }

  private stopProbes(inst: Inst): void {
    inst.readiness?.stop();
    inst.liveness?.stop();
    inst.readiness = undefined;
    inst.liveness = undefined;
  }

  /** Liveness failed: stop the run gracefully; the exit is then reported as 'liveness-failed' and restarted per policy. */
  private killForLiveness(inst: Inst): void {
    const child = inst.data.child;
    if (!child || inst.stopping) return;
    inst.pendingReason = 'liveness-failed';
    inst.ready = false;
    this.emit(inst);
    signalGroup(child, 'SIGTERM');
    signalGroup(child, 'SIGCONT');
    inst.killTimer = setTimeout(() => {
      if (isAlive(child)) signalGroup(child, 'SIGKILL');
      if (inst.data.cgroup && this.cgroups) this.cgroups.killAll(inst.data.cgroup);
    }, inst.data.spec.terminationGracePeriodMs ?? DEFAULT_GRACE_MS);
  }

  // ------------------------------------------------------------ helpers

  private toStatus(inst: Inst): InstanceStatus {
    const d = inst.data;
    const s = d.spec;
    let phase: InstancePhase;
    if (inst.stopping) phase = 'stopping';
    else if (d.quarantine) phase = 'quarantined';
    else if (d.terminal) phase = d.terminal;
    else if (d.nextRestartAtMs !== undefined && !d.shim) phase = 'backoff';
    else if (inst.ready) phase = 'ready';
    else if (inst.everReady) phase = 'running';
    else phase = 'starting';
    const st: InstanceStatus = {
      id: s.id,
      site: s.site,
      project: s.project,
      app: s.app,
      workload: s.workload,
      ordinal: s.ordinal,
      specHash: s.specHash,
      phase,
      ready: phase === 'ready',
      ip: d.ip,
      ports: { ...d.ports },
      restarts: d.restarts,
      isolation: {},
    };
    if (d.child) st.pid = d.child.pid;
    if (d.lastExit) st.lastExit = { ...d.lastExit };
    if (phase === 'backoff' && d.nextRestartAtMs !== undefined)
      st.nextRestartAt = new Date(d.nextRestartAtMs).toISOString();
    if (d.net) st.isolation.netns = d.net.netns;
    if (d.cgroup) st.isolation.cgroup = `${this.opts.cgroupParent}/${this.opts.scope}/${s.id}`;
    if (d.startedAt) st.startedAt = d.startedAt;
    const q = d.quarantine;
    if (q) {
      st.quarantine = { since: q.since, reason: q.reason };
      if (q.cpu !== undefined) st.quarantine.cpu = q.cpu;
      if (q.memoryBytes !== undefined) st.quarantine.memoryBytes = q.memoryBytes;
    }
    const msgs: string[] = [];
    if (q) msgs.push(`quarantined: ${q.reason}`);
    if (q?.capsNote) msgs.push(q.capsNote);
    if (d.message) msgs.push(d.message);
    if (inst.droppedLogLines > 0) {
      msgs.push(`${inst.droppedLogLines} log lines dropped${inst.logError ? ` (${inst.logError})` : ''}`);
    }
    if (msgs.length) st.message = msgs.join('; ');
    return st;
  }

  /** Deliver new log lines to followers (of one instance, or all). */
  private pollFollows(only?: string): void {
    for (const [id, set] of this.follows) {
      if (only !== undefined && id !== only) continue;
      for (const f of set) {
        let lines;
        try {
          lines = f.follower.poll();
        } catch {
          continue; // unreadable right now (disk trouble): try again next tick
        }
        for (const l of lines) {
          if (!set.has(f)) break; // unsubscribed from inside the listener
          try {
            f.listener(l.stream, l.text, l.at);
          } catch {
            // a faulty listener must not stop the others
          }
        }
      }
    }
  }

  private unfollow(id: string, f: Follow): void {
    const set = this.follows.get(id);
    if (!set?.delete(f)) return;
    f.follower.close();
    if (set.size === 0) this.follows.delete(id);
    if (this.follows.size === 0 && this.followTimer) {
      clearInterval(this.followTimer);
      this.followTimer = undefined;
    }
  }

  private dropFollows(id: string): void {
    for (const f of [...(this.follows.get(id) ?? [])]) this.unfollow(id, f);
  }

  private emit(inst: Inst): void {
    if (this.insts.get(inst.data.spec.id) !== inst) return;
    const st = this.toStatus(inst);
    const key = JSON.stringify(st);
    if (key === inst.lastEmitted) return;
    inst.lastEmitted = key;
    this.emitRaw({ type: 'changed', instance: st });
  }

  private emitRaw(ev: DriverEvent): void {
    for (const l of this.listeners) {
      try {
        l(ev);
      } catch {
        // a faulty listener must not break supervision
      }
    }
  }

  private persist(inst: Inst): Promise<void> {
    const d = inst.data;
    const rec = {
      id: d.spec.id,
      site: d.spec.site,
      project: d.spec.project,
      app: d.spec.app,
      workload: d.spec.workload,
      data: structuredClone(d) as unknown as Record<string, unknown>,
    };
    inst.persistChain = inst.persistChain
      .then(() => (this.insts.get(d.spec.id) === inst ? this.opts.records.putInstance(rec) : undefined))
      .catch((err: unknown) => {
        inst.data.message = `could not persist instance record: ${String(err)}`;
      });
    return inst.persistChain;
  }

  private dirOf(id: string): string {
    return path.join(this.opts.stateDir, 'instances', id);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('LocalDriver is closed');
  }

  private async withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.locks.set(id, tail);
    try {
      return await next;
    } finally {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    }
  }
}
