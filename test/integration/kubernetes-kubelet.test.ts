/**
 * The Kubernetes driver's runtime behaviour against a real node: the harness control plane
 * plus one kubelet with containerd and runc (test/support/kube/node.ts), running the
 * contract app (src/runtime/local/testdata/app.ts on the pinned Node, in an image made
 * here). The whole RuntimeDriver contract runs, including what kwok cannot simulate: env
 * and ports, crash restarts, crash-loop backoff, restart policies, liveness restarts, slow
 * start, logs and followed logs, start failures, quarantine keeping the process.
 *
 * Not registered: "a quarantined instance is neither liveness-killed nor restarted" — no
 * Kubernetes cluster can do that (pod probes and restartPolicy are immutable, so the
 * kubelet keeps supervising a quarantined pod); docs/kubernetes.md says so.
 *
 * Never skips: a machine without the node's parts fails with what to install.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDriverContract } from '../../src/runtime/driver.contract.ts';
import type { InstanceSpec } from '../../src/runtime/driver.ts';
import { KubernetesDriver } from '../../src/runtime/kubernetes/kubernetes-driver.ts';
import type { Pod } from '../../src/runtime/kubernetes/types.ts';
import { waitFor } from '../../src/util/time.ts';
import {
  APP_IMAGE,
  appImage,
  kubeBinaries,
  kubeRequest,
  missingBinariesMessage,
  startKubeCluster,
  type KubeCluster,
} from '../support/kube-harness.ts';

const execFileP = promisify(execFile);
let cluster: KubeCluster;
const drivers: KubernetesDriver[] = [];
const root = path.resolve(import.meta.dirname, '../..');

beforeAll(async () => {
  const { missing } = kubeBinaries();
  if (missing.length > 0) throw new Error(missingBinariesMessage(missing));
  const app = await appImage(
    path.join(root, 'node_modules/node/bin/node'),
    path.join(root, 'src/runtime/local/testdata/app.ts'),
  );
  cluster = await startKubeCluster({ name: 'kubelet', nodes: 0, kubeletNodes: 1, images: [app] });
}, 300_000);
afterAll(async () => {
  for (const d of drivers) await d.close().catch(() => {});
  await cluster?.stop();
}, 120_000);

const newDriver = async (site: string): Promise<KubernetesDriver> => {
  const d = await KubernetesDriver.create({
    site,
    connection: { server: cluster.server, token: cluster.token, caCertPem: cluster.caCertPem },
    resyncMs: 30_000,
    // BULWARK_INSTANCE_ID in the pod env: pods start once bound (docs/kubernetes.md).
    bindBeforeStart: true,
  });
  drivers.push(d);
  return d;
};

runDriverContract({
  name: 'kubernetes (kube-apiserver + a real kubelet, containerd, runc)',
  site: 'kube-node',
  newDriver: () => newDriver('kube-node'),
  app: { image: APP_IMAGE },
  badApp: { image: 'bulwark.local/no-such-image:0', badName: 'no-such-image' },
  timeScale: 4,
  never: {
    quarantineSuspendsSupervision:
      'pod probes and restartPolicy are immutable: the kubelet keeps probing and restarting a quarantined pod',
  },
});

describe('the kubelet node', () => {
  it('declares processes, logs and split log streams available (a real node), pids and quarantine supervision not', async () => {
    const d = await newDriver('kube-node-caps');
    const caps = d.capabilities();
    expect(caps.processes?.available ?? true).toBe(true);
    expect(caps.logs?.available ?? true).toBe(true);
    expect(caps.quarantineSuspendsSupervision?.available).toBe(false);
    // The harness enables PodLogsQuerySplitStreams on the API server and the kubelet.
    expect(caps.logStreams?.available).toBe(true);
    expect(caps.pids?.available).toBe(false);
  });

  it('runs pods on the kubelet node, with its InternalIP as the pod host IP', async () => {
    const r = await kubeRequest(cluster, `/api/v1/nodes/${cluster.kubeletNodeNames[0]}`);
    const addrs = (r.body.status.addresses ?? []) as { type: string; address: string }[];
    expect(addrs.find((a) => a.type === 'InternalIP')?.address).toMatch(/^10\.214\.\d+\.1$/);
  });

  it('with bindBeforeStart every pod starts once bound and sees its own instance id (Deployment and StatefulSet)', async () => {
    const site = 'kube-node-bind';
    const d = await newDriver(site);
    const base: Omit<InstanceSpec, 'id' | 'workload' | 'ordinal'> = {
      site,
      project: 'bind',
      app: 'app',
      image: APP_IMAGE,
      env: {},
      ports: [{ name: 'http', port: 8080 }],
      readiness: { http: { path: '/healthz', port: 'http' }, intervalMs: 500 },
      restartPolicy: 'Always',
      terminationGracePeriodMs: 1000,
      specHash: 'h1',
    };
    // Two pods of one Deployment share a template: only the binding tells them apart. The
    // StatefulSet starts its second pod after the first is Ready, each behind the gate.
    const specs: InstanceSpec[] = [
      { ...base, id: 'bind-web-a', workload: 'web', ordinal: 0 },
      { ...base, id: 'bind-web-b', workload: 'web', ordinal: 1 },
      { ...base, id: 'bind-db-0', workload: 'db', ordinal: 0, workloadType: 'stateful' },
      { ...base, id: 'bind-db-1', workload: 'db', ordinal: 1, workloadType: 'stateful' },
    ];
    for (const s of specs) await d.ensure(s);
    for (const s of specs) {
      const st = await waitFor(
        `${s.id} ready`,
        () => {
          const x = d.get(s.id);
          return x?.phase === 'ready' ? x : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 200 },
      );
      const env = (await (
        await fetch(`http://${st.ip}:${st.ports.http}/env`, { signal: AbortSignal.timeout(5000) })
      ).json()) as Record<string, string>;
      expect(env.BULWARK_INSTANCE_ID).toBe(s.id);
    }
    // The templates carry the gate; no pod keeps it, and each pod's binding is the id it saw.
    const ns = 'bulwark-bind';
    for (const [kind, name] of [
      ['deployments', 'app-web'],
      ['statefulsets', 'app-db'],
    ] as const) {
      const w = await kubeRequest<{ spec: { template: { spec: { schedulingGates?: unknown } } } }>(
        cluster,
        `/apis/apps/v1/namespaces/${ns}/${kind}/${name}`,
      );
      expect(w.body.spec.template.spec.schedulingGates).toEqual([{ name: 'bulwark.io/instance-id' }]);
    }
    const pods = (await kubeRequest<{ items: Pod[] }>(cluster, `/api/v1/namespaces/${ns}/pods`)).body.items;
    const bound = pods.map((p) => p.metadata.annotations?.['bulwark.io/instance-id']).sort();
    expect(bound).toEqual(specs.map((s) => s.id).sort());
    expect(pods.filter((p) => (p.spec?.schedulingGates ?? []).length > 0)).toEqual([]);
    for (const s of specs) await d.remove(s.id);
  }, 300_000);

  // Last in the file: it stops the cluster (stop() is idempotent, afterAll's call is a no-op).
  it('stop() leaves no container, mount, cgroup, bridge, process or file behind, even with a pod running', async () => {
    const nodeName = cluster.kubeletNodeNames[0]!;
    const node = await kubeRequest(cluster, `/api/v1/nodes/${nodeName}`);
    const nodeIp = (node.body.status.addresses as { type: string; address: string }[]).find(
      (a) => a.type === 'InternalIP',
    )!.address;
    // CRI names sandbox netns cni-<uuid>; only this node's containerd makes them here.
    const cniNetns = (): string[] => fs.readdirSync('/run/netns').filter((n) => n.startsWith('cni-'));
    const netnsBefore = cniNetns();
    const created = await kubeRequest(cluster, '/api/v1/namespaces/default/pods', {
      body: {
        metadata: { name: 'left-running' },
        spec: { containers: [{ name: 'app', image: APP_IMAGE, env: [{ name: 'PORT', value: '8080' }] }] },
      },
    });
    expect(created.status).toBe(201);
    await waitFor(
      'pod running',
      async () =>
        (await kubeRequest(cluster, '/api/v1/namespaces/default/pods/left-running')).body.status?.phase ===
        'Running',
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    await cluster.stop();

    const mounts = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.includes(cluster.dir));
    expect(mounts).toEqual([]);
    const procs = await execFileP('pgrep', ['-af', cluster.dir]).catch((e: { stdout?: string }) => e);
    expect(procs.stdout ?? '').toBe('');
    const cgroups = fs
      .readdirSync('/sys/fs/cgroup')
      .filter((h) => fs.existsSync(path.join('/sys/fs/cgroup', h, `bulwark-${nodeName}`)));
    expect(cgroups).toEqual([]);
    const addrs = (await execFileP('ip', ['-4', '-o', 'addr'])).stdout;
    expect(addrs).not.toContain(` ${nodeIp}/`);
    expect(fs.existsSync(cluster.dir)).toBe(false);
    expect(cniNetns().filter((n) => !netnsBefore.includes(n))).toEqual([]);
    expect(
      fs.readdirSync('/var/lib/cni/results').filter((f) => f.startsWith(`bulwark-${nodeName}-`)),
    ).toEqual([]);
  }, 120_000);
});
