/**
 * The big-apply scenario, shared by bench/big-apply/run.ts and
 * test/integration/big-apply.test.ts: a real control plane (`bulwark
 * server`, a child process), a probe loop that GETs the health route and two
 * reads (one app, /api/v1/status) while N apps are applied in batches of the
 * per-request limit (1000 resources), then the server's RSS, and a restart
 * on the data dir holding all N apps. The probe also reads the apply's
 * progress (GET /api/v1/applies) and keeps what it saw.
 */
import { readFileSync } from 'node:fs';
import {
  processesOf,
  startControlPlane,
  type ControlPlaneProcess,
  type StartOptions,
} from '../../test/support/control-plane-process.ts';

export const PROJECT = 'big';

/** One batch of YAML manifests: apps `a<from>`..`a<to-1>`, no replicas (nothing is started). */
export function batchYaml(from: number, to: number, withProject: boolean): string {
  const docs: string[] = [];
  if (withProject) {
    docs.push(
      `apiVersion: bulwark.io/v1\nkind: Project\nmetadata: { name: ${PROJECT} }\nspec: { tenant: bench }\n`,
    );
  }
  for (let i = from; i < to; i++) {
    docs.push(
      `apiVersion: bulwark.io/v1\nkind: App\nmetadata: { name: a${i}, project: ${PROJECT} }\n` +
        `spec:\n  workloads:\n    - name: web\n      type: service\n      replicas: 0\n` +
        `      run: { command: ["/bin/true"] }\n`,
    );
  }
  return docs.join('---\n');
}

export interface Latencies {
  count: number;
  p50: number;
  p99: number;
  max: number;
  errors: number;
}

function summarise(ms: number[], errors: number): Latencies {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]! : NaN);
  const r = (x: number) => Math.round(x * 10) / 10;
  return { count: s.length, p50: r(q(0.5)), p99: r(q(0.99)), max: r(s.at(-1) ?? NaN), errors };
}

export interface ProgressSeen {
  /** Snapshots of GET /api/v1/applies with an apply running. */
  snapshots: number;
  /** Distinct `done` counts seen on running applies (more than one: progress moved). */
  distinctDone: number;
  /** Phases seen on running applies. */
  phases: string[];
}

/** Probes health and reads back to back (one request in flight per route) until stopped. */
export class Prober {
  private readonly samples: Record<'health' | 'read' | 'status', { ms: number[]; errors: number }> = {
    health: { ms: [], errors: 0 },
    read: { ms: [], errors: 0 },
    status: { ms: [], errors: 0 },
  };
  private readonly done = new Set<number>();
  private readonly phases = new Set<string>();
  private snapshots = 0;
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(
    cp: ControlPlaneProcess,
    intervalMs = 10,
    /** App the read route fetches (must exist before probing). */
    readPath = `/api/v1/projects/${PROJECT}/apps/a0`,
  ) {
    const headers = { authorization: `Bearer ${cp.token}` };
    const loop = async (name: keyof Prober['samples'], path: string, auth: boolean) => {
      while (this.running) {
        const t0 = performance.now();
        try {
          const res = await fetch(cp.url + path, {
            ...(auth ? { headers } : {}),
            signal: AbortSignal.timeout(10_000),
          });
          await res.arrayBuffer();
          if (res.ok) this.samples[name].ms.push(performance.now() - t0);
          else this.samples[name].errors++;
        } catch {
          this.samples[name].errors++;
        }
        await new Promise((r) => setTimeout(r, intervalMs));
      }
    };
    const progress = async () => {
      while (this.running) {
        try {
          const res = await fetch(`${cp.url}/api/v1/applies`, {
            headers,
            signal: AbortSignal.timeout(10_000),
          });
          const body = (await res.json()) as { running?: { done: number; phase: string }[] };
          for (const r of body.running ?? []) {
            this.snapshots++;
            this.done.add(r.done);
            this.phases.add(r.phase);
          }
        } catch {
          // progress is informative; latencies are measured on the other routes
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    this.loops = [
      loop('health', '/api/v1/healthz', false),
      loop('read', readPath, true),
      loop('status', '/api/v1/status', true),
      progress(),
    ];
  }

  progressSeen(): ProgressSeen {
    return { snapshots: this.snapshots, distinctDone: this.done.size, phases: [...this.phases].sort() };
  }

  async stop(): Promise<Record<'health' | 'read' | 'status', Latencies>> {
    this.running = false;
    await Promise.all(this.loops);
    return {
      health: summarise(this.samples.health.ms, this.samples.health.errors),
      read: summarise(this.samples.read.ms, this.samples.read.errors),
      status: summarise(this.samples.status.ms, this.samples.status.errors),
    };
  }
}

export function rssMiB(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s*(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: Math.round(kb('VmRSS') / 1024), peak: Math.round(kb('VmHWM') / 1024) };
}

export interface BigApplyResult {
  apps: number;
  batches: number;
  idle: Record<'health' | 'read' | 'status', Latencies>;
  during: Record<'health' | 'read' | 'status', Latencies>;
  applyMs: number;
  batchMs: number[];
  storedApps: number;
  rssMiB: number;
  peakRssMiB: number;
  progress: ProgressSeen;
}

export async function applyYaml(
  cp: ControlPlaneProcess,
  yaml: string,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${cp.url}/api/v1/apply`, {
    method: 'POST',
    headers: { authorization: `Bearer ${cp.token}`, 'content-type': 'application/yaml' },
    body: yaml,
    signal: AbortSignal.timeout(300_000),
  });
  return { status: res.status, body: (await res.json()) as unknown };
}

export async function seedProject(cp: ControlPlaneProcess): Promise<void> {
  const res = await cp.api('POST', '/api/v1/apply', batchYaml(0, 1, true), true);
  if (res.status !== 200) throw new Error(`seeding failed: ${res.status} ${JSON.stringify(res.body)}`);
}

/** Apply `apps` apps in batches of `batch` while probing; the project and app a0 exist first. */
export async function bigApply(
  cp: ControlPlaneProcess,
  apps: number,
  opts: { batch?: number; idleMs?: number; log?: (line: string) => void } = {},
): Promise<BigApplyResult> {
  const batch = opts.batch ?? 1000;
  await seedProject(cp);
  const idleProbe = new Prober(cp);
  await new Promise((r) => setTimeout(r, opts.idleMs ?? 3000));
  const idle = await idleProbe.stop();

  const probe = new Prober(cp);
  const batchMs: number[] = [];
  const t0 = performance.now();
  let applyMs = 0;
  let during: Record<'health' | 'read' | 'status', Latencies>;
  try {
    for (let from = 0; from < apps; from += batch) {
      const tb = performance.now();
      // Not cp.api: its 30 s timeout is less than one request of 1000 takes on a loaded machine.
      const res = await applyYaml(cp, batchYaml(from, Math.min(apps, from + batch), false));
      if (res.status !== 200)
        throw new Error(`batch at a${from}: HTTP ${res.status} ${JSON.stringify(res.body).slice(0, 500)}`);
      batchMs.push(Math.round(performance.now() - tb));
      if (opts.log)
        opts.log(`applied a${from}..a${Math.min(apps, from + batch) - 1} in ${batchMs.at(-1)} ms`);
    }
  } finally {
    applyMs = Math.round(performance.now() - t0);
    during = await probe.stop();
  }
  const mem = rssMiB(cp.pid);
  const list = await cp.api<{ items: unknown[] }>('GET', `/api/v1/apps?project=${PROJECT}`);
  return {
    apps,
    batches: batchMs.length,
    idle,
    during,
    applyMs,
    batchMs,
    storedApps: list.body.items.length,
    rssMiB: mem.rss,
    peakRssMiB: mem.peak,
    progress: probe.progressSeen(),
  };
}

/**
 * SIGTERM, then whatever still runs from the data dir (HAProxy, kept by design). Not
 * stopAndClean: that deletes every app through the API, one request each (10,000 here),
 * and these apps have no instances to clean up.
 */
export async function stopQuietly(cp: ControlPlaneProcess): Promise<void> {
  await cp.kill('SIGTERM');
  for (const pid of processesOf(cp.dataDir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
}

export interface RestartResult {
  /** From spawning the restarted server until its health route answered. */
  healthyAfterMs: number;
  /** Probes during the first seconds after it answered (the reconcile of all apps runs then). */
  after: Record<'health' | 'read' | 'status', Latencies>;
  storedApps: number;
  rssMiB: number;
}

export async function restart(
  cp: ControlPlaneProcess,
  opts: Partial<StartOptions> & { probeMs?: number } = {},
): Promise<{ cp: ControlPlaneProcess; result: RestartResult }> {
  const port = Number(new URL(cp.url).port);
  await cp.kill('SIGKILL');
  const t0 = performance.now();
  const next = await startControlPlane({
    dataDir: cp.dataDir,
    token: cp.token,
    port,
    gatewayPort: cp.gatewayPort,
    ...opts,
  });
  const healthyAfterMs = Math.round(performance.now() - t0);
  const probe = new Prober(next);
  await new Promise((r) => setTimeout(r, opts.probeMs ?? 5000));
  const after = await probe.stop();
  const list = await next.api<{ items: unknown[] }>('GET', `/api/v1/apps?project=${PROJECT}`);
  return {
    cp: next,
    result: { healthyAfterMs, after, storedApps: list.body.items.length, rssMiB: rssMiB(next.pid).rss },
  };
}
