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
import { KubernetesDriver } from '../../src/runtime/kubernetes/kubernetes-driver.ts';
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
  // Found by this suite, the first run of the driver against a real kubelet (2026-12-07):
  // driver gaps, each with what the kubelet does, kept visible as skips until fixed.
  skip: {
    'the instance sees its env, PORT, BULWARK_PORT_<NAME> and BULWARK_HOST_IP':
      'driver gap: BULWARK_INSTANCE_ID is not in the pod env (pods of a Deployment share one template, and the instance id is bound after the pod exists)',
    'liveness does not kill an instance that has not been ready yet (slow start)':
      'driver gap: no pid on Kubernetes (the API does not expose container PIDs); the no-restart part of the case holds',
    'followLogs delivers each new line of both streams once, across a restart, until unsubscribed':
      'driver gap: pods/log interleaves stdout and stderr (split streams are the alpha gate PodLogsQuerySplitStreams in 1.36), so stderr lines are reported as stdout',
  },
  never: {
    quarantineSuspendsSupervision:
      'pod probes and restartPolicy are immutable: the kubelet keeps probing and restarting a quarantined pod',
  },
});

describe('the kubelet node', () => {
  it('declares processes and logs available (a real node), quarantine supervision not', async () => {
    const d = await newDriver('kube-node-caps');
    const caps = d.capabilities();
    expect(caps.processes?.available ?? true).toBe(true);
    expect(caps.logs?.available ?? true).toBe(true);
    expect(caps.quarantineSuspendsSupervision?.available).toBe(false);
  });

  it('runs pods on the kubelet node, with its InternalIP as the pod host IP', async () => {
    const r = await kubeRequest(cluster, `/api/v1/nodes/${cluster.kubeletNodeNames[0]}`);
    const addrs = (r.body.status.addresses ?? []) as { type: string; address: string }[];
    expect(addrs.find((a) => a.type === 'InternalIP')?.address).toMatch(/^10\.214\.\d+\.1$/);
  });

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
