/**
 * Multi-cluster placement, failover and failback against three real
 * Kubernetes control planes (etcd, kube-apiserver, controller-manager,
 * scheduler, kwok nodes from test/support/kube-harness.ts), driven through the
 * real control plane's HTTP API:
 *
 * 1. three Sites of kind kubernetes are applied at runtime (kubeconfig files);
 * 2. one App, strategy spread, 6 replicas, weights 2:1:1, minimum 1 per site ->
 *    3/2/1 Ready pods, checked in each cluster's own Deployment;
 * 3. dc2's API server is SIGSTOPped: the Site turns unreachable after 3 failed
 *    probes and its share moves to dc1 and dc3 (4/2), measured: time to detect
 *    and time until the moved replicas are Ready;
 * 4. dc2 resumes: its share stays on dc1/dc3 for the failback period
 *    (hysteresis), then returns (3/2/1), measured.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlPlane } from '../../src/controlplane/control-plane.ts';
import type { AppResource, SiteResource } from '../../src/model/types.ts';
import {
  kubeBinaries,
  kubeRequest,
  missingBinariesMessage,
  startKubeClusters,
  type KubeCluster,
} from '../support/kube-harness.ts';

const TOKEN = 'bwk_multi-cluster-test-token-0123456789';
// A loaded 2-core machine can take a few hundred ms to answer /readyz: 1 s timeouts, not 0.5 s.
const PROBE = { intervalMs: 1000, timeoutMs: 1000, failureThreshold: 3, failbackAfterMs: 8000 };

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`,
  );
}

describe('multi-cluster placement and failover (three harness clusters)', () => {
  let clusters: KubeCluster[] = [];
  let cp: ControlPlane | undefined;
  let dir = '';
  const api = async <T>(method: string, p: string, body?: string): Promise<{ status: number; json: T }> => {
    const res = await fetch(`${cp!.url}${p}`, {
      method,
      headers: {
        authorization: `Bearer ${TOKEN}`,
        ...(body !== undefined ? { 'content-type': 'application/yaml' } : {}),
      },
      ...(body !== undefined ? { body } : {}),
      signal: AbortSignal.timeout(10_000),
    });
    return { status: res.status, json: (await res.json()) as T };
  };
  const app = async (): Promise<AppResource> =>
    (await api<AppResource>('GET', '/api/v1/projects/bank/apps/pay')).json;
  const site = async (name: string): Promise<SiteResource> =>
    (await api<SiteResource>('GET', `/api/v1/sites/${name}`)).json;
  /** Ready instances per site as the App's status reports them. */
  const readyBySite = async (): Promise<Record<string, number>> => {
    const a = await app();
    const out: Record<string, number> = { dc1: 0, dc2: 0, dc3: 0 };
    for (const i of a.status?.workloads?.[0]?.instances ?? [])
      if (i.ready) out[i.site] = (out[i.site] ?? 0) + 1;
    return out;
  };
  /** Ready replicas of the pay Deployment in a cluster, from its own API server. */
  const deploymentReady = async (c: KubeCluster): Promise<number> => {
    const res = await kubeRequest(
      c,
      '/apis/apps/v1/namespaces/bulwark-bank/deployments?labelSelector=app.kubernetes.io%2Fmanaged-by%3Dbulwark',
    );
    const items = (res.body as { items?: { status?: { readyReplicas?: number } }[] }).items ?? [];
    return items.reduce((n, d) => n + (d.status?.readyReplicas ?? 0), 0);
  };

  beforeAll(async () => {
    const bins = kubeBinaries();
    if (bins.missing.length > 0) throw new Error(missingBinariesMessage(bins.missing));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-mc-'));
    clusters = await startKubeClusters(['dc1', 'dc2', 'dc3']);
    cp = await ControlPlane.create({
      dataDir: dir,
      port: 0,
      gatewayPort: await freePort(),
      privileged: false,
      bootstrapToken: TOKEN,
      logFile: path.join(dir, 'control-plane.log'),
      resyncIntervalMs: 1000,
    });
  }, 400_000);

  afterAll(async () => {
    await cp?.close({ stopWorkloads: false });
    await Promise.all(clusters.map((c) => c.stop()));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('places by weight, fails over a paused cluster and fails back after the hysteresis', async () => {
    const sites = clusters
      .map(
        (c) => `apiVersion: bulwark.io/v1
kind: Site
metadata: { name: ${c.name} }
spec:
  kind: kubernetes
  displayName: Data center ${c.name}
  kubeconfig: { path: ${c.kubeconfigPath} }
  health: ${JSON.stringify(PROBE)}
`,
      )
      .join('---\n');
    const manifests = `${sites}---
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
    sites:
      - { name: dc1, weight: 2, minReplicas: 1 }
      - { name: dc2, weight: 1, minReplicas: 1 }
      - { name: dc3, weight: 1, minReplicas: 1 }
  workloads:
    - name: api
      type: service
      replicas: 6
      image: registry.bank.local/pay:1.0
      ports: [{ name: http, port: 8080 }]
`;
    const applied = await api<{ results: { kind: string; action: string }[] }>(
      'POST',
      '/api/v1/apply',
      manifests,
    );
    expect(applied.status).toBe(200);

    // Sites registered at runtime, probed, and never showing credentials.
    for (const name of ['dc1', 'dc2', 'dc3']) {
      const s = await until(`Site ${name} healthy`, 60_000, async () => {
        const r = await site(name);
        return r.status?.health?.state === 'healthy' ? r : undefined;
      });
      const ready = s.status?.conditions.find((c) => c.type === 'Ready');
      expect(ready).toMatchObject({ status: 'True', reason: 'Healthy' });
      expect(ready?.lastProbeTime).toBeDefined();
      expect(s.status?.conditions.find((c) => c.type === 'Reachable')).toMatchObject({ status: 'True' });
      expect(JSON.stringify(s)).not.toContain(clusters[0]!.token);
    }

    // 6 replicas split 3/2/1, Ready in each cluster's own Deployment.
    await until('3/2/1 ready', 120_000, async () => {
      const r = await readyBySite();
      return r.dc1 === 3 && r.dc2 === 2 && r.dc3 === 1 ? r : undefined;
    });
    await until('Deployments 3/2/1 ready in the clusters', 30_000, async () =>
      (await Promise.all(clusters.map(deploymentReady))).join() === '3,2,1' ? true : undefined,
    );
    const before = await app();
    expect(before.status?.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(before.status?.placement?.sites.map((s) => [s.name, s.replicas.api])).toEqual([
      ['dc1', 3],
      ['dc2', 2],
      ['dc3', 1],
    ]);

    // Failover: dc2's API server stops answering.
    const dc2 = clusters[1]!;
    const tPause = Date.now();
    await dc2.pause();
    await until('dc2 unreachable', 20_000, async () =>
      (await site('dc2')).status?.health?.state === 'unreachable' ? true : undefined,
    );
    const detectMs = Date.now() - tPause;
    const moved = await until('dc1=4, dc3=2 ready', 60_000, async () => {
      const r = await readyBySite();
      return r.dc1 === 4 && r.dc3 === 2 ? r : undefined;
    });
    const failoverReadyMs = Date.now() - tPause;
    expect(moved.dc2).toBe(0); // an unreachable site's instances are not counted
    await until('Deployments 4 and 2 ready in dc1 and dc3', 30_000, async () =>
      [await deploymentReady(clusters[0]!), await deploymentReady(clusters[2]!)].join() === '4,2'
        ? true
        : undefined,
    );
    const during = await app();
    const dc2Placement = during.status?.placement?.sites.find((s) => s.name === 'dc2');
    expect(dc2Placement).toMatchObject({ state: 'unreachable', replicas: { api: 0 } });
    expect(dc2Placement?.reason).toMatch(/unreachable since .*3 consecutive probes failed/);
    expect(during.status?.placement?.lastChange?.reason).toMatch(
      /dc2 unreachable.*-> api: dc1=4 dc2=0 dc3=2/,
    );
    const dc2Site = await site('dc2');
    expect(dc2Site.status?.conditions.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'Unreachable',
    });
    expect(dc2Site.status?.conditions.find((c) => c.type === 'Reachable')?.status).toBe('False');
    // Bounded detection: 3 probes started 1 s apart, the last one timing out after 1 s, plus slack.
    expect(detectMs).toBeLessThan(PROBE.failureThreshold * PROBE.intervalMs + PROBE.timeoutMs + 3000);

    // Failback: dc2 answers again; its share stays away for the failback period.
    const tResume = Date.now();
    await dc2.resume();
    await until('dc2 recovering', 15_000, async () =>
      (await site('dc2')).status?.health?.state === 'recovering' ? true : undefined,
    );
    const recovering = await site('dc2');
    expect(recovering.status?.conditions.find((c) => c.type === 'Ready')?.reason).toBe('FailbackPending');
    // Half-way through the period the split has not moved back.
    await new Promise((r) => setTimeout(r, PROBE.failbackAfterMs / 2));
    expect((await app()).status?.placement?.sites.map((s) => s.replicas.api)).toEqual([4, 0, 2]);
    await until('3/2/1 ready again', 60_000, async () => {
      const r = await readyBySite();
      const a = await app();
      const shares = a.status?.placement?.sites.map((s) => s.replicas.api);
      return r.dc1 === 3 && r.dc2 === 2 && r.dc3 === 1 && JSON.stringify(shares) === '[3,2,1]'
        ? r
        : undefined;
    });
    const failbackMs = Date.now() - tResume;
    expect(failbackMs).toBeGreaterThanOrEqual(PROBE.failbackAfterMs);
    await until('Deployments 3/2/1 ready again in the clusters', 30_000, async () =>
      (await Promise.all(clusters.map(deploymentReady))).join() === '3,2,1' ? true : undefined,
    );
    const log = fs.readFileSync(path.join(dir, 'control-plane.log'), 'utf8');
    expect(log).toMatch(/site unreachable: its share moves to the other sites/);
    expect(log).toMatch(/placement changed/);
    expect(log).not.toContain(dc2.token);

    // Removing a site at runtime: once no app uses it, deleting the Site stops it.
    expect((await api('DELETE', '/api/v1/projects/bank/apps/pay')).status).toBe(200);
    expect((await api('DELETE', '/api/v1/sites/dc3')).status).toBe(200);
    await until('dc3 stopped', 10_000, () => Promise.resolve(cp!.sites.has('dc3') ? undefined : true));

    const summary = { detectMs, failoverReadyMs, failbackMs, failbackAfterMs: PROBE.failbackAfterMs };
    console.log(`multi-cluster timings ${JSON.stringify(summary)}`);
  }, 400_000);
});
