/**
 * The HAProxy implementation of the DataPlane seam.
 *
 * Structure (the set of backends, their aliases and check settings) lives in
 * the rendered configuration and changes by a seamless reload. Membership,
 * weights and states change through the runtime API only: the diff is taken
 * against what HAProxy itself reports (`show servers state`), so a command
 * lost in a crash or a reload is corrected by the next sync.
 */
import { execFile } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import path from 'node:path';
import type {
  DataPlane,
  RequestLog,
  ServerRuntimeStats,
  ServerSpec,
  ServerState,
  SiteRouting,
  SyncResult,
  BackendSpec,
} from '../dataplane.ts';
import {
  assertName,
  newLogKey,
  renderConfig,
  serverOptions,
  type BindSpec,
  type RenderBackend,
  type RenderInput,
  type RenderOptions,
} from './config.ts';
import { ensureHaproxy, HaproxyProcess, type HaproxyProcessStatus } from './process.ts';
import {
  RuntimeApiError,
  adminStateToServerState,
  type RuntimeApi,
  type ServerStateRow,
} from './runtime-api.ts';
import { SyslogReceiver, type SyslogReceiverStatus, type SyslogTransport } from './syslog.ts';
import { hasRecordTag, parseRequestLog, recordPrefix } from './log-parser.ts';
import { ensurePrivateDir } from './private-dir.ts';
import { RequestStats } from './request-stats.ts';
import { sleep } from '../../util/time.ts';

const execFileP = promisify(execFile);

export interface HaproxyDataPlaneOptions {
  /**
   * Directory owned by this data plane (config generations, sockets, pid
   * file); made private (0700, see private-dir.ts), and refused when another
   * user owns it or could replace it.
   */
  workDir: string;
  /** Gateway listeners; the first one is `gatewayUrl`. */
  binds: BindSpec[];
  /** @default '/usr/sbin/haproxy' (searched in the usual places) */
  binary?: string;
  /** Install haproxy with apt when missing (root only). @default false */
  autoInstall?: boolean;
  /** Per-request log lines through the syslog receiver. @default true */
  requestLogs?: boolean;
  /**
   * How HAProxy ships log lines to the receiver (see syslog.ts): `unix` and
   * `tcp` (loopback) through HAProxy's ring, `udp` one datagram per request.
   * Unix by default: the socket (`<workDir>/log.sock`, mode 0600 in the
   * private work dir) can be reached only by this user, where a loopback
   * port can be reached by any local process. On every transport a record
   * without this start's log key is refused (`refusedLogs`), so a process
   * that reaches the port cannot forge the records isolation acts on; it can
   * still send a flood of lines the receiver has to read. HAProxy's forwarder also
   * writes ~4x fewer times per request to it (the socket's send buffer
   * fills while the receiver batches, so each write carries more lines).
   * @default 'unix'
   */
  logTransport?: SyslogTransport;
  /** How long the stream (unix/TCP) log receiver lets lines collect between small reads (see syslog.ts). @default 25 */
  logReadBatchMs?: number;
  /** Longest run of log parsing before yielding the CPU; 0 = a whole read at once (SyslogReceiver sliceMs). */
  logSliceMs?: number;
  /** Extra rendering options (timeouts, retries, trace headers). */
  render?: RenderOptions;
  /** How long a removed server may take to finish its connections before they are cut. @default 10000 */
  removeDrainMs?: number;
  /** Sliding window of `requestStats`. @default 60000 */
  statsWindowMs?: number;
}

export interface HaproxyDataPlaneStatus {
  process: HaproxyProcessStatus;
  syslog?: SyslogReceiverStatus;
  backends: number;
  servers: number;
  syncs: number;
  reloads: number;
  runtimeCommands: number;
  requestLogs: number;
  /**
   * Lines that carried the request log tag but not this start's key: records
   * from someone other than this HAProxy (forged, or a stale HAProxy of a
   * previous run). Never parsed, never seen by isolation.
   */
  refusedLogs: number;
}

const MAX_CONN_DEFAULT = 4000;

/** HAProxy needs about two descriptors per connection; keep maxconn inside the hard open-file limit. */
export function maxConnForFileLimit(defaultMaxConn = MAX_CONN_DEFAULT): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const hard = Number(line?.trim().split(/\s+/)[4]);
    if (Number.isFinite(hard) && hard > 0)
      return Math.max(100, Math.min(defaultMaxConn, Math.floor((hard - 200) / 2)));
  } catch {
    // not Linux: keep the default
  }
  return defaultMaxConn;
}

function structureOf(b: BackendSpec): RenderBackend {
  return {
    name: b.name,
    aliases: [...b.aliases].sort(),
    checkPath: b.checkPath ?? b.servers.find((s) => s.checkPath)?.checkPath,
    checkIntervalMs: b.checkIntervalMs ?? 1000,
    ...(b.serverTimeoutMs !== undefined ? { serverTimeoutMs: b.serverTimeoutMs } : {}),
    servers: [],
  };
}

function structureKey(backends: Iterable<BackendSpec>): string {
  return JSON.stringify([...backends].map(structureOf).sort((a, b) => a.name.localeCompare(b.name)));
}

function validateRouting(routing: SiteRouting): void {
  const names = new Set<string>();
  for (const [i, b] of routing.backends.entries()) {
    assertName(`backends[${i}].name`, b.name);
    if (names.has(b.name))
      throw new Error(`backends[${i}].name '${b.name}' appears twice: backend names must be unique`);
    names.add(b.name);
    const servers = new Set<string>();
    for (const [j, s] of b.servers.entries()) {
      const field = `backends[${i}].servers[${j}]`;
      assertName(`${field}.name`, s.name);
      if (servers.has(s.name))
        throw new Error(`${field}.name '${s.name}' appears twice in backend ${b.name}`);
      servers.add(s.name);
      if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535)
        throw new Error(`${field}.port must be 1..65535, got ${s.port}`);
      if (!Number.isInteger(s.weight) || s.weight < 0 || s.weight > 256)
        throw new Error(`${field}.weight must be an integer 0..256, got ${s.weight}`);
      if (!['ready', 'drain', 'maint'].includes(s.state))
        throw new Error(`${field}.state must be ready, drain or maint, got ${String(s.state)}`);
    }
  }
}

export class HaproxyDataPlane implements DataPlane {
  readonly gatewayUrl: string;
  readonly requestStats: RequestStats;
  private readonly opts: HaproxyDataPlaneOptions;
  private proc!: HaproxyProcess;
  private syslog: SyslogReceiver | undefined;
  private readonly maxConn: number;
  /** Desired state, the source for rendering (so a reload or crash restart keeps membership). */
  private desired = new Map<string, BackendSpec>();
  private currentStructure = structureKey([]);
  private readonly listeners = new Set<(log: RequestLog) => void>();
  private lock: Promise<unknown> = Promise.resolve();
  private syncs = 0;
  private runtimeCommands = 0;
  private requestLogCount = 0;
  private refusedLogCount = 0;
  /** Per start: HAProxy writes it into every request line (config.ts logFormat). */
  private readonly logKey = newLogKey();
  private readonly logPrefix = recordPrefix(this.logKey);

  constructor(opts: HaproxyDataPlaneOptions) {
    this.opts = opts;
    const first = opts.binds[0];
    if (!first) throw new Error('binds: at least one {address, port} is required');
    const host = first.address.includes(':') ? `[${first.address}]` : first.address;
    this.gatewayUrl = `http://${host}:${first.port}`;
    this.requestStats = new RequestStats({ windowMs: opts.statsWindowMs });
    this.maxConn = opts.render?.maxConn ?? maxConnForFileLimit();
  }

  static async create(opts: HaproxyDataPlaneOptions): Promise<HaproxyDataPlane> {
    const { binary } = await ensureHaproxy({ binary: opts.binary, autoInstall: opts.autoInstall });
    const dp = new HaproxyDataPlane(opts);
    // Before the log socket is created in it, and before routing.json is trusted.
    ensurePrivateDir(opts.workDir);
    dp.loadLastRouting();
    if (opts.requestLogs ?? true) {
      const transport = opts.logTransport ?? 'unix';
      const socketPath = transport === 'unix' ? path.join(path.resolve(opts.workDir), 'log.sock') : undefined;
      dp.syslog = await SyslogReceiver.create({
        transport,
        ...(socketPath !== undefined ? { path: socketPath } : {}),
        readBatchMs: opts.logReadBatchMs,
        sliceMs: opts.logSliceMs,
      });
      dp.syslog.onMessage((m) => dp.onLogMessage(m));
    }
    try {
      dp.proc = await HaproxyProcess.create({
        workDir: opts.workDir,
        binary,
        render: (mapDir) => dp.render(mapDir),
        ...(opts.render?.cpus ? { cpus: opts.render.cpus } : {}),
        onRestarted: () => void dp.withLock(() => dp.reconcile()).catch(() => undefined),
      });
    } catch (err) {
      await dp.syslog?.close();
      throw err;
    }
    return dp;
  }

  private get routingFile(): string {
    return path.join(path.resolve(this.opts.workDir), 'routing.json');
  }

  /**
   * Start from the routing last synced by a previous control plane, so the
   * HAProxy started after a control-plane crash serves every route from its
   * first request instead of answering 404 until the first reconcile pass.
   */
  private loadLastRouting(): void {
    let routing: SiteRouting;
    try {
      routing = JSON.parse(readFileSync(this.routingFile, 'utf8')) as SiteRouting;
      validateRouting(routing);
    } catch {
      return; // first start, or an unreadable file: start empty, the first sync fills it
    }
    this.desired = new Map(routing.backends.map((b) => [b.name, b]));
    this.currentStructure = structureKey(this.desired.values());
  }

  private saveRouting(routing: SiteRouting): void {
    const tmp = `${this.routingFile}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify(routing), { mode: 0o600 });
      renameSync(tmp, this.routingFile);
    } catch {
      // Only an optimisation for the next start; the sync itself succeeded.
    }
  }

  get api(): RuntimeApi {
    return this.proc.api;
  }

  status(): HaproxyDataPlaneStatus {
    let servers = 0;
    for (const b of this.desired.values()) servers += b.servers.length;
    const p = this.proc.status();
    return {
      process: p,
      syslog: this.syslog?.status(),
      backends: this.desired.size,
      servers,
      syncs: this.syncs,
      reloads: p.reloads,
      runtimeCommands: this.runtimeCommands,
      requestLogs: this.requestLogCount,
      refusedLogs: this.refusedLogCount,
    };
  }

  private render(mapDir: string): ReturnType<typeof renderConfig> {
    return renderConfig({
      binds: this.opts.binds,
      backends: [...this.desired.values()].map((b) => ({ ...structureOf(b), servers: b.servers })),
      statsSocketPath: path.join(path.resolve(this.opts.workDir), 'stats.sock'),
      syslog: this.syslogTarget(),
      logKey: this.logKey,
      mapDir,
      options: { ...this.opts.render, maxConn: this.maxConn, requestLogs: this.opts.requestLogs ?? true },
    });
  }

  /** Where the rendered config sends request logs. */
  private syslogTarget(): RenderInput['syslog'] {
    const r = this.syslog;
    if (!r) return undefined;
    if (r.path !== undefined) return { transport: 'unix', path: r.path };
    if (r.transport === 'unix') throw new Error('unix log receiver without a path');
    return { host: r.host, port: r.port, transport: r.transport };
  }

  private withLock<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.lock.then(fn, fn);
    this.lock = p.catch(() => undefined);
    return p;
  }

  async sync(routing: SiteRouting): Promise<SyncResult> {
    validateRouting(routing);
    return await this.withLock(async () => {
      this.syncs++;
      const before = this.runtimeCommands;
      const next = new Map(
        routing.backends.map((b) => [b.name, { ...b, servers: b.servers.map((s) => ({ ...s })) }]),
      );
      const key = structureKey(next.values());
      let reloaded = false;
      if (key !== this.currentStructure) {
        // Servers being removed must leave in an orderly way before the reload forgets them.
        await this.removeServersMissingFrom(next);
        const previous = this.desired;
        this.desired = next;
        try {
          await this.proc.reload();
        } catch (err) {
          // The running worker still has the old structure: keep rendering that.
          this.desired = previous;
          throw err;
        }
        this.currentStructure = key;
        reloaded = true;
      } else {
        this.desired = next;
      }
      await this.reconcile();
      this.saveRouting(routing);
      return { reloaded, runtimeCommands: this.runtimeCommands - before };
    });
  }

  private async removeServersMissingFrom(next: Map<string, BackendSpec>): Promise<void> {
    for (const [name, be] of this.desired) {
      const keep = new Set(next.get(name)?.servers.map((s) => s.name) ?? []);
      for (const s of be.servers) {
        if (!keep.has(s.name))
          await this.cmd(() => this.api.setServerState(name, s.name, 'maint')).catch(() => undefined);
      }
    }
  }

  private async cmd<T>(fn: () => Promise<T>): Promise<T> {
    this.runtimeCommands++;
    return await fn();
  }

  /** Bring HAProxy's runtime server set to `desired`, using only the runtime API. */
  private async reconcile(): Promise<void> {
    const rows = await this.api.showServersState();
    const actual = new Map<string, Map<string, ServerStateRow>>();
    for (const r of rows) {
      if (!actual.has(r.backend)) actual.set(r.backend, new Map());
      actual.get(r.backend)?.set(r.server, r);
    }
    for (const [name, be] of this.desired) {
      const have = actual.get(name) ?? new Map<string, ServerStateRow>();
      for (const s of be.servers) {
        const row = have.get(s.name);
        if (!row) await this.addServer(be, s);
        else await this.updateServer(name, s, row);
      }
      const want = new Set(be.servers.map((s) => s.name));
      for (const row of have.values()) {
        if (!want.has(row.server)) await this.removeServer(name, row.server);
      }
    }
  }

  private async addServer(be: BackendSpec, s: ServerSpec): Promise<void> {
    await this.cmd(() => this.api.addServer(be.name, s.name, s.address, s.port, serverOptions(be, s.weight)));
    // Dynamic servers start in maintenance with checks off.
    await this.cmd(() => this.api.enableHealth(be.name, s.name));
    if (s.state !== 'maint') await this.cmd(() => this.api.setServerState(be.name, s.name, s.state));
  }

  private async updateServer(backend: string, s: ServerSpec, row: ServerStateRow): Promise<void> {
    if (row.address !== s.address || row.port !== s.port) {
      await this.cmd(() => this.api.setServerAddr(backend, s.name, s.address, s.port));
    }
    if (row.userWeight !== s.weight)
      await this.cmd(() => this.api.setServerWeight(backend, s.name, s.weight));
    if (adminStateToServerState(row.adminState) !== s.state) {
      await this.cmd(() => this.api.setServerState(backend, s.name, s.state));
    }
  }

  /** Maintenance first (new traffic stops at once), then delete once its connections are gone. */
  private async removeServer(backend: string, server: string): Promise<void> {
    await this.cmd(() => this.api.setServerState(backend, server, 'maint'));
    const deadline = Date.now() + (this.opts.removeDrainMs ?? 10_000);
    for (;;) {
      try {
        await this.cmd(() => this.api.delServer(backend, server));
        return;
      } catch (err) {
        if (!(err instanceof RuntimeApiError) || !/connection|still/i.test(err.answer)) throw err;
        if (Date.now() > deadline) {
          await this.cmd(() => this.api.shutdownSessions(backend, server));
        }
        if (Date.now() > deadline + 2000) throw err;
        await sleep(20);
      }
    }
  }

  private findServer(backend: string, server: string): ServerSpec {
    const be = this.desired.get(backend);
    if (!be) throw new Error(`backend '${backend}' is not part of the synced routing: call sync() first`);
    const s = be.servers.find((x) => x.name === server);
    if (!s) throw new Error(`server '${server}' is not in backend '${backend}': call sync() with it first`);
    return s;
  }

  async setServerState(backend: string, server: string, state: ServerState): Promise<void> {
    if (!['ready', 'drain', 'maint'].includes(state))
      throw new Error(`state must be ready, drain or maint, got ${String(state)}`);
    // Not behind the sync lock on purpose: isolation must not wait for a reload.
    const s = this.findServer(backend, server);
    s.state = state;
    await this.cmd(() => this.api.setServerState(backend, server, state));
  }

  async setServerWeight(backend: string, server: string, weight: number): Promise<void> {
    if (!Number.isInteger(weight) || weight < 0 || weight > 256)
      throw new Error(`weight must be an integer 0..256, got ${weight}`);
    const s = this.findServer(backend, server);
    s.weight = weight;
    await this.cmd(() => this.api.setServerWeight(backend, server, weight));
  }

  async abortServerConnections(backend: string, server: string): Promise<number> {
    const s = this.findServer(backend, server);
    // HAProxy's runtime API can only kill the streams (`shutdown sessions server`), which the
    // client sees as a failed request. Destroying the worker's TCP sockets to the server (the
    // kernel's sock_diag destroy, `ss -K`) instead makes HAProxy see a connection that ended
    // without an answer, i.e. `retry-on empty-response`: the request goes to another server.
    // HAProxy runs in this process's network namespace, so the filter sees its sockets (and any
    // other local socket to that address, e.g. a probe of the same server, which is equally
    // pointless once the server is held out).
    // Connects still waiting for an answer (SYN-SENT) too: an instance that drops packets holds
    // them until `timeout connect`, and every request behind them ran into the client's timeout.
    const filter = ['dst', s.address, 'dport', '=', `:${s.port}`];
    const states = ['state', 'established', 'state', 'syn-sent'];
    const { stdout } = await execFileP('ss', ['-K', '-t', '-n', '-H', ...states, ...filter], {
      timeout: 5000,
    }).catch((err: Error & { stderr?: string }) => {
      throw new Error(
        `could not close the connections to ${backend}/${server} (${s.address}:${s.port}): ${err.stderr?.trim() || err.message}; ss -K needs root (CAP_NET_ADMIN) and a kernel with CONFIG_INET_DIAG_DESTROY`,
      );
    });
    return stdout.split('\n').filter((l) => l.trim() !== '').length;
  }

  async stats(): Promise<ServerRuntimeStats[]> {
    // Server rows only (`-1 4 -1`): this runs every ~100 ms for isolation, keep the answer small.
    const rows = await this.api.showStat({ serversOnly: true });
    return rows
      .filter(
        (r) => this.desired.has(r['pxname'] ?? '') && r['svname'] !== 'BACKEND' && r['svname'] !== 'FRONTEND',
      )
      .map((r) => ({
        backend: r['pxname'] ?? '',
        server: r['svname'] ?? '',
        state: r['status'] ?? '',
        checkStatus: r['check_status'] ?? '',
        currentSessions: Number(r['scur'] ?? 0),
        totalSessions: Number(r['stot'] ?? 0),
        responses5xx: Number(r['hrsp_5xx'] ?? 0),
        retries: Number(r['wretr'] ?? 0),
        redispatches: Number(r['wredis'] ?? 0),
      }));
  }

  onRequest(listener: (log: RequestLog) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private onLogMessage(message: string): void {
    const log = parseRequestLog(message, this.logPrefix);
    if (!log) {
      // HAProxy's own lines (server state changes) carry no tag and are ignored as before.
      if (hasRecordTag(message) && !message.startsWith(this.logPrefix)) this.refusedLogCount++;
      return;
    }
    this.requestLogCount++;
    this.requestStats.add(log);
    for (const l of this.listeners) {
      try {
        l(log);
      } catch {
        // A failing listener must not stop the others or the receiver.
      }
    }
  }

  async close(): Promise<void> {
    await this.withLock(async () => {
      await this.proc.stop();
      await this.syslog?.close();
    });
  }
}
