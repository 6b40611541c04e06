/**
 * The node agent: runs bpftrace with flows.bt, reads one interval of
 * in-kernel aggregates per tick, turns them into flows attributed to
 * instances, the gateway or external endpoints, and hands each interval to
 * its listeners (the topology service in this process; a remote agent would
 * post the same `AgentInterval` JSON). When bpftrace cannot run, `status()`
 * says why and nothing else is affected. A crashed bpftrace is restarted
 * with backoff.
 *
 * @example
 *   const agent = NodeAgent.create({ inventory: () => inventoryOf(driver, dataplane) });
 *   agent.onInterval((iv) => topology.ingestFlows(iv));
 *   await agent.start();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, readlink } from 'node:fs/promises';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { EndpointResolver, localAddresses, type EndpointRef, type Inventory } from './attribution.ts';
import { BpftraceOutputReader, u32ToIpv4, type RawInterval } from './bpftrace-output.ts';
import { checkAgentCapability, renderProgram, type AgentCapability } from './capability.ts';
import { ConnectionTracker, emptyFlow, flowsFromInterval, orient, type FlowSample } from './flows.ts';
import { countsBytes, SocketLedger, type PeerPlace, type SocketDelta } from './socket-ledger.ts';
import { scanNamespaces, type NamespaceMap } from './netns-scan.ts';
import { netnsInode, readTcpInfo, type NamespaceSockets } from './tcp-info.ts';

export interface AgentFlow extends FlowSample {
  from: EndpointRef;
  to: EndpointRef;
  /** Connections established on this flow at the end of the interval. */
  established: number;
}

export interface AgentInterval {
  at: string;
  intervalMs: number;
  flows: AgentFlow[];
}

export type AgentState = 'stopped' | 'starting' | 'running' | 'unavailable' | 'failed';

export interface AgentStatus {
  state: AgentState;
  /** Why the agent is unavailable or failed, and how to fix it. */
  reason?: string;
  capability?: AgentCapability;
  bpftracePid?: number;
  probes?: number;
  intervals: number;
  lastIntervalAt?: string;
  restarts: number;
  /** ms from spawning bpftrace to its probes being attached (it compiles the program first). */
  attachMs?: number;
  /** Socket-counter reads (tcp-info.ts): namespaces read last interval, and how long the reads took. */
  socketReads?: {
    namespaces: number;
    lastMs: number;
    /** Reads (one `ss` each) and their summed wall time since start: the reads' cost. */
    total: number;
    totalMs: number;
    failures: number;
    lastError?: string;
  };
}

export interface NodeAgentOptions {
  /** What runs on this node now; read at every interval (cheap: the driver's in-memory list). */
  inventory: () => Inventory;
  /** @default 1000 */
  intervalMs?: number;
  /**
   * Find the namespaces of instances without a pid by their IP (scan of /proc): a node agent
   * on a Kubernetes node, whose pods are not Bulwark's processes. @default false
   */
  discoverNamespaces?: boolean;
  /** bpftrace executable. @default "bpftrace" on PATH */
  bpftrace?: string;
  /** First restart delay after bpftrace died; doubles up to 60 s. @default 2000 */
  restartDelayMs?: number;
  onError?: (err: unknown) => void;
}

const NO_READS = { namespaces: 0, lastMs: 0, total: 0, totalMs: 0, failures: 0 };

/** Where an address is, seen from a socket in the host namespace or not (socket-ledger.ts countsBytes). */
type Placer = (inHostNs: boolean, ip: string) => PeerPlace;

const PROGRAM = fileURLToPath(new URL('./flows.bt', import.meta.url));
/** bpftrace >= 0.16 warns about RLIMIT_MEMLOCK on kernels that account BPF memory by cgroup; harmless. */
const HARMLESS = /couldn't set RLIMIT_MEMLOCK/;

export class NodeAgent {
  readonly #opts: Required<Omit<NodeAgentOptions, 'onError' | 'bpftrace' | 'discoverNamespaces'>> &
    Pick<NodeAgentOptions, 'onError' | 'bpftrace' | 'discoverNamespaces'>;
  readonly #listeners = new Set<(iv: AgentInterval) => void>();
  #status: AgentStatus = { state: 'stopped', intervals: 0, restarts: 0 };
  #child: ChildProcess | undefined;
  #tracker: ConnectionTracker | undefined;
  #ledger = new SocketLedger();
  #hostNetns: number | undefined;
  /** Interval work runs in order (each reads socket counters asynchronously). */
  #queue: Promise<void> = Promise.resolve();
  #queued = 0;
  #scanned: { at: number; map: NamespaceMap } | undefined;
  #stopping = false;
  #restartTimer: NodeJS.Timeout | undefined;
  #restartDelayMs: number;
  #stderr: string[] = [];

  private constructor(opts: NodeAgentOptions) {
    this.#opts = { intervalMs: 1000, restartDelayMs: 2000, ...opts };
    this.#restartDelayMs = this.#opts.restartDelayMs;
  }

  static create(opts: NodeAgentOptions): NodeAgent {
    if (opts.intervalMs !== undefined && (!Number.isInteger(opts.intervalMs) || opts.intervalMs < 100)) {
      throw new RangeError(`intervalMs must be an integer >= 100, got ${String(opts.intervalMs)}`);
    }
    return new NodeAgent(opts);
  }

  status(): AgentStatus {
    return { ...this.#status };
  }

  onInterval(listener: (iv: AgentInterval) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Check the capability and start bpftrace; resolves once started (not once attached). */
  async start(): Promise<AgentStatus> {
    this.#stopping = false;
    const capability = await checkAgentCapability(
      this.#opts.bpftrace ? { bpftrace: this.#opts.bpftrace } : {},
    );
    if (!capability.available) {
      this.#status = { ...this.#status, state: 'unavailable', reason: capability.reason, capability };
      return this.status();
    }
    this.#status = { ...this.#status, capability };
    this.#spawn(capability);
    return this.status();
  }

  /** Resolves when probes are attached (or the agent is not running), bounded by timeoutMs. */
  async ready(timeoutMs = 60_000): Promise<AgentStatus> {
    const deadline = Date.now() + timeoutMs;
    while (this.#status.state === 'starting' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    return this.status();
  }

  #spawn(capability: AgentCapability): void {
    const program = renderProgram(readFileSync(PROGRAM, 'utf8'), this.#opts.intervalMs, capability.missing);
    const spawnedAt = Date.now();
    this.#stderr = [];
    const child = spawn(capability.bpftrace ?? 'bpftrace', ['-f', 'json', '-B', 'line', '-e', program], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BPFTRACE_MAP_KEYS_MAX: '65536' },
    });
    this.#child = child;
    this.#status = {
      ...this.#status,
      state: 'starting',
      reason: undefined,
      bpftracePid: child.pid,
      probes: undefined,
    };
    const reader = new BpftraceOutputReader();
    const rl = readline.createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      const ev = reader.line(line);
      if (!ev) return;
      if (ev.kind === 'attached') {
        this.#status = {
          ...this.#status,
          state: 'running',
          probes: ev.probes,
          attachMs: Date.now() - spawnedAt,
        };
        this.#restartDelayMs = this.#opts.restartDelayMs;
        this.#enqueue(() => this.#seed());
      } else if (ev.kind === 'interval') {
        const raw = ev.interval;
        // A backlog (slow reads) skips this interval's live reads; their bytes show in the next one.
        const readLive = this.#queued < 2;
        this.#enqueue(() => this.#interval(raw, readLive));
      }
    });
    readline.createInterface({ input: child.stderr! }).on('line', (line) => {
      if (HARMLESS.test(line) || line.trim() === '') return;
      this.#stderr.push(line);
      if (this.#stderr.length > 20) this.#stderr.shift();
    });
    child.on('error', (err) => {
      this.#status = { ...this.#status, state: 'failed', reason: `bpftrace could not start: ${err.message}` };
    });
    child.on('exit', (code, signal) => {
      this.#child = undefined;
      if (this.#stopping) {
        this.#status = { ...this.#status, state: 'stopped', bpftracePid: undefined };
        return;
      }
      const why = this.#stderr.slice(-5).join(' | ') || 'no error output';
      this.#status = {
        ...this.#status,
        state: 'failed',
        bpftracePid: undefined,
        reason: `bpftrace exited (${signal ?? `code ${code}`}): ${why}; restarting in ${this.#restartDelayMs} ms`,
      };
      this.#restartTimer = setTimeout(() => {
        this.#status = { ...this.#status, restarts: this.#status.restarts + 1 };
        this.#spawn(capability);
      }, this.#restartDelayMs);
      this.#restartTimer.unref();
      this.#restartDelayMs = Math.min(60_000, this.#restartDelayMs * 2);
    });
  }

  #enqueue(work: () => Promise<void>): void {
    this.#queued++;
    this.#queue = this.#queue
      .then(work)
      .catch((err: unknown) => this.#opts.onError?.(err))
      .finally(() => this.#queued--);
  }

  /**
   * Every instance namespace other than ours: inode -> a pid in it and the
   * instance IPs it holds. Instances with a pid (ours) are found by it; on a
   * node where they are someone else's (a Kubernetes node) by their IP, from
   * a /proc scan refreshed every 10 s (`discoverNamespaces`).
   */
  async #instanceNamespaces(inv: Inventory): Promise<Map<number, { pid: number; ips: Set<string> }>> {
    const out = new Map<number, { pid: number; ips: Set<string> }>();
    const add = async (pid: number, ip: string): Promise<void> => {
      try {
        const ns = netnsInode(await readlink(`/proc/${pid}/ns/net`));
        if (ns === this.#hostNetns) return;
        const e = out.get(ns) ?? { pid, ips: new Set<string>() };
        e.ips.add(ip);
        out.set(ns, e);
      } catch {
        // the process is gone: its namespace with it
      }
    };
    const withoutPid = inv.instances.filter((i) => !i.pid);
    const scan = withoutPid.length > 0 && this.#opts.discoverNamespaces ? await this.#scan() : undefined;
    for (const i of inv.instances) {
      const pid = i.pid ?? scan?.byIp.get(i.ip);
      if (pid) await add(pid, i.ip);
    }
    return out;
  }

  async #scan(): Promise<NamespaceMap> {
    if (!this.#scanned || Date.now() - this.#scanned.at > 10_000) {
      this.#scanned = { at: Date.now(), map: await scanNamespaces(this.#hostNetns) };
    }
    return this.#scanned.map;
  }

  async #read(pid?: number): Promise<NamespaceSockets | undefined> {
    const t0 = performance.now();
    let table: NamespaceSockets | undefined;
    let error: string | undefined;
    try {
      table = await readTcpInfo(pid);
    } catch (err) {
      // A namespace whose process just exited is not an error worth more than a count.
      error = (err as Error).message;
    }
    const r = this.#status.socketReads ?? NO_READS;
    this.#status = {
      ...this.#status,
      socketReads: table
        ? { ...r, total: r.total + 1, totalMs: r.totalMs + (performance.now() - t0) }
        : { ...r, failures: r.failures + 1, lastError: error },
    };
    return table;
  }

  /**
   * Connections and byte counters older than the probes: every namespace's
   * sockets, read once. Established ones seed the connection counts; every
   * socket's counters become the ledger's baseline.
   */
  async #seed(): Promise<void> {
    const inv = this.#opts.inventory();
    const resolver = new EndpointResolver(inv);
    const tracker = new ConnectionTracker((ip) => resolver.isLocal(ip));
    this.#ledger = new SocketLedger();
    this.#hostNetns = netnsInode(await readlink('/proc/self/ns/net'));
    const pids = [undefined, ...[...(await this.#instanceNamespaces(inv)).values()].map((e) => e.pid)];
    for (const pid of pids) {
      const table = await this.#read(pid);
      if (!table) continue;
      this.#ledger.read(table.netns, table.sockets, { baseline: true });
      const listening = new Set(
        table.sockets.filter((s) => s.state === 'LISTEN').map((s) => `${s.local}:${s.localPort}`),
      );
      const isServer = (ip: string, port: number): boolean =>
        listening.has(`${ip}:${port}`) || listening.has(`0.0.0.0:${port}`) || resolver.isServer(ip, port);
      for (const s of table.sockets) {
        if (s.state !== 'ESTAB') continue;
        const o = orient(s.local, s.localPort, s.remote, s.remotePort, isServer);
        tracker.seed(o.client, o.server, o.port, o.localIsClient);
      }
    }
    this.#tracker = tracker;
  }

  /**
   * Final totals of the sockets that closed this interval (flows.bt
   * @csent/@crecv/@crtt, keyed netns,local,lport,remote,rport,side).
   */
  #closedSockets(raw: RawInterval): SocketDelta[] {
    const m = raw.maps;
    const keys = new Set([...Object.keys(m.csent ?? {}), ...Object.keys(m.crecv ?? {})]);
    const out: SocketDelta[] = [];
    for (const k of keys) {
      const [ns = 0, l = 0, lp = 0, r = 0, rp = 0, side = 0] = k.split(',').map(Number);
      const d = this.#ledger.closed(
        {
          netns: ns,
          local: u32ToIpv4(l),
          localPort: lp,
          remote: u32ToIpv4(r),
          remotePort: rp,
          sent: m.csent?.[k] ?? 0,
          received: m.crecv?.[k] ?? 0,
          rttUs: m.crtt?.[k],
        },
        side === 1 ? true : side === 2 ? false : undefined,
      );
      if (d) out.push(d);
    }
    return out;
  }

  /**
   * Live sockets' counters: the host namespace every interval (the gateway's
   * sockets, so every flow through it); an instance's own namespace only
   * while it holds a connection whose other end is not in the host namespace
   * (to an external endpoint or straight to another instance).
   */
  async #liveSockets(inv: Inventory, place: Placer): Promise<SocketDelta[]> {
    const t0 = performance.now();
    const wanted = new Set<string>();
    for (const f of this.#tracker?.flows() ?? []) {
      const toServer = place(false, f.server);
      const toClient = place(false, f.client);
      if (toServer === 'remote' || toServer === 'instance') wanted.add(f.client);
      if (toClient === 'remote') wanted.add(f.server);
    }
    const pids: (number | undefined)[] = [undefined];
    if (wanted.size > 0) {
      for (const { pid, ips } of (await this.#instanceNamespaces(inv)).values()) {
        if ([...ips].some((ip) => wanted.has(ip))) pids.push(pid);
      }
    }
    const out: SocketDelta[] = [];
    let namespaces = 0;
    for (const pid of pids) {
      const table = await this.#read(pid);
      if (!table) continue;
      namespaces++;
      out.push(...this.#ledger.read(table.netns, table.sockets, { baseline: false }));
    }
    const reads = this.#status.socketReads ?? NO_READS;
    this.#status = {
      ...this.#status,
      socketReads: { ...reads, namespaces, lastMs: Math.round(performance.now() - t0) },
    };
    return out;
  }

  async #interval(raw: RawInterval, readLive: boolean): Promise<void> {
    // The host's addresses once per interval, for the resolver and the byte-counting rule alike.
    const base = this.#opts.inventory();
    const inv = { ...base, hostIps: base.hostIps ?? localAddresses() };
    const resolver = new EndpointResolver(inv);
    const hostIps = new Set(inv.hostIps);
    const instanceIps = new Set(inv.instances.map((i) => i.ip));
    const place: Placer = (inHostNs, ip) => {
      if (ip.startsWith('127.')) return 'same';
      if (hostIps.has(ip)) return inHostNs ? 'same' : 'host';
      if (instanceIps.has(ip)) return 'instance';
      return 'remote';
    };
    const sockets = this.#closedSockets(raw);
    if (readLive) sockets.push(...(await this.#liveSockets(inv, place)));
    const counts = (d: SocketDelta, localIsClient: boolean): boolean => {
      const inHostNs = d.netns === this.#hostNetns;
      return countsBytes(inHostNs, place(inHostNs, d.remote), localIsClient);
    };
    const samples = flowsFromInterval(raw, (ip, port) => resolver.isServer(ip, port), sockets, counts);
    const tracker = this.#tracker;
    const byKey = new Map<string, FlowSample>();
    for (const f of samples) {
      tracker?.apply(f);
      byKey.set(`${f.client}|${f.server}|${f.port}`, f);
    }
    // Quiet flows still hold connections: report them with zero activity.
    for (const e of tracker?.flows() ?? []) {
      const k = `${e.client}|${e.server}|${e.port}`;
      if (!byKey.has(k)) byKey.set(k, emptyFlow(e.client, e.server, e.port));
    }
    const flows: AgentFlow[] = [];
    for (const f of byKey.values()) {
      // Port 0: sockets torn down before they were bound; nothing to attribute.
      if (f.port === 0) continue;
      const to = resolver.server(f.server, f.port);
      const from = resolver.client(f.client, f.clientPids, to);
      // Only flows with Bulwark's instances or gateway at one end belong to the topology;
      // the host's other traffic (ssh, package downloads, other programs) does not.
      if (from.kind === 'external' && to.kind === 'external') continue;
      flows.push({ ...f, from, to, established: tracker?.established(f.client, f.server, f.port) ?? 0 });
    }
    const at = new Date().toISOString();
    this.#status = { ...this.#status, intervals: this.#status.intervals + 1, lastIntervalAt: at };
    const iv: AgentInterval = { at, intervalMs: this.#opts.intervalMs, flows };
    for (const l of this.#listeners) {
      try {
        l(iv);
      } catch (err) {
        this.#opts.onError?.(err);
      }
    }
  }

  /** CPU seconds and resident memory of the bpftrace process (the agent's kernel-side cost shows as its sys time). */
  async usage(): Promise<{ cpuSeconds: number; rssBytes: number } | undefined> {
    const pid = this.#child?.pid;
    if (!pid) return undefined;
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(f[11]) + Number(f[12]);
      const rssPages = Number(f[21]);
      return { cpuSeconds: ticks / 100, rssBytes: rssPages * 4096 };
    } catch {
      return undefined;
    }
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    const child = this.#child;
    if (!child) {
      if (this.#status.state !== 'unavailable') this.#status = { ...this.#status, state: 'stopped' };
      return;
    }
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}
