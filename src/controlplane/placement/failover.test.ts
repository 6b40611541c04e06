/**
 * The failover/failback wiring of the real control plane (API, store, Site
 * resources, probers, per-site reconcilers, placement, status writer) with an
 * in-memory stand-in for the Kubernetes driver, so the timing rules are checked
 * in seconds on any machine. The same flow against three real API servers is
 * test/integration/multi-cluster.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppResource, SiteResource } from '../../model/types.ts';
import type { DriverEvent, InstanceSpec, InstanceStatus } from '../../runtime/driver.ts';
import { freePort } from '../../util/ports.ts';
import { ControlPlane } from '../control-plane.ts';
import type { KubernetesSiteDriver } from './kubernetes-sites.ts';

const TOKEN = 'bwk_failover-unit-test-token-0123456789';

/** A cluster in memory: instances are Ready at once; `down` makes every call hang like a SIGSTOPped API server. */
class MemoryCluster implements KubernetesSiteDriver {
  readonly kind = 'kubernetes' as const;
  down = false;
  private readonly items = new Map<string, InstanceStatus>();
  private readonly listeners = new Set<(ev: DriverEvent) => void>();
  readonly site: string;
  constructor(site: string) {
    this.site = site;
  }
  private gate(): Promise<void> {
    return this.down ? new Promise(() => undefined) : Promise.resolve();
  }
  async health(): Promise<{ ok: boolean; message: string }> {
    await this.gate();
    return { ok: true, message: 'answered' };
  }
  start(): Promise<void> {
    return this.gate();
  }
  status(): { server: string } {
    return { server: `https://127.0.0.1/${this.site}` };
  }
  capabilities() {
    return { networkNamespaces: { available: false }, cgroups: { available: false } };
  }
  async ensure(spec: InstanceSpec): Promise<InstanceStatus> {
    await this.gate();
    const inst: InstanceStatus = {
      id: spec.id,
      site: spec.site,
      project: spec.project,
      app: spec.app,
      workload: spec.workload,
      ordinal: spec.ordinal,
      specHash: spec.specHash,
      phase: 'ready',
      ready: true,
      ip: '10.0.0.1',
      ports: {},
      restarts: 0,
      isolation: {},
      startedAt: new Date().toISOString(),
    };
    this.items.set(spec.id, inst);
    for (const l of this.listeners) l({ type: 'changed', instance: inst });
    return inst;
  }
  async remove(id: string): Promise<void> {
    await this.gate();
    this.items.delete(id);
    for (const l of this.listeners) l({ type: 'removed', id });
  }
  get(id: string): InstanceStatus | undefined {
    return this.items.get(id);
  }
  list(): InstanceStatus[] {
    return [...this.items.values()];
  }
  watch(l: (ev: DriverEvent) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  logs(): Promise<string[]> {
    return Promise.resolve([]);
  }
  stats(): undefined {
    return undefined;
  }
  followLogs(): () => void {
    return () => undefined;
  }
  quarantine(id: string): Promise<InstanceStatus> {
    return Promise.resolve(this.items.get(id)!);
  }
  unquarantine(id: string): Promise<InstanceStatus> {
    return Promise.resolve(this.items.get(id)!);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('failover and failback through the control plane (in-memory clusters)', () => {
  const clusters = new Map<string, MemoryCluster>();
  let cp: ControlPlane;
  let dir: string;
  const api = async <T>(method: string, p: string, body?: string): Promise<{ status: number; json: T }> => {
    const res = await fetch(`${cp.url}${p}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/yaml' } : {}) },
      ...(body ? { body } : {}),
    });
    return { status: res.status, json: (await res.json()) as T };
  };
  const shares = async (): Promise<number[]> =>
    (
      (await api<AppResource>('GET', '/api/v1/projects/bank/apps/pay')).json.status?.placement?.sites ?? []
    ).map((s) => s.replicas.api ?? -1);
  const counts = (): number[] => ['dc1', 'dc2', 'dc3'].map((s) => clusters.get(s)?.list().length ?? -1);
  const health = async (name: string): Promise<string | undefined> =>
    (await api<SiteResource>('GET', `/api/v1/sites/${name}`)).json.status?.health?.state;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-failover-'));
    const kubeconfig = path.join(dir, 'kubeconfig');
    fs.writeFileSync(kubeconfig, 'unused by the in-memory clusters\n');
    cp = await ControlPlane.create({
      dataDir: dir,
      port: 0,
      gatewayPort: await freePort(),
      privileged: false,
      bootstrapToken: TOKEN,
      logLevel: 'silent',
      resyncIntervalMs: 500,
      kubernetesDriverFactory: (c) => {
        const m = new MemoryCluster(c.site);
        clusters.set(c.site, m);
        return m;
      },
    });
    const site = (n: string): string => `apiVersion: bulwark.io/v1
kind: Site
metadata: { name: ${n} }
spec:
  kind: kubernetes
  kubeconfig: { path: ${kubeconfig} }
  health: { intervalMs: 200, timeoutMs: 100, failureThreshold: 3, failbackAfterMs: 2000 }
`;
    const res = await api(
      'POST',
      '/api/v1/apply',
      `${['dc1', 'dc2', 'dc3'].map(site).join('---\n')}---
apiVersion: bulwark.io/v1
kind: Project
metadata: { name: bank }
spec: { tenant: retail }
---
apiVersion: bulwark.io/v1
kind: App
metadata: { name: pay, project: bank }
spec:
  placement:
    strategy: spread
    sites: [{ name: dc1, weight: 2, minReplicas: 1 }, { name: dc2, weight: 1, minReplicas: 1 }, { name: dc3, weight: 1, minReplicas: 1 }]
  workloads: [{ name: api, type: service, replicas: 6, image: pay:1 }]
`,
    );
    expect(res.status).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await cp?.close({ stopWorkloads: true });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('registers Sites applied at runtime and splits 6 replicas 3/2/1', async () => {
    await until('3/2/1', 15_000, () => Promise.resolve(counts().join() === '3,2,1' ? true : undefined));
    for (const s of ['dc1', 'dc2', 'dc3'])
      await until(`${s} healthy`, 5000, async () => ((await health(s)) === 'healthy' ? true : undefined));
    expect(await shares()).toEqual([3, 2, 1]);
    const app = (await api<AppResource>('GET', '/api/v1/projects/bank/apps/pay')).json;
    await until('Ready', 5000, async () => {
      const a = (await api<AppResource>('GET', '/api/v1/projects/bank/apps/pay')).json;
      return a.status?.conditions.find((c) => c.type === 'Ready')?.status === 'True' ? true : undefined;
    });
    expect(app.status?.workloads?.[0]?.instances.map((i) => i.site).sort()).toEqual([
      'dc1',
      'dc1',
      'dc1',
      'dc2',
      'dc2',
      'dc3',
    ]);
  });

  it('moves an unreachable site’s share after 3 failed probes and brings it back only after the failback period', async () => {
    const dc2 = clusters.get('dc2')!;
    const t0 = Date.now();
    dc2.down = true;
    await until('dc2 unreachable', 5000, async () =>
      (await health('dc2')) === 'unreachable' ? true : undefined,
    );
    const detectMs = Date.now() - t0;
    // 3 probes 200 ms apart with a 100 ms timeout: not before ~2 intervals, well within 2 s.
    expect(detectMs).toBeGreaterThanOrEqual(400);
    expect(detectMs).toBeLessThan(2000);
    await until('dc1=4, dc3=2', 5000, () =>
      Promise.resolve(counts()[0] === 4 && counts()[2] === 2 ? true : undefined),
    );
    expect(await shares()).toEqual([4, 0, 2]);
    const app = (await api<AppResource>('GET', '/api/v1/projects/bank/apps/pay')).json;
    expect(app.status?.placement?.lastChange?.reason).toMatch(/dc2 unreachable .*-> api: dc1=4 dc2=0 dc3=2/);
    expect(app.status?.workloads?.[0]?.readyReplicas).toBe(6);
    // The unreachable site was left alone (its reconciler is paused): its 2 instances are still there.
    expect(dc2.list()).toHaveLength(2);

    const tBack = Date.now();
    dc2.down = false;
    await until('dc2 recovering', 3000, async () =>
      (await health('dc2')) === 'recovering' ? true : undefined,
    );
    const site = (await api<SiteResource>('GET', '/api/v1/sites/dc2')).json;
    expect(site.status?.conditions.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'FailbackPending',
    });
    await new Promise((r) => setTimeout(r, 1000));
    expect(await shares()).toEqual([4, 0, 2]); // still inside the 2 s failback period
    await until('3/2/1 again', 6000, async () =>
      counts().join() === '3,2,1' && (await shares()).join() === '3,2,1' ? true : undefined,
    );
    expect(Date.now() - tBack).toBeGreaterThanOrEqual(2000);

    // Both moves are in the automatic-actions feed, with the per-site scalings they made.
    const feed = (
      await api<{ items: { kind: string; summary: string; changes?: unknown[] }[] }>(
        'GET',
        '/api/v1/actions?project=bank&app=pay',
      )
    ).json.items.reverse();
    expect(feed.map((a) => a.kind)[0]).toBe('failover');
    expect(feed[0]).toMatchObject({
      summary: expect.stringMatching(/^failover of bank\/pay: dc2 not usable; /),
      changes: [
        { workload: 'api', site: 'dc1', from: 3, to: 4 },
        { workload: 'api', site: 'dc2', from: 2, to: 0 },
        { workload: 'api', site: 'dc3', from: 1, to: 2 },
      ],
    });
    expect(feed.map((a) => a.kind)).toContain('failback');
  }, 30_000);

  it('a flapping site never gets its share back', async () => {
    const dc3 = clusters.get('dc3')!;
    dc3.down = true;
    await until('dc3 unreachable', 5000, async () =>
      (await health('dc3')) === 'unreachable' ? true : undefined,
    );
    for (let i = 0; i < 3; i++) {
      dc3.down = false;
      await new Promise((r) => setTimeout(r, 700));
      dc3.down = true;
      await new Promise((r) => setTimeout(r, 400));
      expect((await shares())[2]).toBe(0);
    }
    dc3.down = false;
  }, 30_000);

  it('stops a Site deleted at runtime once no app uses it', async () => {
    expect((await api('DELETE', '/api/v1/sites/dc3')).status).toBe(409);
    expect((await api('DELETE', '/api/v1/projects/bank/apps/pay')).status).toBe(200);
    expect((await api('DELETE', '/api/v1/sites/dc3')).status).toBe(200);
    await until('dc3 gone', 5000, () => Promise.resolve(cp.sites.has('dc3') ? undefined : true));
    expect([...cp.sites.keys()].sort()).toEqual(['dc1', 'dc2', 'local']);
  });
});
