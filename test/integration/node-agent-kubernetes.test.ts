/**
 * A node agent on a Kubernetes node: its flows become the L4 topology of the
 * Kubernetes site. Real parts: a harness cluster (etcd, kube-apiserver,
 * controller-manager, scheduler, kwok nodes), the control plane and `bulwark
 * agent` as processes, bpftrace.
 *
 * kwok runs no containers, so this test plays the kubelet's part for two of
 * the App's pods: a network namespace per pod holding the pod IP the cluster
 * gave it (a veth pair between the two), the server process in one and a
 * client in the other: what a node looks like to an agent with hostPID. The
 * agent finds the pods' namespaces by their IPs (its inventory has no pids)
 * and reads the client pod's socket counters there.
 *
 * Needs root, bpftrace and the harness binaries; skips with the reason otherwise.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkAgentCapability } from '../../src/observability/agent/capability.ts';
import type { RemoteAgentStatus } from '../../src/observability/agent/remote-agents.ts';
import type { Topology } from '../../src/observability/topology/types.ts';
import type { InstanceStatus } from '../../src/runtime/driver.ts';
import { sleep, waitFor } from '../../src/util/time.ts';
import { REPO_ROOT, startControlPlane, type ControlPlaneProcess } from '../support/control-plane-process.ts';
import { kubeBinaries, startKubeClusters, type KubeCluster } from '../support/kube-harness.ts';

const cap = await checkAgentCapability();
const root = process.getuid?.() === 0;
const bins = kubeBinaries();
const why = !root
  ? 'needs root'
  : !cap.available
    ? cap.reason
    : bins.missing.length > 0
      ? `harness binaries missing: ${bins.missing.join(', ')}`
      : undefined;
const NS = ['bwk-kpod-a', 'bwk-kpod-b'];

function removeNamespaces(): void {
  for (const ns of NS) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // not there
    }
  }
}

describe.skipIf(why !== undefined)(
  `node agent on a Kubernetes node (${why ?? 'root + bpftrace + harness'})`,
  () => {
    let cluster: KubeCluster | undefined;
    let cp: ControlPlaneProcess;
    let dataDir: string;
    const procs: ChildProcess[] = [];
    let agentLog = '';
    let pods: InstanceStatus[] = [];

    const instances = async (): Promise<InstanceStatus[]> =>
      (await cp.api<{ items: InstanceStatus[] }>('GET', '/api/v1/instances')).body.items;
    const inNs = (ns: string, script: string): ChildProcess => {
      const p = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: 'ignore' });
      procs.push(p);
      return p;
    };

    beforeAll(async () => {
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-kube-agent-'));
      [cluster] = await startKubeClusters(['ka']);
      cp = await startControlPlane({ dataDir, unprivileged: true, env: { BULWARK_EBPF_AGENT: 'off' } });
      const manifests = `apiVersion: bulwark.io/v1
kind: Site
metadata: { name: ka }
spec:
  kind: kubernetes
  kubeconfig: { path: ${cluster!.kubeconfigPath} }
---
apiVersion: bulwark.io/v1
kind: Project
metadata: { name: shop }
spec: { tenant: retail }
---
apiVersion: bulwark.io/v1
kind: App
metadata: { name: web, project: shop }
spec:
  placement: { sites: [{ name: ka }] }
  workloads:
    - name: api
      type: service
      replicas: 2
      image: registry.shop.local/web:1.0
      ports: [{ name: http, port: 8080 }]
`;
      const applied = await cp.api('POST', '/api/v1/apply', manifests, true);
      expect(applied.status, JSON.stringify(applied.body)).toBe(200);
      pods = await waitFor(
        'two pods with IPs',
        async () => {
          const ready = (await instances()).filter((i) => i.site === 'ka' && i.ready && i.ip);
          return ready.length === 2 ? ready.sort((a, b) => a.id.localeCompare(b.id)) : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 500 },
      );
      // The kubelet's part: a namespace per pod with its pod IP, a veth pair between them
      // (a run killed before its cleanup may have left the namespaces: start from none).
      removeNamespaces();
      for (const ns of NS) execFileSync('ip', ['netns', 'add', ns]);
      execFileSync('ip', [
        'link',
        'add',
        'bwkka',
        'netns',
        NS[0]!,
        'type',
        'veth',
        'peer',
        'name',
        'bwkkb',
        'netns',
        NS[1]!,
      ]);
      for (const [i, ns] of NS.entries()) {
        const dev = i === 0 ? 'bwkka' : 'bwkkb';
        execFileSync('ip', ['-n', ns, 'addr', 'add', `${pods[i]!.ip}/16`, 'dev', dev]);
        execFileSync('ip', ['-n', ns, 'link', 'set', dev, 'up']);
        execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      }
      // Pod b serves on its port 8080: answers every line with twice its length.
      inNs(
        NS[1]!,
        `require('net').createServer((s) => s.on('data', (d) => s.write(Buffer.alloc(d.length * 2, 121)))).listen(8080, '${pods[1]!.ip}')`,
      );
      await sleep(500);
      const agent = spawn(
        process.execPath,
        [path.join(REPO_ROOT, 'src/cli/main.ts'), 'agent', '--site', 'ka'],
        {
          cwd: REPO_ROOT,
          env: {
            ...process.env,
            BULWARK_SERVER: cp.url,
            BULWARK_TOKEN: cp.token,
            BULWARK_NODE_NAME: cluster!.nodeNames[0]!,
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      procs.push(agent);
      agent.stderr?.on('data', (d: Buffer) => void (agentLog = (agentLog + d.toString()).slice(-20_000)));
      await waitFor(
        'node agent running',
        async () => {
          if (agent.exitCode !== null) throw new Error(`agent exited: ${agentLog}`);
          const r = await cp.api<{ items: RemoteAgentStatus[] }>(
            'GET',
            '/api/v1/observability/agents?site=ka',
          );
          return r.body.items.some((a) => a.state === 'running');
        },
        { timeoutMs: 90_000, intervalMs: 500 },
      );
    }, 400_000);

    afterAll(async () => {
      for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
      await sleep(500);
      removeNamespaces();
      await cp?.kill('SIGTERM');
      await cluster?.stop();
      if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    }, 120_000);

    it('draws pod -> pod with connections and bytes in the site topology, read from the pod namespace', async () => {
      // Pod a calls pod b over one long-lived connection: 10 messages of 1000 bytes, 300 ms apart.
      inNs(
        NS[0]!,
        `const c = require('net').connect(8080, '${pods[1]!.ip}', () => { let n = 0; const t = setInterval(() => { c.write(Buffer.alloc(1000, 120)); if (++n === 10) clearInterval(t); }, 300); }); c.on('data', () => {}); setTimeout(() => {}, 600000);`,
      );
      const edgeOf = (t: Topology) =>
        t.edges.find((e) => e.from === `instance:${pods[0]!.id}` && e.to === `instance:${pods[1]!.id}`);
      const t = await waitFor(
        'pod a -> pod b with all bytes',
        async () => {
          const r = await cp.api<Topology>('GET', '/api/v1/topology?site=ka&window=60s');
          if (r.status !== 200) return undefined;
          const e = edgeOf(r.body);
          return e && (e.metrics.bytesToServer ?? 0) >= 10_000 ? r.body : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 1000 },
      );
      const e = edgeOf(t)!;
      expect(e.layers).toContain('l4');
      expect(e.metrics.connections).toBe(1);
      // Counted once (from the connecting pod's socket), exactly what was sent each way.
      expect(e.metrics.bytesToServer).toBe(10_000);
      expect(e.metrics.bytesToClient).toBe(20_000);
      expect(t.nodes.some((n) => n.id === 'app:shop/web')).toBe(true);
      // The local site's topology knows nothing of it.
      const local = (await cp.api<Topology>('GET', '/api/v1/topology?window=60s')).body;
      expect(local.edges.some((x) => x.from === `instance:${pods[0]!.id}`)).toBe(false);
    });

    it('renders a DaemonSet manifest the cluster takes and schedules on every node', async () => {
      const cli = path.join(REPO_ROOT, 'src/cli/main.ts');
      const yaml = execFileSync(
        process.execPath,
        [
          cli,
          'agent',
          'manifest',
          '--site',
          'ka',
          '--image',
          'registry.example/bulwark:test',
          '--server',
          cp.url,
        ],
        { cwd: REPO_ROOT, encoding: 'utf8' },
      );
      const kubectl = (...args: string[]): string =>
        execFileSync(path.join(bins.dir, 'kubectl'), ['--kubeconfig', cluster!.kubeconfigPath, ...args], {
          input: yaml,
          encoding: 'utf8',
        });
      expect(kubectl('apply', '-f', '-')).toMatch(/daemonset.apps\/bulwark-agent-ka created/);
      // kwok plays the nodes: the DaemonSet's pods are placed on every one of them (taints tolerated).
      await waitFor(
        'DaemonSet scheduled on every node',
        () => {
          const ds = JSON.parse(
            kubectl('get', 'daemonset', '-n', 'bulwark-system', 'bulwark-agent-ka', '-o', 'json'),
          ) as {
            status?: { desiredNumberScheduled?: number; currentNumberScheduled?: number };
          };
          const n = cluster!.nodeNames.length;
          return ds.status?.desiredNumberScheduled === n && ds.status.currentNumberScheduled === n;
        },
        { timeoutMs: 30_000, intervalMs: 500 },
      );
      expect(() =>
        execFileSync(process.execPath, [cli, 'agent', 'manifest', '--site', 'ka'], {
          cwd: REPO_ROOT,
          stdio: 'pipe',
        }),
      ).toThrow(/needs --image/);
    });
  },
);
