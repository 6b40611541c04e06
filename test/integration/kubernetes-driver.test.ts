/**
 * The Kubernetes driver against a real control plane (kube-apiserver, etcd,
 * kube-controller-manager, kube-scheduler; kwok nodes) from the harness. The
 * RuntimeDriver contract runs on a real kubelet node instead
 * (kubernetes-kubelet.test.ts): kwok pods have no process, so half of it would only skip.
 *
 * - objects as `kubectl get -o yaml` shows them (labels, owner annotation,
 *   managedFields of the `bulwark` manager);
 * - a restarted driver recovers its instances and their pod bindings;
 * - remove deletes exactly the removed instance's pod; the last removal leaves
 *   the garbage collector to take ReplicaSets and pods;
 * - an informer whose watch is cut resumes from its resourceVersion;
 * - health() follows a paused and resumed API server.
 *
 * Never skips: missing harness binaries fail with the command that builds them.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { InstanceSpec } from '../../src/runtime/driver.ts';
import { KubeClient } from '../../src/runtime/kubernetes/client.ts';
import { Informer } from '../../src/runtime/kubernetes/informer.ts';
import { KubernetesDriver } from '../../src/runtime/kubernetes/kubernetes-driver.ts';
import type { KubeObject, Pod } from '../../src/runtime/kubernetes/types.ts';
import { waitFor } from '../../src/util/time.ts';
import {
  kubeBinaries,
  missingBinariesMessage,
  startKubeCluster,
  type KubeCluster,
} from '../support/kube-harness.ts';

const execFileP = promisify(execFile);
let cluster: KubeCluster;
const drivers: KubernetesDriver[] = [];

beforeAll(async () => {
  const { missing } = kubeBinaries();
  if (missing.length > 0) throw new Error(missingBinariesMessage(missing));
  cluster = await startKubeCluster({ name: 'kdrv', nodes: 2 });
}, 240_000);
afterAll(async () => {
  for (const d of drivers) await d.close().catch(() => {});
  await cluster?.stop();
});

const connection = () => ({ server: cluster.server, token: cluster.token, caCertPem: cluster.caCertPem });
const newDriver = async (site: string): Promise<KubernetesDriver> => {
  const d = await KubernetesDriver.create({ site, connection: connection(), resyncMs: 30_000 });
  drivers.push(d);
  return d;
};
const kubectl = async (...args: string[]): Promise<string> =>
  (await execFileP(`${kubeBinaries().dir}/kubectl`, ['--kubeconfig', cluster.kubeconfigPath, ...args]))
    .stdout;

const spec = (
  site: string,
  workload: string,
  ordinal: number,
  over: Partial<InstanceSpec> = {},
): InstanceSpec => ({
  id: `shop.web.${workload}-${ordinal}-${Math.random().toString(16).slice(2, 8)}`,
  site,
  project: 'shop',
  app: 'web',
  workload,
  ordinal,
  image: 'registry.example/web:2.1',
  env: { GREETING: 'hi' },
  ports: [{ name: 'http', port: 8080 }],
  readiness: { http: { path: '/healthz', port: 'http' }, intervalMs: 1000 },
  cpu: 0.1,
  memoryBytes: 64 * 2 ** 20,
  restartPolicy: 'Always',
  terminationGracePeriodMs: 1000,
  specHash: `h-${ordinal}`,
  ...over,
});

describe('KubernetesDriver on a real API server', () => {
  it('writes objects that look idiomatic to kubectl: labels, owner annotation, field manager bulwark', async () => {
    const d = await newDriver('kube-yaml');
    const a = spec('kube-yaml', 'api', 0);
    const b = spec('kube-yaml', 'api', 1);
    await d.ensure(a);
    await d.ensure(b);
    await waitFor('both ready', () => d.list().filter((s) => s.ready).length === 2, { timeoutMs: 30_000 });
    const dep = parse(
      await kubectl('get', 'deployment', '-n', 'bulwark-shop', 'web-api', '-o', 'yaml'),
    ) as KubeObject & {
      spec: { replicas: number; template: { spec: { containers: { image: string }[] } } };
    };
    expect(dep.metadata.labels).toMatchObject({
      'app.kubernetes.io/name': 'web',
      'app.kubernetes.io/instance': 'web-api',
      'app.kubernetes.io/component': 'api',
      'app.kubernetes.io/part-of': 'shop',
      'app.kubernetes.io/managed-by': 'bulwark',
    });
    expect(dep.metadata.annotations?.['bulwark.io/owner']).toBe('kube-yaml/shop/web');
    expect(dep.spec.replicas).toBe(2);
    expect(dep.spec.template.spec.containers[0]?.image).toBe('registry.example/web:2.1');
    // kubectl hides managedFields by default; --show-managed-fields shows who owns what.
    const withFields = parse(
      await kubectl(
        'get',
        'deployment',
        '-n',
        'bulwark-shop',
        'web-api',
        '-o',
        'yaml',
        '--show-managed-fields',
      ),
    ) as KubeObject;
    expect(withFields.metadata.managedFields).toEqual(
      expect.arrayContaining([expect.objectContaining({ manager: 'bulwark', operation: 'Apply' })]),
    );
    for (const kind of ['service', 'poddisruptionbudget']) {
      const o = parse(
        await kubectl('get', kind, '-n', 'bulwark-shop', 'web-api', '-o', 'yaml'),
      ) as KubeObject;
      expect(o.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('bulwark');
      expect(o.metadata.annotations?.['bulwark.io/owner']).toBe('kube-yaml/shop/web');
    }
    const ns = parse(await kubectl('get', 'namespace', 'bulwark-shop', '-o', 'yaml')) as KubeObject;
    expect(ns.metadata.labels).toMatchObject({
      'app.kubernetes.io/part-of': 'shop',
      'app.kubernetes.io/managed-by': 'bulwark',
    });
    const pods = parse(
      await kubectl(
        'get',
        'pods',
        '-n',
        'bulwark-shop',
        '-l',
        'app.kubernetes.io/instance=web-api',
        '-o',
        'yaml',
      ),
    ) as { items: Pod[] };
    expect(pods.items.map((p) => p.metadata.annotations?.['bulwark.io/instance-id']).sort()).toEqual(
      [a.id, b.id].sort(),
    );
    await d.close({ stopInstances: true });
  });

  it('a restarted driver recovers its instances and pod bindings from the cluster', async () => {
    const a = await newDriver('kube-restart');
    const s0 = spec('kube-restart', 'cache', 0);
    const s1 = spec('kube-restart', 'cache', 1);
    await a.ensure(s0);
    await a.ensure(s1);
    await waitFor('both ready', () => a.list().filter((s) => s.ready).length === 2, { timeoutMs: 30_000 });
    const before = a.list().sort((x, y) => x.id.localeCompare(y.id));
    await a.close(); // instances keep running
    const b = await newDriver('kube-restart');
    const after = b.list().sort((x, y) => x.id.localeCompare(y.id));
    expect(after.map((s) => [s.id, s.ip, s.phase, s.startedAt])).toEqual(
      before.map((s) => [s.id, s.ip, s.phase, s.startedAt]),
    );
    // Idempotent across the restart: nothing is rolled or replaced.
    const again = await b.ensure(s0);
    expect(again).toMatchObject({ ip: before.find((s) => s.id === s0.id)!.ip, restarts: 0 });
    await b.close({ stopInstances: true });
  });

  it('remove deletes exactly that instance pod; the last remove lets the garbage collector take ReplicaSets and pods', async () => {
    const d = await newDriver('kube-rm');
    const specs = [0, 1, 2].map((i) => spec('kube-rm', 'worker', i));
    for (const s of specs) await d.ensure(s);
    await waitFor('three ready', () => d.list().filter((s) => s.ready).length === 3, { timeoutMs: 30_000 });
    const ipOf = (id: string) => d.get(id)!.ip;
    const keep = [specs[0]!.id, specs[2]!.id].map((id) => [id, ipOf(id)]);
    const client = new KubeClient(connection());
    // Pods the ReplicaSet created, from its events (a surplus pod may be gone again by the end).
    const created = async (): Promise<number> => {
      const ev = JSON.parse(await kubectl('get', 'events', '-n', 'bulwark-shop', '-o', 'json')) as {
        items: { reason?: string; count?: number; involvedObject?: { kind?: string; name?: string } }[];
      };
      return ev.items
        .filter((e) => e.reason === 'SuccessfulCreate' && e.involvedObject?.kind === 'ReplicaSet')
        .filter((e) => e.involvedObject?.name?.startsWith('web-worker-'))
        .reduce((n, e) => n + (e.count ?? 1), 0);
    };
    const createdBefore = await created();
    await d.remove(specs[1]!.id);
    expect(d.get(specs[1]!.id)).toBeUndefined();
    await new Promise((r) => setTimeout(r, 1500)); // the ReplicaSet would have acted by now
    expect(keep.map(([id]) => [id, ipOf(id!)])).toEqual(keep);
    // The ReplicaSet deleted the removed pod itself (cheapest deletion cost): no surplus pod.
    expect(await created()).toBe(createdBefore);
    const pods = await client.list<Pod>('Pod', 'bulwark-shop', {
      labelSelector: 'app.kubernetes.io/instance=web-worker',
    });
    expect(pods.items.filter((p) => !p.metadata.deletionTimestamp)).toHaveLength(2);
    await d.remove(specs[0]!.id);
    await d.remove(specs[2]!.id);
    await waitFor(
      'ReplicaSets and pods collected',
      async () => {
        const rs = await client.list('ReplicaSet', 'bulwark-shop', {
          labelSelector: 'app.kubernetes.io/instance=web-worker',
        });
        const p = await client.list('Pod', 'bulwark-shop', {
          labelSelector: 'app.kubernetes.io/instance=web-worker',
        });
        return rs.items.length === 0 && p.items.length === 0;
      },
      { timeoutMs: 30_000 },
    );
    expect(await client.tryGet('Deployment', 'bulwark-shop', 'web-worker')).toBeUndefined();
    client.close();
  });

  it('runs a stateful workload as a StatefulSet bound by ordinal, and a job as an Indexed Job whose pods complete', async () => {
    const d = await newDriver('kube-kinds');
    const db = [0, 1].map((o) => ({
      ...spec('kube-kinds', 'db', o),
      id: `shop.web.db-${o}`,
      workloadType: 'stateful' as const,
    }));
    for (const s of db) await d.ensure(s);
    await waitFor('db ready', () => db.every((s) => d.get(s.id)?.phase === 'ready'), { timeoutMs: 30_000 });
    const client = new KubeClient(connection());
    const sts = await client.get<KubeObject & { spec: { replicas: number } }>(
      'StatefulSet',
      'bulwark-shop',
      'web-db',
    );
    expect(sts.spec.replicas).toBe(2);
    const pods = await client.list<Pod>('Pod', 'bulwark-shop', {
      labelSelector: 'app.kubernetes.io/instance=web-db',
    });
    expect(pods.items.map((p) => p.metadata.name).sort()).toEqual(['web-db-0', 'web-db-1']);
    expect(d.get(db[1]!.id)!.ip).toBe(pods.items.find((p) => p.metadata.name === 'web-db-1')!.status!.podIP);
    expect(
      (await client.get('Service', 'bulwark-shop', 'web-db')) as KubeObject & { spec: { clusterIP: string } },
    ).toMatchObject({
      spec: { clusterIP: 'None' },
    });

    const jobs = [0, 1].map((o) => ({
      ...spec('kube-kinds', 'migrate', o),
      restartPolicy: 'OnFailure' as const,
      ports: [],
    }));
    for (const s of jobs) await d.ensure(s);
    // kwok completes Job pods: the instances succeed.
    await waitFor('jobs succeeded', () => jobs.every((s) => d.get(s.id)?.phase === 'succeeded'), {
      timeoutMs: 30_000,
    });
    const jobList = await client.list<KubeObject & { spec: { completions: number; completionMode: string } }>(
      'Job',
      'bulwark-shop',
      { labelSelector: 'app.kubernetes.io/instance=web-migrate' },
    );
    expect(jobList.items).toHaveLength(1);
    expect(jobList.items[0]!.spec).toMatchObject({ completions: 2, completionMode: 'Indexed' });
    await d.close({ stopInstances: true });
    await waitFor(
      'StatefulSet and Job gone',
      async () =>
        !(await client.tryGet('StatefulSet', 'bulwark-shop', 'web-db')) &&
        (
          await client.list('Job', 'bulwark-shop', {
            labelSelector: 'app.kubernetes.io/instance=web-migrate',
          })
        ).items.length === 0,
      { timeoutMs: 30_000 },
    );
    client.close();
  });

  it('an informer whose watch is cut resumes from its resourceVersion and misses nothing', async () => {
    // (A real 410 cannot be provoked cheaply here: on a young cluster the watch cache still
    // holds every version since 1. The 410 relist is unit-tested against recorded sequences.)
    const client = new KubeClient(connection());
    const ns = 'bulwark-informer-resume';
    await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    const cm = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns } });
    const path = `/api/v1/namespaces/${ns}/configmaps`;
    await client.request('POST', path, { body: cm('before') });
    let resume!: () => void;
    const mayResume = new Promise<void>((r) => (resume = r));
    const seen: string[] = [];
    const from: string[] = [];
    let watches = 0;
    const inf = new Informer<KubeObject>(
      {
        list: () => client.request('GET', path),
        watch: async (rv, onEvent, signal) => {
          from.push(rv);
          const n = watches++;
          if (n === 1) await mayResume;
          // The first stream is cut after 300 ms, like a dropped connection.
          const cut = new AbortController();
          const t = n === 0 ? setTimeout(() => cut.abort(), 300) : undefined;
          signal.addEventListener('abort', () => cut.abort());
          await client.streamLines(
            path,
            { watch: 1, resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: 60 },
            (line) => onEvent(JSON.parse(line)),
            cut.signal,
          );
          clearTimeout(t);
        },
      },
      (e) => seen.push(`${e.type} ${e.object.metadata.name}`),
      { backoffInitialMs: 50 },
    );
    await inf.start();
    await waitFor('first stream cut', () => watches >= 2, { timeoutMs: 10_000 });
    // Changes while no stream is open.
    await client.request('POST', path, { body: cm('after') });
    await client.request('DELETE', `${path}/before`);
    resume();
    await waitFor('changes seen', () => seen.includes('deleted before'), { timeoutMs: 20_000 });
    expect(seen.filter((x) => !x.includes('kube-root-ca'))).toEqual([
      'added before',
      'added after',
      'deleted before',
    ]);
    expect(inf.status().lists).toBe(1); // resumed, not relisted
    expect(from[1]).toMatch(/^\d+$/);
    expect(
      inf
        .list()
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['after', 'kube-root-ca.crt']);
    await inf.stop();
    await client.delete('Namespace', undefined, ns);
    client.close();
  });

  it('health() says whether the API server answers: paused, then resumed', async () => {
    const d = new KubernetesDriver({ site: 'kube-health', kubeconfigPath: cluster.kubeconfigPath });
    const up = await d.health();
    expect(up).toMatchObject({ ok: true, version: expect.stringMatching(/^v1\./) });
    await cluster.pause();
    try {
      const down = await d.health(1000);
      expect(down.ok).toBe(false);
      expect(down.message).toMatch(/does not answer/);
    } finally {
      await cluster.resume();
    }
    expect((await d.health()).ok).toBe(true);
    await d.close();
  });
});
