/**
 * Prometheus metrics of observability, for users' own Prometheus/Grafana:
 * per-edge golden signals from the gateway (`bulwark_edge_*`), per-flow TCP
 * facts from the node agent (`bulwark_flow_*`), instance resources
 * (`bulwark_instance_*`) and the agent's own health and cost
 * (`bulwark_agent_*`). Label values are topology node ids, so a series
 * joins the Topology API's edges one to one. Cardinality is bounded by
 * apps, instances and the external endpoints they talk to.
 */
import { Registry, type Counter, type Gauge, type Histogram } from '../util/metrics/registry.ts';
import type { AgentInterval, AgentStatus } from './agent/node-agent.ts';

/** Request latency through the gateway: a millisecond to the longest timeouts. */
export const EDGE_BUCKETS_S: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

export interface ObservabilityMetrics {
  readonly registry: Registry;
  recordRequest(site: string, source: string, destination: string, error: boolean, seconds: number): void;
  recordFlows(site: string, iv: AgentInterval): void;
  recordProfile(result: 'ok' | 'failed'): void;
  recordDiagnosis(layer: string): void;
  render(): string;
}

export interface ObservabilityMetricsSources {
  agent: () => { site: string; status: AgentStatus; usage?: { cpuSeconds: number; rssBytes: number } }[];
  instances: () => {
    site: string;
    project: string;
    app: string;
    instance: string;
    cpu: number | null;
    memoryBytes: number | null;
    throttled: number | null;
  }[];
}

export function createObservabilityMetrics(src: ObservabilityMetricsSources): ObservabilityMetrics {
  const registry = new Registry();
  const edge = ['site', 'source', 'destination'] as const;
  const requests: Counter = registry.counter(
    'bulwark_edge_requests_total',
    'Requests through the site gateway by caller (source) and callee (destination) app node id.',
    { labelNames: edge },
  );
  const errors: Counter = registry.counter(
    'bulwark_edge_errors_total',
    'Requests answered 5xx or by no server, by caller and callee app node id.',
    { labelNames: edge },
  );
  const duration: Histogram = registry.histogram(
    'bulwark_edge_request_duration_seconds',
    'Total time of requests through the gateway (HAProxy Ta), by caller and callee app node id, seconds.',
    { labelNames: edge, buckets: EDGE_BUCKETS_S },
  );
  const established: Gauge = registry.gauge(
    'bulwark_flow_connections',
    'Established TCP connections by client and server node id (eBPF agent).',
    { labelNames: edge },
  );
  const opened = registry.counter(
    'bulwark_flow_connections_opened_total',
    'TCP connections established, by client and server node id (eBPF agent).',
    { labelNames: edge },
  );
  const failed = registry.counter(
    'bulwark_flow_connect_failures_total',
    'TCP connects that were refused or timed out, by client and server node id (eBPF agent).',
    { labelNames: edge },
  );
  const retransmits = registry.counter(
    'bulwark_flow_retransmits_total',
    'TCP segments retransmitted, by client and server node id (eBPF agent).',
    { labelNames: edge },
  );
  const resets = registry.counter(
    'bulwark_flow_resets_total',
    'TCP resets sent or received, by client and server node id (eBPF agent).',
    { labelNames: edge },
  );
  const bytes = registry.counter(
    'bulwark_flow_bytes_total',
    'TCP payload bytes by client and server node id and direction (to_server, to_client) (eBPF agent).',
    { labelNames: [...edge, 'direction'] },
  );
  const rtt: Gauge = registry.gauge(
    'bulwark_flow_rtt_seconds',
    'Mean smoothed TCP round-trip time over the last agent interval, seconds (eBPF agent).',
    { labelNames: edge },
  );

  const agentUp: Gauge = registry.gauge(
    'bulwark_agent_up',
    '1 when the eBPF node agent runs; 0 when it cannot (see /api/v1/status for the reason).',
    {
      labelNames: ['site', 'state'],
      collect: () => {
        agentUp.reset();
        for (const a of src.agent()) {
          agentUp.with({ site: a.site, state: a.status.state }).set(a.status.state === 'running' ? 1 : 0);
        }
      },
    },
  );
  const agentIntervals: Gauge = registry.gauge(
    'bulwark_agent_intervals',
    'Intervals of flow aggregates received from the node agent since it started.',
    {
      labelNames: ['site'],
      collect: () => {
        agentIntervals.reset();
        for (const a of src.agent()) agentIntervals.with({ site: a.site }).set(a.status.intervals);
      },
    },
  );
  const agentCpu: Gauge = registry.gauge(
    'bulwark_agent_cpu_seconds',
    "CPU time used by the agent's bpftrace process (user + system, includes its in-kernel work on its own behalf).",
    {
      labelNames: ['site'],
      collect: () => {
        agentCpu.reset();
        for (const a of src.agent()) if (a.usage) agentCpu.with({ site: a.site }).set(a.usage.cpuSeconds);
      },
    },
  );
  const agentRss: Gauge = registry.gauge(
    'bulwark_agent_resident_memory_bytes',
    "Resident memory of the agent's bpftrace process.",
    {
      labelNames: ['site'],
      collect: () => {
        agentRss.reset();
        for (const a of src.agent()) if (a.usage) agentRss.with({ site: a.site }).set(a.usage.rssBytes);
      },
    },
  );

  const inst = ['site', 'project', 'app', 'instance'] as const;
  const setInstances = (
    g: Gauge,
    pick: (i: ReturnType<typeof src.instances>[number]) => number | null,
  ): void => {
    g.reset();
    for (const i of src.instances()) {
      const v = pick(i);
      if (v !== null) g.with({ site: i.site, project: i.project, app: i.app, instance: i.instance }).set(v);
    }
  };
  const cpu: Gauge = registry.gauge(
    'bulwark_instance_cpu_cores',
    'CPU used by the instance over the last interval, cores.',
    {
      labelNames: inst,
      collect: () => setInstances(cpu, (i) => i.cpu),
    },
  );
  const mem: Gauge = registry.gauge(
    'bulwark_instance_memory_bytes',
    'Memory used by the instance (cgroup or RSS).',
    {
      labelNames: inst,
      collect: () => setInstances(mem, (i) => i.memoryBytes),
    },
  );
  const throttled: Gauge = registry.gauge(
    'bulwark_instance_cpu_throttled_ratio',
    'Share of CFS periods in which the instance was throttled over the last interval, 0..1.',
    { labelNames: inst, collect: () => setInstances(throttled, (i) => i.throttled) },
  );

  const profiles = registry.counter('bulwark_profiles_total', 'On-demand profiles taken, by result.', {
    labelNames: ['result'],
  });
  const diagnoses = registry.counter(
    'bulwark_diagnoses_total',
    'Diagnoses answered, by the layer found at fault.',
    {
      labelNames: ['layer'],
    },
  );

  return {
    registry,
    recordRequest(site, source, destination, error, seconds) {
      const l = { site, source, destination };
      requests.with(l).inc();
      if (error) errors.with(l).inc();
      duration.with(l).observe(seconds);
    },
    recordFlows(site, iv) {
      established.reset();
      rtt.reset();
      const est = new Map<string, number>();
      for (const f of iv.flows) {
        const l = { site, source: f.from.nodeId, destination: f.to.nodeId };
        const k = `${l.source}->${l.destination}`;
        est.set(k, (est.get(k) ?? 0) + f.established);
        established.with(l).set(est.get(k) ?? 0);
        if (f.opened) opened.with(l).inc(f.opened);
        if (f.failed) failed.with(l).inc(f.failed);
        if (f.retransmits) retransmits.with(l).inc(f.retransmits);
        if (f.resets) resets.with(l).inc(f.resets);
        if (f.bytesToServer) bytes.with({ ...l, direction: 'to_server' }).inc(f.bytesToServer);
        if (f.bytesToClient) bytes.with({ ...l, direction: 'to_client' }).inc(f.bytesToClient);
        if (f.rttUs !== undefined) rtt.with(l).set(f.rttUs / 1e6);
      }
    },
    recordProfile(result) {
      profiles.with({ result }).inc();
    },
    recordDiagnosis(layer) {
      diagnoses.with({ layer }).inc();
    },
    render: () => registry.render(),
  };
}
