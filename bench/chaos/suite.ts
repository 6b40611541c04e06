/**
 * The adversarial fault suite: a workload nobody here wrote runs on the
 * local site under open-loop load, and faults are sent to its instances from
 * outside the platform, one at a time at random moments. Every injection is
 * judged against what a correct platform does (faults.ts): a false isolation
 * is a healthy instance taken out of traffic, a missed one is a faulty
 * instance left in (or a dead one never restarted). The CI test
 * (test/integration/chaos.test.ts) runs a bounded form and asserts both are
 * 0; bench/chaos/run.ts runs the long form and reports the figures.
 */
import { rmSync } from 'node:fs';
import path from 'node:path';
import type { Incident } from '../../src/model/incidents.ts';
import type { InstanceStatus } from '../../src/runtime/driver.ts';
import { sleep, waitFor } from '../../src/util/time.ts';
import { startControlPlane, type ControlPlaneProcess } from '../../test/support/control-plane-process.ts';
import { LoadGenerator, now, percentile } from '../isolation/harness.ts';
import type { Fault } from './faults.ts';
import { manifestOf, type ChaosWorkload } from './workloads.ts';

export const PROJECT = 'chaos';

export interface SuiteOptions {
  /** Work directory (control plane data, generated configs); removed at the end. */
  dir: string;
  workload: ChaosWorkload;
  faults: readonly Fault[];
  /** Injections per fault. */
  injections: number;
  /** Open-loop request rate through the gateway. */
  rps: number;
  replicas?: number;
  /** Seed of the random pauses between injections, so a run can be repeated. */
  seed?: number;
  /** Random pause before each injection, [min, max] ms. @default [1000, 3000] */
  pauseMs?: [number, number];
  /** How long to watch after an injection for incidents. @default 6000 */
  watchMs?: number;
  log?: (line: string) => void;
}

export interface InjectionResult {
  fault: string;
  target: string;
  injectedAt: number;
  /** Out of traffic (isolated, or a crashed process left traffic), ms after the injection. */
  outMs?: number;
  falseIsolations: { instance: string; signature: string; why: string }[];
  missed: boolean;
  requests: number;
  clientErrors: number;
}

export interface FaultSummary {
  workload: string;
  fault: string;
  expect: Fault['expect'];
  injections: number;
  outP50Ms?: number;
  outP99Ms?: number;
  requests: number;
  clientErrors: number;
  falseIsolations: number;
  missed: number;
}

/** A small deterministic generator (mulberry32): the pauses of a run can be replayed by its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Env {
  cp: ControlPlaneProcess;
  load: LoadGenerator;
}

async function instances(cp: ControlPlaneProcess, app: string): Promise<InstanceStatus[]> {
  const r = await cp.api<{ items: InstanceStatus[] }>('GET', '/api/v1/instances');
  return r.body.items.filter((i) => i.project === PROJECT && i.app === app);
}

async function incidentsSince(cp: ControlPlaneProcess, app: string, since: number): Promise<Incident[]> {
  const r = await cp.api<{ items: Incident[] }>(
    'GET',
    `/api/v1/incidents?project=${PROJECT}&app=${app}&limit=500`,
  );
  return r.body.items.filter((i) => Date.parse(i.detectedAt) >= since - 50);
}

/** Ready, in traffic and nothing quarantined: the workload is whole again. */
async function settle(cp: ControlPlaneProcess, app: string, replicas: number): Promise<void> {
  let seen: InstanceStatus[] = [];
  await waitFor(
    `${replicas} ready instances of ${PROJECT}/${app} and none quarantined`,
    async () => {
      const list = await instances(cp, app);
      seen = list;
      for (const q of list.filter((i) => i.phase === 'quarantined')) {
        if (q.pid) {
          try {
            process.kill(q.pid, 'SIGCONT'); // a stopped process cannot act on the SIGTERM of its removal
          } catch {
            // gone already
          }
        }
        await cp.api('POST', `/api/v1/instances/${encodeURIComponent(q.id)}/quarantine/delete`);
      }
      const ready = list.filter((i) => i.ready && i.phase !== 'quarantined');
      return ready.length === replicas && list.length === replicas;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  ).catch((err: unknown) => {
    const what = seen.map(
      (i) => `${i.id} ${i.phase}${i.ready ? ' ready' : ''}${i.message ? ` (${i.message})` : ''}`,
    );
    throw new Error(`${(err as Error).message}; instances: ${what.join('; ') || 'none'}`);
  });
}

/** Judge one injection by the incidents it produced. */
function judge(
  fault: Fault,
  target: InstanceStatus,
  injectedAt: number,
  incidents: Incident[],
): Pick<InjectionResult, 'outMs' | 'falseIsolations' | 'missed'> {
  const isolations = incidents.filter((i) => i.action.kind === 'isolate');
  const falseIsolations = isolations
    .filter((i) => fault.expect !== 'isolate' || i.instanceId !== target.id)
    .map((i) => ({ instance: i.instanceId, signature: i.signature, why: i.evidenceSummary }));
  const own =
    fault.expect === 'isolate'
      ? isolations.find((i) => i.instanceId === target.id)
      : fault.expect === 'restart'
        ? incidents.find((i) => i.instanceId === target.id && i.action.kind === 'restart')
        : undefined;
  const outAt = own?.isolatedAt ? Date.parse(own.isolatedAt) : undefined;
  return {
    ...(outAt !== undefined ? { outMs: Math.max(0, outAt - injectedAt) } : {}),
    falseIsolations,
    missed: fault.expect !== 'none' && own === undefined,
  };
}

async function injectOnce(
  env: Env,
  o: SuiteOptions,
  fault: Fault,
  replicas: number,
  pause: () => number,
  random: () => number,
): Promise<InjectionResult> {
  const app = o.workload.name;
  await sleep(pause());
  const ready = (await instances(env.cp, app)).filter((i) => i.ready && i.phase === 'ready');
  const target = ready[Math.floor(random() * ready.length)] ?? ready[0];
  if (!target) throw new Error(`no ready instance of ${PROJECT}/${app} to inject ${fault.name} into`);
  const injectedAt = Date.now();
  const tLoad = now();
  const undo = await fault.inject(target);
  await sleep(o.watchMs ?? 6000);
  const incidents = await incidentsSince(env.cp, app, injectedAt);
  await undo();
  const verdict = judge(fault, target, injectedAt, incidents);
  for (const i of incidents) {
    o.log?.(
      `    incident ${i.instanceId === target.id ? 'target' : i.instanceId} ${i.signature} -> ${i.action.kind} (${i.action.reason}): ${i.evidenceSummary}` +
        (process.env.CHAOS_DEBUG ? ` | ${i.timeline.find((e) => e.event === 'isolated')?.detail ?? ''}` : ''),
    );
  }
  await settle(env.cp, app, replicas);
  const c = env.load.count(tLoad, now());
  const codes = env.load.codesBetween(tLoad, now());
  if (process.env.CHAOS_DEBUG) {
    const offs: number[] = [];
    for (let i = 0; i < env.load.starts.length; i++) {
      const st = env.load.starts[i]!;
      const cd = env.load.codes[i]!;
      if (st >= tLoad && (cd < 200 || cd >= 300)) offs.push(Math.round(st - tLoad));
    }
    o.log?.(
      `    error start offsets (ms after injection): ${offs.slice(0, 20).join(',')}${offs.length > 20 ? ` ... ${offs.slice(-5).join(',')}` : ''}`,
    );
  }
  const r: InjectionResult = {
    fault: fault.name,
    target: target.id,
    injectedAt,
    ...verdict,
    requests: c.requests,
    clientErrors: c.errors,
  };
  o.log?.(
    `${app} ${fault.name} -> ${target.id}: out ${r.outMs ?? '-'} ms, errors ${r.clientErrors}/${r.requests} ${JSON.stringify(codes)}` +
      (r.missed ? ', MISSED' : '') +
      r.falseIsolations.map((f) => `, FALSE ISOLATION ${f.instance} (${f.signature}: ${f.why})`).join(''),
  );
  return r;
}

export function summarize(workload: string, fault: Fault, rs: InjectionResult[]): FaultSummary {
  const outs = rs.flatMap((r) => (r.outMs !== undefined ? [r.outMs] : []));
  return {
    workload,
    fault: fault.name,
    expect: fault.expect,
    injections: rs.length,
    ...(outs.length > 0 ? { outP50Ms: percentile(outs, 50), outP99Ms: percentile(outs, 99) } : {}),
    requests: rs.reduce((a, r) => a + r.requests, 0),
    clientErrors: rs.reduce((a, r) => a + r.clientErrors, 0),
    falseIsolations: rs.reduce((a, r) => a + r.falseIsolations.length, 0),
    missed: rs.filter((r) => r.missed).length,
  };
}

/** Run every fault `injections` times against one workload; returns one summary per fault. */
export async function runSuite(
  o: SuiteOptions,
): Promise<{ summaries: FaultSummary[]; results: InjectionResult[] }> {
  const replicas = o.replicas ?? 3;
  const random = rng(o.seed ?? 1);
  const [lo, hi] = o.pauseMs ?? [1000, 3000];
  const pause = (): number => Math.round(lo + random() * (hi - lo));
  const cp = await startControlPlane({ dataDir: path.join(o.dir, 'bulwark') });
  let load: LoadGenerator | undefined;
  try {
    const applied = await cp.api<unknown>(
      'POST',
      '/api/v1/apply',
      manifestOf(o.workload, PROJECT, path.join(o.dir, o.workload.name), replicas),
      true,
    );
    if (applied.status !== 200)
      throw new Error(`apply answered ${applied.status}: ${JSON.stringify(applied.body)}`);
    await settle(cp, o.workload.name, replicas);
    load = new LoadGenerator({
      url: cp.gatewayUrl,
      host: `web.${o.workload.name}.${PROJECT}`,
      rps: o.rps,
      request: () => ({ method: 'GET', path: o.workload.path }),
    });
    load.start();
    await sleep(2000); // warm: connections, baselines
    const results: InjectionResult[] = [];
    const summaries: FaultSummary[] = [];
    for (const fault of o.faults) {
      const rs: InjectionResult[] = [];
      for (let i = 0; i < o.injections; i++)
        rs.push(await injectOnce({ cp, load }, o, fault, replicas, pause, random));
      results.push(...rs);
      summaries.push(summarize(o.workload.name, fault, rs));
    }
    return { summaries, results };
  } finally {
    await load?.stop();
    await stop(cp);
    rmSync(o.dir, { recursive: true, force: true });
  }
}

/**
 * Stop the control plane with everything it started (`ControlPlaneProcess.stop()`: resume stopped
 * instances, delete the apps, wait for their instances to go, SIGTERM, then HAProxy and the site's
 * cgroup). A failed stop is logged, not thrown, so it does not hide the suite's own error; what it
 * left fails the run's leftover check.
 */
async function stop(cp: ControlPlaneProcess): Promise<void> {
  await cp.stop().catch((err: unknown) => console.error(`chaos: ${String(err)}`));
}
