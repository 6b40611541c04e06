/**
 * The topology of one site, live: every interval (1 s) it closes a snapshot
 * of L7 edges (from the gateway's request log), L4 flows (from the node
 * agent, when it runs) and instance resources (from the runtime), keeps it
 * in the in-memory history, and every 2 s tells change listeners (the SSE
 * stream) when the default 60 s view changed.
 *
 * @example
 *   const topo = TopologyService.create({ site, driver, dataplane, apps, agent, gateway });
 *   topo.start();
 *   const doc = topo.topology({ windowSeconds: 60 });
 */
import type { DataPlane } from '../../dataplane/dataplane.ts';
import type { InstanceStatus, RuntimeDriver } from '../../runtime/driver.ts';
import type { AgentInterval } from '../agent/node-agent.ts';
import { buildTopology, type TopologyInstance } from './builder.ts';
import { mergeWindow, SnapshotHistory, type HistoryOptions } from './history.ts';
import { L7Collector, type AppEdgeObserver, type CallerLookup } from './l7-collector.ts';
import {
  edgeKey,
  emptySnapshot,
  type L4Stats,
  type ResourceStats,
  type ServerCounters,
  type Snapshot,
} from './snapshot.ts';
import type { HistoryPoint, Topology } from './types.ts';

export interface TopologyServiceOptions {
  site: string;
  driver: Pick<RuntimeDriver, 'list' | 'stats'>;
  dataplane: Pick<DataPlane, 'onRequest' | 'stats'>;
  /** Apps of the site, refreshed every few seconds (apps without instances still show). */
  apps: () => Promise<{ project: string; app: string }[]>;
  /** The node agent's intervals, when it runs: subscribe and return the unsubscribe function. */
  agentIntervals?: (listener: (iv: AgentInterval) => void) => () => void;
  gateway: { nodeId: string; label: string };
  /** @default 1000 */
  intervalMs?: number;
  /** Change notifications at most this often. @default 2000 */
  changeIntervalMs?: number;
  history?: HistoryOptions;
  /** Per request, its app-level edge (metrics). */
  onAppEdge?: AppEdgeObserver;
  onError?: (err: unknown) => void;
}

export interface TopologyQuery {
  /** 1..3600. @default 60 */
  windowSeconds?: number;
  project?: string;
}

export const MAX_WINDOW_SECONDS = 3600;

/** CFS period the local runtime sets on instance cgroups (runtime/local/cgroups.ts). */
const CFS_PERIOD_MS = 100;

interface CpuMark {
  atMs: number;
  cpuNs?: number;
  periods?: number;
  throttled?: number;
  oomKills?: number;
}

export class TopologyService {
  readonly #o: TopologyServiceOptions & { intervalMs: number; changeIntervalMs: number };
  readonly #history: SnapshotHistory;
  readonly #l7: L7Collector;
  readonly #listeners = new Set<(t: Topology) => void>();
  #l4 = new Map<string, L4Stats>();
  #cpu = new Map<string, CpuMark>();
  #serverMarks = new Map<string, ServerCounters>();
  #serverDeltas = new Map<string, ServerCounters>();
  #statsBusy = false;
  #apps: { project: string; app: string }[] = [];
  #callers: CallerLookup = { byIp: () => undefined };
  #timers: NodeJS.Timeout[] = [];
  #unsubs: (() => void)[] = [];
  #lastTickMs = Date.now();
  #lastEmitted = '';
  #agentIntervals = 0;
  #lastAgentAt: string | undefined;

  private constructor(o: TopologyServiceOptions) {
    this.#o = { intervalMs: 1000, changeIntervalMs: 2000, ...o };
    this.#history = new SnapshotHistory(o.history);
    this.#l7 = new L7Collector(o.onAppEdge);
  }

  static create(o: TopologyServiceOptions): TopologyService {
    return new TopologyService(o);
  }

  start(): void {
    this.#lastTickMs = Date.now();
    this.#refreshCallers();
    this.#unsubs.push(this.#o.dataplane.onRequest((log) => this.#l7.record(log, this.#callers)));
    if (this.#o.agentIntervals) this.#unsubs.push(this.#o.agentIntervals((iv) => this.ingestFlows(iv)));
    const tick = setInterval(() => this.tick(), this.#o.intervalMs);
    const change = setInterval(() => this.#emitIfChanged(), this.#o.changeIntervalMs);
    const apps = setInterval(() => void this.#refreshApps(), 5000);
    for (const t of [tick, change, apps]) t.unref();
    this.#timers.push(tick, change, apps);
    void this.#refreshApps();
  }

  stop(): void {
    for (const t of this.#timers) clearInterval(t);
    for (const u of this.#unsubs) u();
    this.#timers = [];
    this.#unsubs = [];
  }

  async #refreshApps(): Promise<void> {
    try {
      this.#apps = await this.#o.apps();
    } catch (err) {
      this.#o.onError?.(err);
    }
  }

  #refreshCallers(): void {
    const byIp = new Map<string, InstanceStatus>();
    const shared = new Set<string>();
    for (const i of this.#o.driver.list()) {
      if (byIp.has(i.ip)) shared.add(i.ip);
      byIp.set(i.ip, i);
    }
    for (const ip of shared) byIp.delete(ip);
    this.#callers = { byIp: (ip) => byIp.get(ip) };
  }

  /** One agent interval: sum counters into the open snapshot; connections are a gauge (latest wins). */
  ingestFlows(iv: AgentInterval): void {
    this.#agentIntervals++;
    this.#lastAgentAt = iv.at;
    const seen = new Set<string>();
    for (const f of iv.flows) {
      const from = f.from.nodeId;
      const to = f.to.nodeId;
      const k = edgeKey(from, to);
      let e = this.#l4.get(k);
      if (!e) {
        e = {
          from,
          to,
          opened: 0,
          failed: 0,
          established: 0,
          bytesToServer: 0,
          bytesToClient: 0,
          retransmits: 0,
          resets: 0,
          rttUsSum: 0,
          rttN: 0,
        };
        this.#l4.set(k, e);
      }
      if (!seen.has(k)) e.established = 0;
      seen.add(k);
      e.opened += f.opened;
      e.failed += f.failed;
      e.established += f.established;
      e.bytesToServer += f.bytesToServer;
      e.bytesToClient += f.bytesToClient;
      e.retransmits += f.retransmits;
      e.resets += f.resets;
      if (f.rttUs !== undefined) {
        e.rttUsSum += f.rttUs;
        e.rttN += 1;
      }
    }
    for (const [k, e] of this.#l4) if (!seen.has(k)) e.established = 0;
  }

  #resources(nowMs: number, instances: InstanceStatus[]): Map<string, ResourceStats> {
    const out = new Map<string, ResourceStats>();
    const next = new Map<string, CpuMark>();
    for (const i of instances) {
      const s = this.#o.driver.stats(i.id);
      if (!s) continue;
      const prev = this.#cpu.get(i.id);
      const mark: CpuMark = {
        atMs: nowMs,
        ...(s.cpuUsageNs !== undefined ? { cpuNs: s.cpuUsageNs } : {}),
        ...(s.cpuPeriods !== undefined ? { periods: s.cpuPeriods } : {}),
        ...(s.cpuThrottledPeriods !== undefined ? { throttled: s.cpuThrottledPeriods } : {}),
        ...(s.oomKills !== undefined ? { oomKills: s.oomKills } : {}),
      };
      next.set(i.id, mark);
      const dt = prev ? (nowMs - prev.atMs) * 1e6 : 0;
      const cpu =
        prev?.cpuNs !== undefined && mark.cpuNs !== undefined && dt > 0
          ? Math.max(0, (mark.cpuNs - prev.cpuNs) / dt)
          : null;
      // Throttled periods as a share of the wall-clock periods (100 ms each, the runtime's CFS
      // period), not of the periods the cgroup was runnable in: a mostly idle process throttled
      // in a short burst is not "squeezed".
      const wallPeriods = prev ? (nowMs - prev.atMs) / CFS_PERIOD_MS : 0;
      const dp =
        prev?.periods !== undefined && mark.periods !== undefined
          ? Math.max(mark.periods - prev.periods, wallPeriods)
          : 0;
      const throttled =
        dp > 0 && prev?.throttled !== undefined && mark.throttled !== undefined
          ? Math.min(1, Math.max(0, (mark.throttled - prev.throttled) / dp))
          : mark.periods !== undefined
            ? 0
            : null;
      out.set(i.id, {
        cpu: cpu === null ? null : Math.round(cpu * 1000) / 1000,
        memoryBytes: s.memoryBytes,
        memoryLimitBytes: s.memoryLimitBytes ?? null,
        throttled,
        oomKills: Math.max(0, (mark.oomKills ?? 0) - (prev?.oomKills ?? mark.oomKills ?? 0)),
      });
    }
    this.#cpu = next;
    return out;
  }

  /** Per-server counters of the gateway; deltas go into the next snapshot. */
  async #pollServers(): Promise<void> {
    if (this.#statsBusy) return;
    this.#statsBusy = true;
    try {
      const stats = await this.#o.dataplane.stats();
      const marks = new Map<string, ServerCounters>();
      for (const st of stats) {
        const mark = { sessions: st.totalSessions, responses5xx: st.responses5xx };
        marks.set(st.server, mark);
        const prev = this.#serverMarks.get(st.server);
        if (!prev) continue;
        const d = {
          sessions: Math.max(0, mark.sessions - prev.sessions),
          responses5xx: Math.max(0, mark.responses5xx - prev.responses5xx),
        };
        const acc = this.#serverDeltas.get(st.server);
        this.#serverDeltas.set(
          st.server,
          acc ? { sessions: acc.sessions + d.sessions, responses5xx: acc.responses5xx + d.responses5xx } : d,
        );
      }
      this.#serverMarks = marks;
    } catch (err) {
      this.#o.onError?.(err);
    } finally {
      this.#statsBusy = false;
    }
  }

  /** Close the current interval (the timer calls this; tests may too). */
  tick(nowMs = Date.now()): Snapshot {
    const instances = this.#o.driver.list();
    const s = emptySnapshot(nowMs, Math.max(1, nowMs - this.#lastTickMs));
    this.#lastTickMs = nowMs;
    s.l7 = this.#l7.flush();
    s.servers = this.#serverDeltas;
    this.#serverDeltas = new Map();
    void this.#pollServers();
    s.l4 = this.#l4;
    // Connections carry over as a gauge into the next interval; counters restart.
    this.#l4 = new Map(
      [...s.l4].map(([k, e]) => [
        k,
        {
          ...e,
          opened: 0,
          failed: 0,
          bytesToServer: 0,
          bytesToClient: 0,
          retransmits: 0,
          resets: 0,
          rttUsSum: 0,
          rttN: 0,
        },
      ]),
    );
    try {
      s.resources = this.#resources(nowMs, instances);
    } catch (err) {
      this.#o.onError?.(err);
    }
    this.#history.push(s);
    this.#refreshCallers();
    return s;
  }

  /** Resources of each instance in the newest interval. */
  latestResources(): Map<string, ResourceStats> {
    return this.#history.window(this.#o.intervalMs * 3, Date.now()).at(-1)?.resources ?? new Map();
  }

  /** Snapshots of the last `windowSeconds` merged into one (for diagnosis). */
  window(windowSeconds: number, nowMs = Date.now()): Snapshot {
    return mergeWindow(this.#history.window(windowSeconds * 1000, nowMs), nowMs);
  }

  /** The last `seconds` of fine snapshots, oldest first (for trends). */
  recent(seconds: number, nowMs = Date.now()): Snapshot[] {
    return this.#history.window(seconds * 1000, nowMs);
  }

  topology(q: TopologyQuery = {}, nowMs = Date.now()): Topology {
    const windowSeconds = q.windowSeconds ?? 60;
    const instances: TopologyInstance[] = this.#o.driver.list().map((i) => ({
      id: i.id,
      project: i.project,
      app: i.app,
      site: i.site,
      phase: i.phase,
      ready: i.ready,
    }));
    return buildTopology({
      nowMs,
      windowSeconds,
      merged: this.window(windowSeconds, nowMs),
      instances,
      apps: this.#apps,
      site: this.#o.site,
      gateway: this.#o.gateway,
      ...(q.project ? { filter: { project: q.project } } : {}),
    });
  }

  history(minutes: number, nowMs = Date.now()): HistoryPoint[] {
    const from = nowMs - minutes * 60_000;
    return this.#history
      .all()
      .filter((s) => s.atMs > from)
      .map((s) => {
        let requests = 0;
        let errors = 0;
        const ids = new Set<string>([...s.resources.keys()].map((id) => `instance:${id}`));
        for (const e of s.l7.values()) {
          ids.add(e.from);
          ids.add(e.to);
          if (e.to.startsWith('app:')) {
            requests += e.requests;
            errors += e.errors;
          }
        }
        for (const e of s.l4.values()) {
          ids.add(e.from);
          ids.add(e.to);
        }
        const appEdges = [...s.l7.values()].filter((e) => e.to.startsWith('app:')).length;
        return {
          at: new Date(s.atMs).toISOString(),
          nodes: ids.size,
          edges: appEdges + s.l4.size,
          rps: Math.round((requests / Math.max(0.001, s.spanMs / 1000)) * 100) / 100,
          errorRate: requests > 0 ? Math.round((errors / requests) * 10_000) / 10_000 : 0,
        };
      });
  }

  /** Listen for the default view (60 s) when it changed, at most every changeIntervalMs. */
  onChange(listener: (t: Topology) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emitIfChanged(): void {
    if (this.#listeners.size === 0) return;
    try {
      const t = this.topology();
      const { at: _at, ...rest } = t;
      const key = JSON.stringify(rest);
      if (key === this.#lastEmitted) return;
      this.#lastEmitted = key;
      for (const l of this.#listeners) l(t);
    } catch (err) {
      this.#o.onError?.(err);
    }
  }

  status(): { requestsSeen: number; agentIntervals: number; lastAgentIntervalAt?: string; apps: number } {
    return {
      requestsSeen: this.#l7.total,
      agentIntervals: this.#agentIntervals,
      ...(this.#lastAgentAt ? { lastAgentIntervalAt: this.#lastAgentAt } : {}),
      apps: this.#apps.length,
    };
  }
}
