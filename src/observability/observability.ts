/**
 * Observability of one local site, assembled: the eBPF node agent, the
 * topology service fed by the data plane and the agent, diagnosis,
 * on-demand profiling and the Prometheus exporter. `control-plane.ts`
 * creates it, starts it after the data plane and stops it before.
 */
import path from 'node:path';
import type { DataPlane } from '../dataplane/dataplane.ts';
import type { InstanceStatus, RuntimeDriver } from '../runtime/driver.ts';
import type { Topology } from './topology/types.ts';
import type { ObservabilityApi } from './api.ts';
import { ObservabilityNotFoundError } from './api.ts';
import type { Inventory } from './agent/attribution.ts';
import { NodeAgent } from './agent/node-agent.ts';
import { RemoteAgents } from './agent/remote-agents.ts';
import type { AgentReport } from './agent/report.ts';
import { diagnoseApp } from './diagnose/collect.ts';
import { createObservabilityMetrics, type ObservabilityMetrics } from './metrics.ts';
import { OtlpExporter, type OtlpOptions } from './otlp/exporter.ts';
import { Profiler } from './profile.ts';
import { TopologyService } from './topology/service.ts';

export interface ObservabilityOptions {
  site: string;
  driver: RuntimeDriver;
  dataplane: DataPlane;
  /** Apps of this site (project, name). */
  apps: () => Promise<{ project: string; app: string }[]>;
  /** The gateway's listening addresses (HAProxy binds). */
  gatewayBinds: { address: string; port: number }[];
  /** Where profiles and their audit log go. */
  dataDir: string;
  /**
   * Run the eBPF agent. @default true unless the environment says BULWARK_EBPF_AGENT=off
   * (it reports itself unavailable when it cannot run)
   */
  agent?: boolean;
  /** Export a span per gateway request to this OpenTelemetry collector (OTLP/HTTP). */
  otlp?: OtlpOptions;
  /**
   * The control plane's other sites (Kubernetes): node agents there report to this control
   * plane (`bulwark agent`), and each such site gets an L4 topology from their flows.
   */
  otherSites?: () => { name: string; driver: Pick<RuntimeDriver, 'list' | 'stats'> }[];
  onError?: (source: string, err: unknown) => void;
}

export class Observability {
  readonly site: string;
  readonly agent: NodeAgent | undefined;
  readonly topology: TopologyService;
  readonly profiler: Profiler;
  readonly metrics: ObservabilityMetrics;
  readonly otlp: OtlpExporter | undefined;
  readonly #o: ObservabilityOptions;
  #unsubscribeOtlp: (() => void) | undefined;
  #usage: { cpuSeconds: number; rssBytes: number } | undefined;
  #usageTimer: NodeJS.Timeout | undefined;
  readonly #inventory: () => Inventory;
  readonly remoteAgents = new RemoteAgents();
  /** Topologies of the other sites, made when their first node agent reports. */
  readonly #siteTopologies = new Map<string, TopologyService>();
  /** Topology listeners and their subscriptions, so a site topology made later is unsubscribed too. */
  readonly #topologyListeners = new Map<(t: Topology, site: string) => void, (() => void)[]>();
  #started = false;

  private constructor(o: ObservabilityOptions) {
    this.#o = o;
    this.site = o.site;
    const primary = o.gatewayBinds.find((b) => !b.address.startsWith('127.')) ?? o.gatewayBinds[0];
    const gateway = {
      nodeId: `external:${primary ? `${primary.address}:${primary.port}` : 'gateway'}`,
      label: `site gateway ${o.site} (HAProxy)`,
    };
    const inventory = (): Inventory => ({
      instances: o.driver.list().map((i) => ({
        ...inventoryInstance(i),
        ...(i.pid !== undefined ? { pid: i.pid } : {}),
      })),
      gatewayBinds: o.gatewayBinds,
      gatewayNodeId: gateway.nodeId,
    });
    this.#inventory = inventory;
    const agentOn = o.agent ?? process.env.BULWARK_EBPF_AGENT !== 'off';
    this.agent = !agentOn
      ? undefined
      : NodeAgent.create({ inventory, onError: (err) => o.onError?.('agent', err) });
    this.metrics = createObservabilityMetrics({
      agent: () =>
        this.agent
          ? [{ site: o.site, status: this.agent.status(), ...(this.#usage ? { usage: this.#usage } : {}) }]
          : [],
      instances: () => {
        const res = this.topology.latestResources();
        return o.driver.list().flatMap((i) => {
          const r = res.get(i.id);
          return r
            ? [
                {
                  site: o.site,
                  project: i.project,
                  app: i.app,
                  instance: i.id,
                  cpu: r.cpu,
                  memoryBytes: r.memoryBytes,
                  throttled: r.throttled,
                },
              ]
            : [];
        });
      },
    });
    const agent = this.agent;
    this.topology = TopologyService.create({
      site: o.site,
      driver: o.driver,
      dataplane: o.dataplane,
      apps: o.apps,
      gateway,
      onAppEdge: (from, to, error, ms) => this.metrics.recordRequest(o.site, from, to, error, ms / 1000),
      ...(agent
        ? {
            agentIntervals: (l) =>
              agent.onInterval((iv) => {
                this.metrics.recordFlows(o.site, iv);
                l(iv);
              }),
          }
        : {}),
      onError: (err) => o.onError?.('topology', err),
    });
    this.profiler = new Profiler({ dir: path.join(o.dataDir, 'profiles'), driver: o.driver });
    this.otlp = o.otlp
      ? new OtlpExporter({ ...o.otlp, site: o.site, onError: (err) => o.onError?.('otlp', err) })
      : undefined;
  }

  static create(o: ObservabilityOptions): Observability {
    return new Observability(o);
  }

  /** Starts the topology at once and the agent in the background (bpftrace takes seconds to attach). */
  async start(): Promise<void> {
    this.#started = true;
    this.topology.start();
    for (const t of this.#siteTopologies.values()) t.start();
    if (this.otlp) {
      const otlp = this.otlp;
      otlp.start();
      this.#unsubscribeOtlp = this.#o.dataplane.onRequest((log) => otlp.add(log));
    }
    if (this.agent) {
      await this.agent.start();
      this.#usageTimer = setInterval(() => {
        void this.agent?.usage().then((u) => (this.#usage = u));
      }, 5000);
      this.#usageTimer.unref();
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#usageTimer);
    this.#unsubscribeOtlp?.();
    await this.otlp?.close();
    this.topology.stop();
    for (const t of this.#siteTopologies.values()) t.stop();
    await this.agent?.stop();
  }

  /** What a node agent of `site` needs to attribute flows: instances (no pids: they are this host's). */
  agentInventory(site: string): Inventory {
    if (site === this.site) {
      const inv = this.#inventory();
      return { ...inv, instances: inv.instances.map(({ pid: _pid, ...i }) => i) };
    }
    const other = this.#otherSite(site);
    return {
      instances: other.driver.list().map(inventoryInstance),
      gatewayBinds: [],
      gatewayNodeId: `external:${site}-services`,
    };
  }

  /** A validated node-agent report: its flows into the site's topology and metrics. */
  agentReport(report: AgentReport): { site: string; node: string; flows: number } {
    const iv = this.remoteAgents.ingest(report, this.agentInventory(report.site));
    if (iv) {
      this.metrics.recordFlows(report.site, iv);
      this.#topologyOf(report.site, true).ingestFlows(iv);
    }
    return { site: report.site, node: report.node, flows: iv?.flows.length ?? 0 };
  }

  #otherSite(site: string): { name: string; driver: Pick<RuntimeDriver, 'list' | 'stats'> } {
    const other = this.#o.otherSites?.().find((x) => x.name === site);
    if (!other) {
      const known = [this.site, ...(this.#o.otherSites?.().map((x) => x.name) ?? [])];
      throw new ObservabilityNotFoundError(`no site '${site}' (sites: ${known.join(', ')})`);
    }
    return other;
  }

  /** The topology of a site: the local one, or another site's (made on its first agent report). */
  #topologyOf(site: string, create = false): TopologyService {
    if (site === this.site) return this.topology;
    let t = this.#siteTopologies.get(site);
    if (t) return t;
    const other = this.#otherSite(site);
    if (!create)
      throw new ObservabilityNotFoundError(`site '${site}' has no topology yet: no node agent reported`);
    t = TopologyService.create({
      site,
      driver: other.driver,
      // No gateway of ours in a Kubernetes site: no request log, L4 only.
      dataplane: { onRequest: () => () => undefined, stats: () => Promise.resolve([]) },
      apps: () => Promise.resolve(appsOf(other.driver)),
      gateway: { nodeId: `external:${site}-services`, label: `Kubernetes Services of ${site}` },
      onError: (err) => this.#o.onError?.('topology', err),
    });
    for (const [l, unsubs] of this.#topologyListeners) unsubs.push(t.onChange((topo) => l(topo, site)));
    this.#siteTopologies.set(site, t);
    if (this.#started) t.start();
    return t;
  }

  status(): Record<string, unknown> {
    return {
      agent: this.agent?.status() ?? { state: 'stopped', reason: 'disabled (BULWARK_EBPF_AGENT=off)' },
      nodeAgents: this.remoteAgents.list(),
      topology: this.topology.status(),
      otlp: this.otlp?.status() ?? { state: 'off', reason: 'no OTLP endpoint configured (--otlp-endpoint)' },
    };
  }

  api(): ObservabilityApi {
    return {
      sites: () => [this.site, ...this.#siteTopologies.keys()],
      topology: (q) =>
        this.#topologyOf(q.site ?? this.site).topology({
          windowSeconds: q.windowSeconds,
          ...(q.project ? { project: q.project } : {}),
        }),
      history: (q) => this.#topologyOf(q.site ?? this.site).history(q.minutes),
      onTopology: (l) => {
        const unsubs = [
          this.topology.onChange((t) => l(t, this.site)),
          ...[...this.#siteTopologies].map(([name, t]) => t.onChange((topo) => l(topo, name))),
        ];
        this.#topologyListeners.set(l, unsubs);
        return () => {
          for (const u of this.#topologyListeners.get(l) ?? []) u();
          this.#topologyListeners.delete(l);
        };
      },
      agentInventory: (name) => this.agentInventory(name),
      agentReport: (r) => this.agentReport(r),
      nodeAgents: (name) => this.remoteAgents.list(name),
      diagnose: (q) => {
        const st = this.agent?.status();
        return diagnoseApp(
          {
            driver: this.#o.driver,
            topology: this.topology,
            l4: {
              available: st?.state === 'running' || this.remoteAgents.running(this.site),
              ...(st?.reason ? { reason: st.reason } : {}),
            },
          },
          q,
        ).then((d) => {
          this.metrics.recordDiagnosis(d.verdict);
          return d;
        });
      },
      profile: async (q) => {
        try {
          const r = await this.profiler.profile(q);
          this.metrics.recordProfile('ok');
          return r;
        } catch (err) {
          this.metrics.recordProfile('failed');
          throw err;
        }
      },
      profiles: () => this.profiler.list(),
      getProfile: (id) => this.profiler.get(id),
      profileFile: (id, kind) => this.profiler.file(id, kind),
      agent: () => ({
        [this.site]: this.agent?.status() ?? {
          state: 'stopped',
          intervals: 0,
          restarts: 0,
          reason: 'disabled (BULWARK_EBPF_AGENT=off)',
        },
      }),
      metrics: () => this.metrics.render(),
    };
  }
}

/** Apps with instances in a driver (a Kubernetes site shows what runs there). */
function appsOf(driver: Pick<RuntimeDriver, 'list'>): { project: string; app: string }[] {
  const seen = new Map<string, { project: string; app: string }>();
  for (const i of driver.list()) seen.set(`${i.project}/${i.app}`, { project: i.project, app: i.app });
  return [...seen.values()];
}

/** An instance as an agent's inventory holds it (without the pid: only this host's agent may use it). */
function inventoryInstance(i: InstanceStatus): Inventory['instances'][number] {
  return { id: i.id, project: i.project, app: i.app, ip: i.ip, ports: i.ports };
}
