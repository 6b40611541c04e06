/**
 * Kubernetes benchmark (issue 4), on three harness clusters started here:
 *
 *  A. Apply N apps x 3 replicas across 3 clusters (strategy spread, weights 1:1:1, so one
 *     pod per app per cluster) through Bulwark's API, time until every App is Ready;
 *     anchor in the same run: the very objects Bulwark created (Deployments, Services,
 *     PodDisruptionBudgets, read back from the clusters, moved to a fresh namespace and
 *     relabelled so Bulwark ignores them) applied with `kubectl apply --server-side`, one
 *     kubectl per cluster in parallel, time until every Deployment is Ready. Ratio = ours/anchor.
 *  B. Decision-to-out-of-EndpointSlice for Q quarantines with the KubernetesDriver on one
 *     cluster: driver.quarantine(id) relabels the pod; an EndpointSlice watch notes when
 *     the pod's address is no longer a ready endpoint, and when the replacement makes the
 *     Service whole again. p50/p99.
 *
 *   node bench/kubernetes/run.ts [--quick]      (npm run bench:kubernetes -- --quick)
 *
 * Last stdout line: a JSON summary. Takes /tmp/bulwark-bench.lock through the npm script.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ControlPlane } from '../../src/controlplane/control-plane.ts';
import type { AppResource } from '../../src/model/types.ts';
import type { InstanceSpec } from '../../src/runtime/driver.ts';
import { KubernetesDriver } from '../../src/runtime/kubernetes/kubernetes-driver.ts';
import { freePort } from '../../src/util/ports.ts';
import { sleep } from '../../src/util/time.ts';
import {
  kubeBinaries,
  kubeRequest,
  missingBinariesMessage,
  startKubeClusters,
  type KubeCluster,
  type KubeObject,
} from '../../test/support/kube-harness.ts';

const execFileP = promisify(execFile);
const quick = process.argv.includes('--quick');
const APPS = quick ? 10 : 100;
const QUARANTINES = quick ? 8 : 50;
const ROUNDS = quick ? 1 : 2;
const TOKEN = 'bwk_bench-kubernetes-token-0123456789abcdef';
const log = (msg: string): void => console.error(`bench:kubernetes ${msg}`);

function pct(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
const median = (v: number[]): number => pct(v, 50);

async function until<T>(
  what: string,
  timeoutMs: number,
  fn: () => Promise<T | undefined>,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

function loadAverage(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

// ---------------------------------------------------------------- A: apply to Ready

async function api<T>(cp: ControlPlane, method: string, p: string, body?: string): Promise<T> {
  const res = await fetch(`${cp.url}${p}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/yaml' } : {}) },
    ...(body ? { body } : {}),
    signal: AbortSignal.timeout(60_000),
  });
  if (res.status >= 300) throw new Error(`${method} ${p}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

function appsManifest(round: number): string {
  const docs: string[] = [];
  for (let i = 0; i < APPS; i++) {
    docs.push(`apiVersion: bulwark.io/v1
kind: App
metadata: { name: app-${round}-${i}, project: bench }
spec:
  placement:
    strategy: spread
    sites: [{ name: dc1 }, { name: dc2 }, { name: dc3 }]
  workloads:
    - name: api
      type: service
      replicas: 3
      image: registry.bank.local/bench:1.0
      ports: [{ name: http, port: 8080 }]
`);
  }
  return docs.join('---\n');
}

async function podCount(c: KubeCluster, ns: string): Promise<number> {
  const r = await kubeRequest<{ items?: unknown[] }>(c, `/api/v1/namespaces/${ns}/pods`);
  return r.body.items?.length ?? 0;
}

async function readyDeployments(c: KubeCluster, ns: string): Promise<{ total: number; ready: number }> {
  const r = await kubeRequest<{
    items?: { spec?: { replicas?: number }; status?: { readyReplicas?: number } }[];
  }>(c, `/apis/apps/v1/namespaces/${ns}/deployments`);
  const items = r.body.items ?? [];
  return {
    total: items.length,
    ready: items.filter((d) => (d.status?.readyReplicas ?? 0) >= (d.spec?.replicas ?? 1)).length,
  };
}

async function bulwarkRound(cp: ControlPlane, clusters: KubeCluster[], round: number): Promise<number> {
  const t0 = performance.now();
  await api(cp, 'POST', '/api/v1/apply', appsManifest(round));
  const prefix = `app-${round}-`;
  await until(`${APPS} apps Ready`, 600_000, async () => {
    const list = await api<{ items: AppResource[] }>(cp, 'GET', '/api/v1/apps?project=bench');
    const mine = list.items.filter((a) => a.metadata.name.startsWith(prefix));
    const ready = mine.filter(
      (a) =>
        a.status?.observedGeneration === a.metadata.generation &&
        a.status?.conditions.some((c) => c.type === 'Ready' && c.status === 'True'),
    );
    return ready.length === APPS ? true : undefined;
  });
  // The anchor's end point is every Deployment's own status saying Ready, which the
  // deployment controller writes after the pods turn Ready: Bulwark's round ends at the same
  // point (App Ready above, then the clusters' Deployment status), so the ratio is fair.
  await until(`${APPS} Deployments Ready x${clusters.length}`, 120_000, async () => {
    const ds = await Promise.all(clusters.map((c) => readyDeployments(c, 'bulwark-bench')));
    return ds.every((d) => d.ready >= APPS) ? true : undefined;
  });
  return performance.now() - t0;
}

/** Bulwark's own objects, read back, as kubectl would apply them into `ns`. */
async function captureObjects(c: KubeCluster, ns: string): Promise<KubeObject[]> {
  const out: KubeObject[] = [{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }];
  for (const [group, plural, kind] of [
    ['/apis/apps/v1', 'deployments', 'Deployment'],
    ['/api/v1', 'services', 'Service'],
    ['/apis/policy/v1', 'poddisruptionbudgets', 'PodDisruptionBudget'],
  ] as const) {
    const r = await kubeRequest<{ items?: KubeObject[] }>(c, `${group}/namespaces/bulwark-bench/${plural}`);
    for (const o of r.body.items ?? []) {
      const m = o.metadata as Record<string, unknown>;
      const obj: KubeObject = {
        apiVersion: group === '/api/v1' ? 'v1' : group.replace('/apis/', ''),
        kind,
        metadata: { name: m.name, namespace: ns, labels: m.labels ?? {}, annotations: m.annotations ?? {} },
        spec: structuredClone(o.spec),
      };
      if (kind === 'Service') {
        delete obj.spec.clusterIP;
        delete obj.spec.clusterIPs;
      }
      out.push(obj);
    }
  }
  // Same objects, but not Bulwark's: its informers select managed-by=bulwark.
  const text = JSON.stringify(out).replaceAll(
    '"app.kubernetes.io/managed-by":"bulwark"',
    '"app.kubernetes.io/managed-by":"anchor"',
  );
  return JSON.parse(text) as KubeObject[];
}

async function anchorRound(
  clusters: KubeCluster[],
  objects: Map<string, KubeObject[]>,
  round: number,
  dir: string,
): Promise<number> {
  const ns = `anchor-${round}`;
  const kubectl = path.join(kubeBinaries().dir, 'kubectl');
  const files = clusters.map((c) => {
    const items = JSON.parse(
      JSON.stringify(objects.get(c.name)).replaceAll('"namespace":"anchor"', `"namespace":"${ns}"`),
    ) as KubeObject[];
    items[0]!.metadata.name = ns;
    const f = path.join(dir, `anchor-${c.name}-${round}.json`);
    fs.writeFileSync(f, JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
    return f;
  });
  const t0 = performance.now();
  await Promise.all(
    clusters.map((c, i) =>
      execFileP(
        kubectl,
        [
          '--kubeconfig',
          c.kubeconfigPath,
          'apply',
          '--server-side',
          '--field-manager=anchor',
          '-f',
          files[i]!,
        ],
        {
          maxBuffer: 64 * 1024 * 1024,
        },
      ),
    ),
  );
  await until(`anchor ${APPS} Deployments Ready x3`, 600_000, async () => {
    const ds = await Promise.all(clusters.map((c) => readyDeployments(c, ns)));
    return ds.every((d) => d.total === APPS && d.ready === APPS) ? true : undefined;
  });
  const ms = performance.now() - t0;
  await Promise.all(
    clusters.map((c) =>
      execFileP(kubectl, ['--kubeconfig', c.kubeconfigPath, 'delete', 'namespace', ns, '--wait=false']),
    ),
  );
  await until('anchor pods gone', 300_000, async () =>
    (await Promise.all(clusters.map((c) => podCount(c, ns)))).every((n) => n === 0) ? true : undefined,
  );
  return ms;
}

async function deleteApps(cp: ControlPlane, clusters: KubeCluster[], round: number): Promise<void> {
  for (let i = 0; i < APPS; i++) await api(cp, 'DELETE', `/api/v1/projects/bench/apps/app-${round}-${i}`);
  await until('Bulwark pods gone', 300_000, async () =>
    (await Promise.all(clusters.map((c) => podCount(c, 'bulwark-bench')))).every((n) => n === 0)
      ? true
      : undefined,
  );
}

// ---------------------------------------------------------------- B: quarantine

interface Slice {
  metadata: { name: string };
  endpoints?: { addresses: string[]; conditions?: { ready?: boolean } }[];
}

async function quarantineBench(c: KubeCluster): Promise<{ outMs: number[]; replacedMs: number[] }> {
  const driver = new KubernetesDriver({ site: 'qbench', kubeconfigPath: c.kubeconfigPath });
  await driver.start();
  const base = {
    site: 'qbench',
    project: 'qbench',
    app: 'pay',
    workload: 'api',
    image: 'registry.bank.local/pay:1.0',
    env: {},
    ports: [{ name: 'http', port: 8080 }],
    restartPolicy: 'Always' as const,
    specHash: 'bench-v1',
  };
  const REPLICAS = 3;
  const ensureOne = async (ordinal: number, suffix: string): Promise<void> => {
    const spec: InstanceSpec = { ...base, id: `qbench.pay.api-${ordinal}-${suffix}`, ordinal };
    await driver.ensure(spec);
  };
  for (let i = 0; i < REPLICAS; i++) await ensureOne(i, 'a');
  await until('qbench instances ready', 120_000, () =>
    Promise.resolve(driver.list().filter((i) => i.ready).length >= REPLICAS ? true : undefined),
  );
  const slices = new Map<string, Slice>();
  const listeners = new Set<() => void>();
  const abort = new AbortController();
  const readyAddresses = (): Set<string> => {
    const out = new Set<string>();
    for (const s of slices.values())
      for (const e of s.endpoints ?? [])
        if (e.conditions?.ready !== false) for (const a of e.addresses) out.add(a);
    return out;
  };
  const watch = driver.client
    .watch<Slice & { kind: string; apiVersion: string }>(
      'EndpointSlice',
      'bulwark-qbench',
      { timeoutSeconds: 600 },
      (ev) => {
        if (ev.type === 'DELETED') slices.delete(ev.object.metadata.name);
        else if (ev.type === 'ADDED' || ev.type === 'MODIFIED')
          slices.set(ev.object.metadata.name, ev.object as Slice);
        for (const l of listeners) l();
      },
      abort.signal,
    )
    .catch(() => undefined);
  const waitSlices = (pred: () => boolean, timeoutMs: number): Promise<number> =>
    new Promise((resolve, reject) => {
      if (pred()) return resolve(performance.now());
      const t = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`EndpointSlice condition not met within ${timeoutMs} ms`));
      }, timeoutMs);
      const check = (): void => {
        if (!pred()) return;
        clearTimeout(t);
        listeners.delete(check);
        resolve(performance.now());
      };
      listeners.add(check);
    });
  await waitSlices(() => readyAddresses().size >= REPLICAS, 60_000);
  const outMs: number[] = [];
  const replacedMs: number[] = [];
  for (let q = 0; q < QUARANTINES; q++) {
    const victim = driver
      .list()
      .find((i) => i.ready && i.phase !== 'quarantined' && i.ip && readyAddresses().has(i.ip));
    if (!victim) throw new Error('no ready instance in the EndpointSlice to quarantine');
    const ip = victim.ip;
    const t0 = performance.now();
    const out = waitSlices(() => !readyAddresses().has(ip), 30_000);
    await driver.quarantine(victim.id, { reason: `bench quarantine ${q}` });
    // What the reconciler does next: a new instance for the ordinal (the ReplicaSet's
    // replacement pod is already starting; it binds to this instance).
    await ensureOne(victim.ordinal, `q${q}`);
    outMs.push((await out) - t0);
    const whole = await waitSlices(() => readyAddresses().size >= REPLICAS, 60_000);
    replacedMs.push(whole - t0);
    await driver.remove(victim.id);
  }
  abort.abort();
  await watch;
  await driver.close({ stopInstances: true });
  return { outMs, replacedMs };
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const bins = kubeBinaries();
  if (bins.missing.length > 0) throw new Error(missingBinariesMessage(bins.missing));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-bench-kube-'));
  const tStart = performance.now();
  log(`starting 3 clusters (load ${loadAverage()})`);
  const clusters = await startKubeClusters(['dc1', 'dc2', 'dc3']);
  const clusterStartMs = performance.now() - tStart;
  let cp: ControlPlane | undefined;
  try {
    cp = await ControlPlane.create({
      dataDir: path.join(dir, 'cp'),
      port: 0,
      gatewayPort: await freePort(),
      privileged: false,
      bootstrapToken: TOKEN,
      logLevel: 'warn',
      logFile: path.join(dir, 'control-plane.log'),
      resyncIntervalMs: 2000,
    });
    const sites = clusters
      .map(
        (c) =>
          `apiVersion: bulwark.io/v1\nkind: Site\nmetadata: { name: ${c.name} }\nspec: { kind: kubernetes, kubeconfig: { path: ${c.kubeconfigPath} } }\n`,
      )
      .join('---\n');
    await api(
      cp,
      'POST',
      '/api/v1/apply',
      `${sites}---\napiVersion: bulwark.io/v1\nkind: Project\nmetadata: { name: bench }\nspec: { tenant: bench }\n`,
    );
    await until('sites healthy', 60_000, async () => {
      const s = await api<{ items: { status?: { health?: { state?: string } } }[] }>(
        cp!,
        'GET',
        '/api/v1/sites',
      );
      return s.items.filter((x) => x.status?.health?.state === 'healthy').length === 3 ? true : undefined;
    });

    const ours: number[] = [];
    const anchor: number[] = [];
    let objects: Map<string, KubeObject[]> | undefined;
    for (let r = 0; r < ROUNDS; r++) {
      log(`round ${r}: Bulwark apply ${APPS} apps x 3 replicas (load ${loadAverage()})`);
      ours.push(await bulwarkRound(cp, clusters, r));
      log(`round ${r}: Bulwark ${Math.round(ours.at(-1)!)} ms`);
      if (!objects) {
        objects = new Map();
        for (const c of clusters) objects.set(c.name, await captureObjects(c, 'anchor'));
      }
      await deleteApps(cp, clusters, r);
      log(`round ${r}: kubectl apply --server-side (load ${loadAverage()})`);
      anchor.push(await anchorRound(clusters, objects, r, dir));
      log(`round ${r}: anchor ${Math.round(anchor.at(-1)!)} ms`);
    }
    await cp.close({ stopWorkloads: false });
    cp = undefined;

    log(`quarantine x${QUARANTINES} on dc1 (load ${loadAverage()})`);
    const q = await quarantineBench(clusters[0]!);
    const summary = {
      bench: 'kubernetes',
      quick,
      apps: APPS,
      replicasPerApp: 3,
      clusters: 3,
      rounds: ROUNDS,
      clusterStartMs: Math.round(clusterStartMs),
      applyToReady: {
        bulwarkMs: Math.round(median(ours)),
        kubectlServerSideMs: Math.round(median(anchor)),
        ratio: Number((median(ours) / median(anchor)).toFixed(2)),
        bulwarkRunsMs: ours.map(Math.round),
        kubectlRunsMs: anchor.map(Math.round),
      },
      quarantine: {
        count: q.outMs.length,
        outOfEndpointSliceP50Ms: Math.round(pct(q.outMs, 50)),
        outOfEndpointSliceP99Ms: Math.round(pct(q.outMs, 99)),
        replacementReadyP50Ms: Math.round(pct(q.replacedMs, 50)),
        replacementReadyP99Ms: Math.round(pct(q.replacedMs, 99)),
      },
      loadAverage: loadAverage(),
      totalMs: Math.round(performance.now() - tStart),
    };
    console.log('| measure | Bulwark | anchor (kubectl apply --server-side) | ratio |');
    console.log('| --- | ---: | ---: | ---: |');
    console.log(
      `| ${APPS} apps x 3 replicas on 3 clusters, apply to all Ready | ${summary.applyToReady.bulwarkMs} ms | ${summary.applyToReady.kubectlServerSideMs} ms | ${summary.applyToReady.ratio} |`,
    );
    console.log(
      `| quarantine decision to out of EndpointSlice (${q.outMs.length}x) | p50 ${summary.quarantine.outOfEndpointSliceP50Ms} ms, p99 ${summary.quarantine.outOfEndpointSliceP99Ms} ms | | |`,
    );
    console.log(
      `| quarantine decision to Service whole again (replacement Ready) | p50 ${summary.quarantine.replacementReadyP50Ms} ms, p99 ${summary.quarantine.replacementReadyP99Ms} ms | | |`,
    );
    console.log(JSON.stringify(summary));
  } finally {
    await cp?.close({ stopWorkloads: false }).catch(() => undefined);
    await Promise.all(clusters.map((c) => c.stop()));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
