/**
 * A node agent that runs away from the control plane (`bulwark agent`): on a
 * Kubernetes node (DaemonSet, see kubernetes-manifest.ts) or another host of
 * a site. It asks the control plane what runs on the site, runs the same
 * eBPF NodeAgent as the control plane's own (finding pods' network
 * namespaces by their IPs, since their processes are not ours), and posts
 * one report per interval. The control plane attributes the flows itself.
 *
 * Failure behaviour: the control plane unreachable -> reports queue (at most
 * `maxQueue`, the oldest dropped and counted) and are retried with backoff;
 * a refused report (400, 404) is dropped and logged, never retried; the
 * token refused (401 unknown or revoked, 403 not agent-scoped) or the
 * server's certificate not trusted -> `credentialsRefused` resolves and
 * nothing more is sent (the caller stops: retrying cannot fix a credential);
 * eBPF not possible here -> status-only reports saying why, every 10 s.
 *
 * It calls exactly two routes, the ones an `agent` token may use:
 * GET /api/v1/observability/agents/inventory and POST .../agents/reports.
 */
import type { Inventory } from './attribution.ts';
import { NodeAgent, type AgentInterval, type AgentStatus } from './node-agent.ts';
import type { AgentReport } from './report.ts';

/** The part of the CLI's ApiClient this needs (a test can pass a thin fetch wrapper). */
export interface ReportClient {
  request<T>(
    method: string,
    path: string,
    body?: { json?: unknown },
    opts?: { timeoutMs?: number },
  ): Promise<T>;
}

export interface RemoteAgentOptions {
  site: string;
  node: string;
  api: ReportClient;
  /** One line per event worth a human's attention (started, control plane lost/back, summary). */
  log: (line: string) => void;
  /** @default 1000 */
  intervalMs?: number;
  /** @default 10000 */
  inventoryRefreshMs?: number;
  /** Reports kept while the control plane cannot be reached. @default 120 */
  maxQueue?: number;
  /** @default 30000 */
  summaryEveryMs?: number;
  bpftrace?: string;
}

export interface RemoteAgentCounters {
  sent: number;
  dropped: number;
  refused: number;
  queued: number;
  inventoryInstances: number;
}

// CLI exit codes (src/cli/exit-codes.ts): 3 not found (no such site), 4 invalid input,
// 6 unauthorized (token refused, or the server's certificate not trusted).
const exitCodeOf = (err: unknown): number | undefined => (err as { exitCode?: number }).exitCode;
/** Errors the control plane answered with a 4xx: the report or the credential is wrong, not the link. */
const isRefusal = (err: unknown): boolean => [3, 4, 6].includes(exitCodeOf(err) ?? 0);
const isCredentialRefusal = (err: unknown): boolean => exitCodeOf(err) === 6;

export class RemoteAgent {
  readonly #o: Required<Omit<RemoteAgentOptions, 'bpftrace'>> & Pick<RemoteAgentOptions, 'bpftrace'>;
  #inventory: Inventory = { instances: [], gatewayBinds: [], gatewayNodeId: 'external:gateway' };
  #agent: NodeAgent | undefined;
  readonly #queue: AgentReport[] = [];
  readonly #counters: RemoteAgentCounters = {
    sent: 0,
    dropped: 0,
    refused: 0,
    queued: 0,
    inventoryInstances: 0,
  };
  #timers: NodeJS.Timeout[] = [];
  #sending = false;
  #backoffMs = 0;
  #nextSendAt = 0;
  #linkDown = false;
  #stopped = false;
  #refuse: (err: Error) => void = () => undefined;
  /** Resolves (never rejects) with the error once the control plane refuses this agent's token or certificate trust. */
  readonly credentialsRefused: Promise<Error> = new Promise((resolve) => {
    this.#refuse = resolve;
  });
  #refused: Error | undefined;

  constructor(o: RemoteAgentOptions) {
    this.#o = {
      intervalMs: 1000,
      inventoryRefreshMs: 10_000,
      maxQueue: 120,
      summaryEveryMs: 30_000,
      ...o,
    };
  }

  counters(): RemoteAgentCounters {
    return { ...this.#counters, queued: this.#queue.length };
  }

  status(): AgentStatus | undefined {
    return this.#agent?.status();
  }

  /** Fetch the inventory (retrying until it answers or stop()), then start eBPF and reporting. */
  async start(): Promise<AgentStatus> {
    for (let delay = 1000; !this.#stopped; delay = Math.min(30_000, delay * 2)) {
      try {
        await this.#refreshInventory();
        break;
      } catch (err) {
        if (isRefusal(err)) throw err; // unknown site or bad token: retrying will not help
        this.#o.log(
          `control plane not reachable yet (${(err as Error).message}); retrying in ${delay / 1000} s`,
        );
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    const agent = NodeAgent.create({
      inventory: () => this.#inventory,
      intervalMs: this.#o.intervalMs,
      discoverNamespaces: true,
      ...(this.#o.bpftrace ? { bpftrace: this.#o.bpftrace } : {}),
      onError: (err) => this.#o.log(`agent error: ${(err as Error).message}`),
    });
    this.#agent = agent;
    agent.onInterval((iv) => this.#enqueue(iv));
    const st = await agent.start();
    this.#o.log(
      st.state === 'unavailable'
        ? `eBPF unavailable on this node: ${st.reason ?? 'unknown'}; reporting status only`
        : `agent starting on node ${this.#o.node} for site ${this.#o.site} (bpftrace compiles its program first)`,
    );
    const every = (ms: number, fn: () => void): void => {
      const t = setInterval(fn, ms);
      this.#timers.push(t);
    };
    every(this.#o.inventoryRefreshMs, () => {
      this.#refreshInventory().catch((err: unknown) =>
        this.#o.log(`inventory refresh failed: ${(err as Error).message}`),
      );
    });
    // Without intervals (starting, unavailable, failed) the control plane still hears why.
    every(10_000, () => {
      if (this.#agent?.status().state !== 'running') this.#enqueue(undefined);
    });
    every(this.#o.summaryEveryMs, () => {
      const c = this.counters();
      const s = this.#agent?.status();
      this.#o.log(
        `agent ${s?.state ?? 'stopped'}: ${c.sent} reports sent, ${c.queued} queued, ${c.dropped} dropped, ` +
          `${c.refused} refused; ${c.inventoryInstances} instances on the site`,
      );
    });
    this.#enqueue(undefined);
    return st;
  }

  async #refreshInventory(): Promise<void> {
    const inv = await this.#o.api.request<Inventory>(
      'GET',
      `/api/v1/observability/agents/inventory?site=${encodeURIComponent(this.#o.site)}`,
      undefined,
      { timeoutMs: 10_000 },
    );
    this.#inventory = inv;
    this.#counters.inventoryInstances = inv.instances.length;
  }

  #enqueue(iv: AgentInterval | undefined): void {
    const st = this.#agent?.status() ?? { state: 'starting' as const, intervals: 0, restarts: 0 };
    const report: AgentReport = {
      site: this.#o.site,
      node: this.#o.node,
      status: {
        state: st.state,
        intervals: st.intervals,
        restarts: st.restarts,
        ...(st.reason !== undefined ? { reason: st.reason.slice(0, 2000) } : {}),
        ...(st.probes !== undefined ? { probes: st.probes } : {}),
        ...(st.attachMs !== undefined ? { attachMs: st.attachMs } : {}),
      },
      ...(iv
        ? {
            interval: {
              at: iv.at,
              intervalMs: iv.intervalMs,
              // The control plane attributes flows itself: send the addresses, not our attribution.
              flows: iv.flows.map(({ from: _f, to: _t, ...f }) => f),
            },
          }
        : {}),
    };
    this.#queue.push(report);
    while (this.#queue.length > this.#o.maxQueue) {
      this.#queue.shift();
      this.#counters.dropped++;
    }
    void this.#drain();
  }

  async #drain(): Promise<void> {
    if (this.#sending || Date.now() < this.#nextSendAt) return;
    this.#sending = true;
    try {
      while (this.#queue.length > 0 && !this.#stopped && !this.#refused) {
        const report = this.#queue[0]!;
        try {
          await this.#o.api.request(
            'POST',
            '/api/v1/observability/agents/reports',
            { json: report },
            { timeoutMs: 10_000 },
          );
          this.#queue.shift();
          this.#counters.sent++;
          if (this.#linkDown) this.#o.log('control plane reachable again; sending queued reports');
          this.#linkDown = false;
          this.#backoffMs = 0;
        } catch (err) {
          if (isCredentialRefusal(err)) {
            // Every later report would be refused the same way: keep them queued, send nothing more.
            if (!this.#refused) {
              this.#refused = err as Error;
              this.#o.log(`control plane refused this agent's credentials: ${(err as Error).message}`);
              this.#refuse(err as Error);
            }
            return;
          }
          if (isRefusal(err)) {
            this.#queue.shift();
            this.#counters.refused++;
            this.#o.log(`report refused by the control plane: ${(err as Error).message}`);
            continue;
          }
          this.#backoffMs = Math.min(30_000, Math.max(1000, this.#backoffMs * 2));
          this.#nextSendAt = Date.now() + this.#backoffMs;
          if (!this.#linkDown)
            this.#o.log(`control plane unreachable (${(err as Error).message}); queueing reports`);
          this.#linkDown = true;
          const retry = setTimeout(() => void this.#drain(), this.#backoffMs);
          retry.unref();
          return;
        }
      }
    } finally {
      this.#sending = false;
    }
  }

  /** Stop eBPF, then try for a moment to deliver what is queued. */
  async stop(flushMs = 3000): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    await this.#agent?.stop();
    const deadline = Date.now() + flushMs;
    this.#nextSendAt = 0;
    while (this.#queue.length > 0 && Date.now() < deadline && !this.#linkDown) {
      await this.#drain();
      await new Promise((r) => setTimeout(r, 50));
    }
    this.#stopped = true;
  }
}
