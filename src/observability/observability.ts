/**
 * Observability of one local site, assembled: the eBPF node agent, the
 * topology service fed by the data plane and the agent, diagnosis,
 * on-demand profiling and the Prometheus exporter. `control-plane.ts`
 * creates it, starts it after the data plane and stops it before.
 */
import path from 'node:path';
import type { DataPlane } from '../dataplane/dataplane.ts';
import type { RuntimeDriver } from '../runtime/driver.ts';
import type { ObservabilityApi } from './api.ts';
import { ObservabilityNotFoundError } from './api.ts';
import type { Inventory } from './agent/attribution.ts';
import { NodeAgent } from './agent/node-agent.ts';
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
        id: i.id,
        project: i.project,
        app: i.app,
        ip: i.ip,
        ports: i.ports,
        ...(i.pid !== undefined ? { pid: i.pid } : {}),
      })),
      gatewayBinds: o.gatewayBinds,
      gatewayNodeId: gateway.nodeId,
    });
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
    this.topology.start();
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
    await this.agent?.stop();
  }

  status(): Record<string, unknown> {
    return {
      agent: this.agent?.status() ?? { state: 'stopped', reason: 'disabled (BULWARK_EBPF_AGENT=off)' },
      topology: this.topology.status(),
      otlp: this.otlp?.status() ?? { state: 'off', reason: 'no OTLP endpoint configured (--otlp-endpoint)' },
    };
  }

  api(): ObservabilityApi {
    const site = (name: string | undefined): void => {
      if (name !== undefined && name !== this.site) {
        throw new ObservabilityNotFoundError(
          `no site '${name}' (this control plane runs site '${this.site}')`,
        );
      }
    };
    return {
      sites: () => [this.site],
      topology: (q) => {
        site(q.site);
        return this.topology.topology({
          windowSeconds: q.windowSeconds,
          ...(q.project ? { project: q.project } : {}),
        });
      },
      history: (q) => {
        site(q.site);
        return this.topology.history(q.minutes);
      },
      onTopology: (l) => this.topology.onChange((t) => l(t, this.site)),
      diagnose: (q) => {
        const st = this.agent?.status();
        return diagnoseApp(
          {
            driver: this.#o.driver,
            topology: this.topology,
            l4: { available: st?.state === 'running', ...(st?.reason ? { reason: st.reason } : {}) },
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
