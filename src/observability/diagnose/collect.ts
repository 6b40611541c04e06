/**
 * Gathers the signals of one app's instances for the diagnosis engine from
 * what Bulwark already holds: the topology history (L7 per instance, L4
 * flows touching it, resources per interval), the runtime's instance status
 * (restarts, last exit) and the tail of each instance's log.
 */
import type { InstanceStatus, RuntimeDriver } from '../../runtime/driver.ts';
import { mergeInto, percentile, type SparseHistogram } from '../topology/latency.ts';
import { appNodeId, instanceNodeId } from '../topology/l7-collector.ts';
import type { TopologyService } from '../topology/service.ts';
import { diagnose, type EngineInput } from './engine.ts';
import type { Diagnosis, InstanceSignals } from './types.ts';

/** Lines that look like an exception or a fatal error, in any of the usual runtimes' words. */
export const ERROR_LINE = /\b(Error|Exception|FATAL|Fatal|panic|Unhandled|Traceback|OutOfMemory)\b/;

export interface DiagnoseOptions {
  project: string;
  app: string;
  /** 5..3600. @default 60 */
  windowSeconds?: number;
}

export interface DiagnoseDeps {
  driver: Pick<RuntimeDriver, 'list' | 'logs'>;
  topology: Pick<TopologyService, 'window' | 'recent'>;
  l4: { available: boolean; reason?: string };
}

export async function diagnoseApp(
  deps: DiagnoseDeps,
  o: DiagnoseOptions,
  nowMs = Date.now(),
): Promise<Diagnosis> {
  const windowSeconds = o.windowSeconds ?? 60;
  const merged = deps.topology.window(windowSeconds, nowMs);
  const recent = deps.topology.recent(windowSeconds, nowMs);
  const instances = deps.driver.list().filter((i) => i.project === o.project && i.app === o.app);
  const signals: InstanceSignals[] = [];
  const exits: EngineInput['exits'] = [];
  let anyResources = false;
  for (const inst of instances) {
    const node = instanceNodeId(inst.id);
    let requests = 0;
    let errors = 0;
    const latency: SparseHistogram = new Map();
    for (const e of merged.l7.values()) {
      if (e.to !== node) continue;
      requests += e.requests;
      errors += e.errors;
      mergeInto(latency, e.latency);
    }
    // Attempts the log never shows (retried elsewhere) are in the server's own counters.
    const counters = merged.servers.get(inst.id);
    if (counters) {
      // Attempts this server took that the log shows answered elsewhere (or not at all) failed
      // here: a 5xx or a reset retried on a peer. Same reading as isolation/sources/server-stats.ts.
      const unlogged = Math.max(0, counters.sessions - requests);
      errors = Math.max(errors, counters.responses5xx, errors + unlogged);
      requests = Math.max(requests, counters.sessions);
    }
    let retransmits = 0;
    let resets = 0;
    let failed = 0;
    let rttSum = 0;
    let rttN = 0;
    let l4Seen = false;
    for (const e of merged.l4.values()) {
      if (e.from !== node && e.to !== node) continue;
      l4Seen = true;
      retransmits += e.retransmits;
      resets += e.resets;
      failed += e.failed;
      rttSum += e.rttUsSum;
      rttN += e.rttN;
    }
    const res = recent.map((s) => s.resources.get(inst.id)).filter((r) => r !== undefined);
    anyResources ||= res.length > 0;
    const thr = res.map((r) => r.throttled).filter((v): v is number => v !== null);
    const cpu = res.map((r) => r.cpu).filter((v): v is number => v !== null);
    const last = res.at(-1);
    const l4 = deps.l4.available && l4Seen;
    signals.push({
      instance: inst.id,
      phase: inst.phase,
      ready: inst.ready,
      restarts: inst.restarts,
      requests,
      errors,
      errorRate: requests > 0 ? Math.round((errors / requests) * 10_000) / 10_000 : 0,
      p99Ms: percentile(latency, 99),
      retransmits: l4 ? retransmits : null,
      resets: l4 ? resets : null,
      failedConnects: l4 ? failed : null,
      rttMs: l4 && rttN > 0 ? Math.round((rttSum / rttN / 1000) * 1000) / 1000 : null,
      cpu: cpu.length > 0 ? Math.round((cpu.reduce((s, v) => s + v, 0) / cpu.length) * 1000) / 1000 : null,
      throttled:
        thr.length > 0 ? Math.round((thr.reduce((s, v) => s + v, 0) / thr.length) * 1000) / 1000 : null,
      memoryBytes: last?.memoryBytes ?? null,
      memoryLimitBytes: last?.memoryLimitBytes ?? null,
      oomKills: res.reduce((s, r) => s + r.oomKills, 0),
      errorLogLines: await errorLines(deps.driver, inst),
    });
    const exit = inst.lastExit;
    if (exit && Date.parse(exit.at) >= nowMs - windowSeconds * 1000) {
      exits.push({ instance: inst.id, reason: exit.reason, at: exit.at });
    }
  }
  const appNode = appNodeId(o.project, o.app);
  const downstream: Diagnosis['downstream'] = [];
  for (const e of merged.l7.values()) {
    if (e.from !== appNode || !e.to.startsWith('app:')) continue;
    downstream.push({
      app: e.to.slice('app:'.length),
      edge: `${e.from}->${e.to}`,
      requests: e.requests,
      errorRate: e.requests > 0 ? Math.round((e.errors / e.requests) * 10_000) / 10_000 : 0,
      p99Ms: percentile(e.latency, 99),
    });
  }
  return diagnose({
    app: `${o.project}/${o.app}`,
    windowSeconds,
    nowMs,
    instances: signals,
    exits,
    downstream,
    sources: {
      l7: true,
      l4: deps.l4.available,
      resources: anyResources,
      logs: true,
      ...(deps.l4.available ? {} : { l4Reason: deps.l4.reason ?? 'the eBPF agent is not running' }),
    },
  });
}

async function errorLines(driver: Pick<RuntimeDriver, 'logs'>, inst: InstanceStatus): Promise<number> {
  try {
    const lines = await driver.logs(inst.id, { tail: 200, stream: 'both' });
    return lines.filter((l) => ERROR_LINE.test(l)).length;
  } catch {
    return 0;
  }
}
