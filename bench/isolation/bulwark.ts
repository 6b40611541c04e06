/**
 * Bulwark under test: the real control plane as a child process (as the
 * integration tests run it), `ledger.yaml` applied, faults injected into its
 * instances. Time-to-isolate is read exactly as for the baselines, from the
 * HAProxy stats socket of Bulwark's own gateway; the incident
 * (GET /api/v1/incidents) gives the replacement-ready time. After each
 * injection the quarantined instance is deleted through the API.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import {
  instanceProcesses,
  startControlPlane,
  type ControlPlaneProcess,
} from '../../test/support/control-plane-process.ts';
import type { InstanceStatus } from '../../src/runtime/driver.ts';
import type { Incident } from '../../src/model/incidents.ts';
import { sleep, waitFor } from '../../src/util/time.ts';
import { onCleanup } from './cleanup.ts';
import { REPLICAS, SETTLE_MS } from './baselines.ts';
import {
  ServerWatcher,
  alive,
  describe,
  healthy,
  inject,
  now,
  setFault,
  type Fault,
  type Injection,
} from './harness.ts';

export const PROJECT = 'isobench';
export const APP = 'ledger';
export const SERVICE_HOST = `api.${APP}.${PROJECT}`;
/** Longest wait for isolation; Bulwark's targets are 1 s and 3 s. */
export const BULWARK_WINDOW_MS = 10_000;
/** The latency signature trusts an instance's own baseline only after ~10 s of its traffic. */
const SLOW_MIN_AGE_MS = 15_000;

export class IsolationApiMissing extends Error {}

export interface BulwarkEnv {
  cp: ControlPlaneProcess;
  watcher: ServerWatcher;
  /** Query parameter name the incidents API accepted for the instance filter. */
  incidentFilter: string;
  /** Instances quarantined while no fault was being injected into them, with the incident's reason. */
  unexpected: Map<string, string>;
  /** Delete the app, stop the control plane and anything left of its instances. */
  stop: () => Promise<void>;
}

async function stopControlPlane(cp: ControlPlaneProcess): Promise<void> {
  await cp.api('DELETE', `/api/v1/projects/${PROJECT}/apps/${APP}`).catch(() => undefined);
  // Wait for the control plane to remove them (netns, cgroups, quarantined ones too): a graceful
  // stop of the control plane keeps instances running by design.
  await waitFor(
    'benchmark instances removed',
    async () => {
      const r = await cp.api<{ items: InstanceStatus[] }>('GET', '/api/v1/instances');
      return r.body.items.every((i) => i.project !== PROJECT);
    },
    { timeoutMs: 40_000, intervalMs: 200 },
  ).catch(() => undefined);
  await cp.kill('SIGTERM');
  await sleep(300);
  for (const p of instanceProcesses(cp.gatewayPort)) {
    try {
      process.kill(p.pid, 'SIGCONT');
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  // Shims and the gateway HAProxy carry the (unique) data dir on their command line.
  for (const pid of pidsWithArg(cp.dataDir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

function pidsWithArg(needle: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(needle)) out.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/**
 * Start the control plane, check that the isolation API exists (fail fast
 * and clearly when it does not), apply the manifest, wait for 4 ready
 * instances that HAProxy has UP.
 */
export async function startBulwark(dir: string, opts: { requireIsolationApi: boolean }): Promise<BulwarkEnv> {
  const cp = await startControlPlane({ dataDir: path.join(dir, 'bulwark') });
  const stop = onCleanup('bulwark control plane and its instances', () => stopControlPlane(cp));

  try {
    let incidentFilter = 'instance';
    const probe = await cp.api<unknown>('GET', `/api/v1/incidents?${incidentFilter}=none`);
    if (probe.status === 400) {
      incidentFilter = 'instanceId';
      const again = await cp.api<unknown>('GET', `/api/v1/incidents?${incidentFilter}=none`);
      probe.status = again.status;
    }
    if (probe.status !== 200 && opts.requireIsolationApi) {
      throw new IsolationApiMissing(
        `Bulwark isolation API not available: GET /api/v1/incidents answered ${probe.status}. ` +
          `The Bulwark half of this benchmark needs the isolation controller and incidents API (src/isolation) ` +
          `wired into the control plane; run only the baselines with --systems haproxy,envoy,k8s, or set ` +
          `BENCH_ISOLATION_NO_INCIDENTS=1 to measure Bulwark's HAProxy-side isolation without incidents.`,
      );
    }

    const manifest = readFileSync(path.join(import.meta.dirname, 'ledger.yaml'), 'utf8');
    const applied = await cp.api<unknown>('POST', '/api/v1/apply', manifest, true);
    if (applied.status !== 200) {
      throw new Error(
        `applying bench/isolation/ledger.yaml answered ${applied.status}: ${JSON.stringify(applied.body)}`,
      );
    }
    const watcher = new ServerWatcher(
      path.join(cp.dataDir, 'sites', 'local', 'haproxy', 'stats.sock'),
      SERVICE_HOST,
    );
    const env = { cp, watcher, incidentFilter, stop, unexpected: new Map<string, string>() };
    await waitSteady(env, 120_000);
    return env;
  } catch (err) {
    await stop();
    throw err;
  }
}

async function ledgerInstances(env: BulwarkEnv): Promise<InstanceStatus[]> {
  const r = await env.cp.api<{ items: InstanceStatus[] }>(
    'GET',
    `/api/v1/projects/${PROJECT}/apps/${APP}/instances`,
  );
  if (r.status !== 200) throw new Error(`GET instances of ${PROJECT}/${APP} answered ${r.status}`);
  return r.body.items;
}

/** 4 ready instances, all UP in Bulwark's HAProxy, nothing quarantined: the state every injection starts from. */
async function waitSteady(env: BulwarkEnv, timeoutMs = 90_000): Promise<InstanceStatus[]> {
  let last = '';
  try {
    return await waitFor(
      `${REPLICAS} ready ledger instances, all UP in Bulwark's HAProxy, none quarantined`,
      async () => {
        const list = await ledgerInstances(env);
        const ready = list.filter((i) => i.phase === 'ready' && i.pid !== undefined);
        let statsError = '';
        const up = new Set(
          await env.watcher.upServers().catch((err: Error) => {
            statsError = `; stats socket: ${err.message}`;
            return [];
          }),
        );
        last = list.map((i) => `${i.id}:${i.phase}${up.has(i.id) ? ':UP' : ''}`).join(' ') + statsError;
        for (const q of list.filter((i) => i.phase === 'quarantined' && !env.unexpected.has(i.id))) {
          // Isolated although the bench injected nothing into it (now): a false positive, or a late
          // match on a victim that was already replaced. Record it and clear it out of the way.
          const inc = await incidentFor(env, q.id, 0).catch(() => undefined);
          env.unexpected.set(q.id, inc ? `${inc.signature}: ${inc.evidenceSummary}` : 'no incident found');
          await deleteQuarantined(env, q.id);
        }
        const ok =
          ready.length === REPLICAS &&
          list.every((i) => i.phase !== 'quarantined') &&
          ready.every((i) => up.has(i.id));
        return ok ? ready : undefined;
      },
      { timeoutMs, intervalMs: 100 },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen: ${last}`);
  }
}

async function incidentFor(
  env: BulwarkEnv,
  instanceId: string,
  since: number,
): Promise<Incident | undefined> {
  const r = await env.cp.api<{ items?: Incident[] } | Incident[]>(
    'GET',
    `/api/v1/incidents?${env.incidentFilter}=${encodeURIComponent(instanceId)}`,
  );
  if (r.status === 404 || r.status === 503) {
    throw new IsolationApiMissing(
      `GET /api/v1/incidents answered ${r.status}: the isolation API went away mid-run`,
    );
  }
  if (r.status !== 200) return undefined;
  const items = Array.isArray(r.body) ? r.body : (r.body.items ?? []);
  return items
    .filter((i) => i.instanceId === instanceId && Date.parse(i.detectedAt) >= since - 5000)
    .sort((a, b) => a.detectedAt.localeCompare(b.detectedAt))[0];
}

/**
 * Inject each fault `injections` times into the oldest ready instance; wait
 * for isolation (HAProxy) and the replacement (incident), delete the
 * quarantined instance, wait for 4 ready instances again.
 */
export async function runBulwark(
  env: BulwarkEnv,
  plan: { fault: Fault; injections: number }[],
  log: (s: string) => void,
  /** Filled as injections complete, so a failure later keeps what was measured. */
  out: Injection[],
  /** Quick mode: leave the last victim to the teardown instead of restoring 4 instances first. */
  opts: { skipFinalRelease?: boolean } = {},
): Promise<void> {
  const total = plan.reduce((n, p) => n + p.injections, 0);
  let done = 0;
  for (const { fault, injections } of plan) {
    for (let k = 0; k < injections; k++) {
      let ready = await waitSteady(env);
      // The oldest instance: its latency baseline is the most complete one.
      let victim = [...ready].sort((a, b) =>
        (a.startedAt ?? '').localeCompare(b.startedAt ?? ''),
      )[0] as InstanceStatus;
      if (fault === 'slow') {
        const age = now() - Date.parse(victim.startedAt ?? new Date().toISOString());
        if (age < SLOW_MIN_AGE_MS) {
          await sleep(SLOW_MIN_AGE_MS - age);
          ready = await waitSteady(env);
          victim = [...ready].sort((a, b) =>
            (a.startedAt ?? '').localeCompare(b.startedAt ?? ''),
          )[0] as InstanceStatus;
        }
      }
      const port = victim.ports.http;
      if (victim.pid === undefined || port === undefined)
        throw new Error(`instance ${victim.id} has no pid or http port`);
      const target = { pid: victim.pid, url: `http://${victim.ip}:${port}` };
      await sleep(Math.random() * 500);
      const t0 = await inject(target, fault);
      const outAt = await env.watcher.waitOut(victim.id, t0 + BULWARK_WINDOW_MS);
      if (outAt !== undefined) await sleep(Math.max(0, outAt + SETTLE_MS - now()));
      const windowEndAt = now();

      // The incident carries the replacement's readiness (normally 1-3 s after injection); give it 15 s.
      let incident: Incident | undefined;
      let note: string | undefined;
      try {
        incident = await waitFor(
          `incident for ${victim.id} with replacementReadyAt`,
          async () => {
            const i = await incidentFor(env, victim.id, t0);
            return i?.replacementReadyAt ? i : undefined;
          },
          { timeoutMs: 15_000, intervalMs: 200 },
        );
        note = incident.signature;
      } catch (err) {
        if (err instanceof IsolationApiMissing || (err as Error).message.includes('went away')) throw err;
        incident = await incidentFor(env, victim.id, t0).catch(() => undefined);
        note = incident ? `${incident.signature}, no replacementReadyAt` : 'no incident';
      }
      const readyAt = incident?.replacementReadyAt ? Date.parse(incident.replacementReadyAt) : undefined;
      const inj: Injection = {
        system: 'bulwark',
        fault,
        server: victim.id,
        injectedAt: t0,
        windowMs: BULWARK_WINDOW_MS,
        windowEndAt,
        requests: 0,
        errors: 0,
        p99LatencyMs: 0,
        note,
        ...(outAt !== undefined ? { isolateMs: outAt - t0 } : {}),
        ...(readyAt !== undefined ? { replacementReadyMs: readyAt - t0 } : {}),
      };
      out.push(inj);
      log(describe(inj).replace(/, 0\/0 errors.*?(\(|$)/, ' $1'));
      if (++done === total && opts.skipFinalRelease) {
        // Still counted as intended: the teardown deletes it with the app.
        env.unexpected.delete(victim.id);
        if (fault === 'hang' && alive(target.pid)) process.kill(target.pid, 'SIGCONT');
        continue;
      }
      await release(env, victim, target, fault);
    }
  }
}

async function deleteQuarantined(env: BulwarkEnv, id: string): Promise<void> {
  const r = await env.cp.api<unknown>(
    'POST',
    `/api/v1/instances/${encodeURIComponent(id)}/quarantine/delete`,
  );
  if (r.status === 404 || r.status === 503) {
    throw new IsolationApiMissing(
      `POST /api/v1/instances/${id}/quarantine/delete answered ${r.status}: ${JSON.stringify(r.body)}; ` +
        `the quarantine API is needed to remove isolated instances between injections`,
    );
  }
  if (r.status >= 300)
    throw new Error(`quarantine/delete of ${id} answered ${r.status}: ${JSON.stringify(r.body)}`);
}

/** Back to 4 healthy instances: delete the quarantined one, or clear the fault if nothing was quarantined. */
async function release(
  env: BulwarkEnv,
  victim: InstanceStatus,
  target: { pid: number; url: string },
  fault: Fault,
): Promise<void> {
  // A stopped process would only die at the end of its grace period: resume it first.
  if (fault === 'hang' && alive(target.pid)) process.kill(target.pid, 'SIGCONT');
  const current = (await ledgerInstances(env)).find((i) => i.id === victim.id);
  if (current?.phase === 'quarantined') {
    env.unexpected.delete(victim.id);
    await deleteQuarantined(env, victim.id);
    return;
  }
  // Not quarantined (restarted in place, or not isolated at all): clear the fault like a baseline does.
  if ((fault === '5xx' || fault === 'slow' || fault === 'leak') && alive(target.pid)) {
    await setFault(target, { mode: 'none' }).catch(() => undefined);
  }
  await waitFor(
    `instance ${victim.id} healthy again`,
    () => healthy(target.url).then((ok) => ok || !alive(target.pid)),
    {
      timeoutMs: 30_000,
    },
  ).catch(() => undefined);
}
