/**
 * Real Kubernetes control planes for integration tests, on loopback, without
 * containers: etcd, kube-apiserver, kube-controller-manager and
 * kube-scheduler built from the pinned upstream modules by
 * scripts/kube/build.sh, and kwok simulating the Nodes, so pods
 * are scheduled, get an IP and turn Ready. Each cluster lives in its own temp
 * dir with its own PKI, ports, etcd and service range; `stop()` removes it.
 *
 * @example
 *   const c = await startKubeCluster({ name: 'dc1' });
 *   try {
 *     const ns = await kubeRequest(c, '/api/v1/namespaces', { body: { metadata: { name: 'x' } } });
 *   } finally {
 *     await c.stop();
 *   }
 *
 * Set BULWARK_KUBE_KEEP=1 to keep the temp dirs (logs, kubeconfig) after stop().
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/util/ports.ts';
import { sleep } from '../../src/util/time.ts';
import { kubeRequest } from './kube/http.ts';
import type { KubeObject } from './kube/http.ts';
import { pauseImage, type ImageSpec } from './kube/image.ts';
import { nodeUnsupportedReason, startKubeletNode, type KubeletNode } from './kube/node.ts';
import { createClusterPki, createSniCert } from './kube/pki.ts';
import { describeFailure, startProcess } from './kube/process.ts';
import type { ManagedProcess } from './kube/process.ts';

export { kubeRequest } from './kube/http.ts';
export type { KubeObject, KubeResponse, KubeRequestOptions, KubeTarget } from './kube/http.ts';
export { APP_IMAGE, appImage, PAUSE_IMAGE, type ImageSpec } from './kube/image.ts';

export interface KubeCluster {
  name: string;
  /** https://127.0.0.1:<port> */
  server: string;
  /** Admin kubeconfig for this cluster, usable by kubectl and by Bulwark. */
  kubeconfigPath: string;
  /** Bearer token in group system:masters. */
  token: string;
  /** CA of the apiserver's serving cert. */
  caCertPem: string;
  /** Make the cluster stop answering (SIGSTOP the apiserver), like a data center that goes dark. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Stop every process and remove the temp dir. Idempotent. */
  stop(): Promise<void>;
  // Additions beyond the contract:
  /** The cluster's temp dir: kubeconfig, PKI, logs/<component>.log. */
  dir: string;
  /** http://127.0.0.1:<port> of this cluster's etcd (for compaction in 410 tests). */
  etcdUrl: string;
  /** Names of the kwok Nodes, all Ready when startKubeCluster resolves. */
  nodeNames: string[];
  /** Service ClusterIP range given to the apiserver. */
  serviceCidr: string;
  /** Pod IP range kwok allocates from. */
  podCidr: string;
  /**
   * Stop and start the apiserver (same port, same etcd). Watches break, and its watch cache
   * starts over at the current revision, so watches from older resourceVersions get 410.
   */
  restartApiserver(): Promise<void>;
  /** Path of a component's log file. */
  logPath(component: KubeComponent): string;
  /**
   * Compact etcd to its current revision as the apiserver's compactor would; returns it. Within
   * ~15 s (the watch cache's poll) older resourceVersions get 410 Gone.
   */
  compactEtcd(): Promise<number>;
  /** With `sniNames`: the CA of the SNI certificate and its names. */
  sni?: { caCertPem: string; names: string[] };
  /** Names of the kubelet Nodes (`kubeletNodes`), all Ready when startKubeCluster resolves. */
  kubeletNodeNames: string[];
}

export type KubeComponent = 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'kwok';

export interface StartKubeClusterOptions {
  name: string;
  /** kwok Nodes to create. @default 3 */
  nodes?: number;
  /** How long to wait for the whole cluster to be usable. @default 180000 */
  startTimeoutMs?: number;
  /**
   * DNS names the apiserver also serves under SNI, with a certificate for those names only
   * (no IP) from a CA of its own (`KubeCluster.sni`): tests of a kubeconfig's tls-server-name.
   */
  sniNames?: string[];
  /**
   * Real nodes besides the kwok ones: a kubelet with containerd and runc each
   * (test/support/kube/node.ts), running `images` (the pause image is always there), so
   * pods have containers that listen, log, exit and restart. @default 0
   */
  kubeletNodes?: number;
  /** Images the kubelet nodes get (imported from tarballs made here; nothing is pulled). */
  images?: ImageSpec[];
}

/** Annotation kwok is told to manage Nodes by (kwok's own convention). */
export const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';
const KUBE_CMDS = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl', 'kwok'] as const;

function cacheDir(): string {
  return process.env.BULWARK_KUBE_CACHE ?? '/var/cache/bulwark/kube';
}

/**
 * etcd from the cache (3.6, built by scripts/kube/build.sh), or BULWARK_KUBE_ETCD. Debian's
 * etcd-server 3.4.23 works only degraded with kube-apiserver 1.36 (no watch-list, no consistent
 * reads from cache; see docs/kubernetes-harness.md), so it is never picked silently.
 */
function etcdBinary(): string | undefined {
  const p = process.env.BULWARK_KUBE_ETCD ?? path.join(cacheDir(), 'bin', 'etcd');
  return fs.existsSync(p) ? p : undefined;
}

let etcdMinor: number | undefined;
/** 4 for etcd 3.4, 6 for 3.6: the progress-notify flag lost its "experimental-" prefix in 3.5. */
function etcdMinorVersion(bin: string): number {
  if (etcdMinor === undefined) {
    const out = execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    const m = /etcd Version: 3\.(\d+)\./.exec(out);
    if (!m) throw new Error(`cannot tell the version of ${bin} from: ${out}`);
    etcdMinor = Number(m[1]);
  }
  return etcdMinor;
}

/** Where the built binaries are, and which are missing (build with `bash scripts/kube/build.sh`). */
export function kubeBinaries(): {
  dir: string;
  missing: string[];
  etcd: string | undefined;
  kwokStages: string;
} {
  const dir = path.join(cacheDir(), 'bin');
  const kwokStages = path.join(cacheDir(), 'share', 'kwok-stages.yaml');
  const missing: string[] = KUBE_CMDS.filter((c) => !fs.existsSync(path.join(dir, c)));
  if (!fs.existsSync(kwokStages)) missing.push('kwok-stages.yaml');
  const etcd = etcdBinary();
  if (!etcd) missing.push('etcd');
  return { dir, missing, etcd, kwokStages };
}

/** The error a test should fail with when the harness is not built. */
export function missingBinariesMessage(missing: string[]): string {
  return (
    `Kubernetes harness binaries missing: ${missing.join(', ')}. Build them with: bash scripts/kube/build.sh` +
    ` (cache: ${cacheDir()}, override with BULWARK_KUBE_CACHE` +
    (process.env.BULWARK_KUBE_ETCD
      ? `; BULWARK_KUBE_ETCD=${process.env.BULWARK_KUBE_ETCD} does not exist`
      : '') +
    ')'
  );
}

let clusterSeq = 0;

export async function startKubeCluster(opts: StartKubeClusterOptions): Promise<KubeCluster> {
  if (!/^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/.test(opts.name)) {
    throw new Error(
      `startKubeCluster: name ${JSON.stringify(opts.name)} must be a DNS label of at most 32 chars`,
    );
  }
  const nodes = opts.nodes ?? 3;
  if (!Number.isInteger(nodes) || nodes < 0 || nodes > 100) {
    throw new Error(`startKubeCluster: nodes must be an integer 0..100, got ${nodes}`);
  }
  const bins = kubeBinaries();
  if (bins.missing.length > 0) throw new Error(missingBinariesMessage(bins.missing));
  // Ports come from freePort(), which is racy: another process may grab one before we bind.
  // A clean retry is cheaper than a flaky suite.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts, nodes, opts.startTimeoutMs ?? 180_000, bins);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (attempt >= 3 || !/address already in use/i.test(msg)) throw err;
    }
  }
}

/** Start several clusters in parallel; if one fails, the others are stopped and the error is thrown. */
export async function startKubeClusters(names: string[]): Promise<KubeCluster[]> {
  if (new Set(names).size !== names.length)
    throw new Error(`startKubeClusters: duplicate names in ${names.join(', ')}`);
  const results = await Promise.allSettled(names.map((name) => startKubeCluster({ name })));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(results.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
    throw failed.reason;
  }
  return results.map((r) => (r as PromiseFulfilledResult<KubeCluster>).value);
}

async function startOnce(
  opts: StartKubeClusterOptions,
  nodeCount: number,
  timeoutMs: number,
  bins: ReturnType<typeof kubeBinaries>,
): Promise<KubeCluster> {
  const { name } = opts;
  const sniNames = opts.sniNames ?? [];
  const kubeletCount = opts.kubeletNodes ?? 0;
  const seq = clusterSeq++;
  const deadline = Date.now() + timeoutMs;
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `bulwark-kube-${name}-`));
  const logs = path.join(dir, 'logs');
  await fsp.mkdir(logs);
  const procs: ManagedProcess[] = [];
  const kubelets: KubeletNode[] = [];
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // Nodes first, while the apiserver still answers: their pods are deleted through it.
    for (const k of kubelets) await k.stop();
    // Reverse start order: clients first, so they do not log storms of errors about a missing apiserver.
    for (const p of [...procs].reverse()) await p.stop();
    if (process.env.BULWARK_KUBE_KEEP !== '1') await fsp.rm(dir, { recursive: true, force: true });
  };
  try {
    // Distinct ranges per cluster make cross-cluster mix-ups visible in tests (an IP names its cluster).
    const octet = seq % 100;
    const serviceCidr = `10.${96 + octet}.0.0/16`;
    const serviceIp = `10.${96 + octet}.0.1`;
    const podCidr = `10.${200 + (seq % 50)}.0.0/16`;
    const [etcdClientPort, etcdPeerPort, apiPort, cmPort, schedPort] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const server = `https://127.0.0.1:${apiPort}`;

    // etcd does not need the PKI (loopback plain HTTP), so it starts while the certificates are made.
    const etcd = startProcess(
      'etcd',
      bins.etcd!,
      [
        `--name=${name}`,
        `--data-dir=${path.join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
        `--initial-cluster=${name}=http://127.0.0.1:${etcdPeerPort}`,
        '--initial-cluster-state=new',
        `--initial-cluster-token=bulwark-${name}-${process.pid}-${seq}`,
        // Test data is throwaway; keep the backend small so three clusters fit in RAM/disk.
        '--quota-backend-bytes=1073741824',
        '--snapshot-count=10000',
        // The apiserver's watch cache needs progress notifications to serve consistent reads;
        // the data is throwaway, so no fsync (3.5+ only) on the shared disk.
        ...(etcdMinorVersion(bins.etcd!) >= 5
          ? ['--watch-progress-notify-interval=5s', '--unsafe-no-fsync']
          : ['--experimental-watch-progress-notify-interval=5s']),
        '--logger=zap',
        '--log-level=warn',
      ],
      path.join(logs, 'etcd.log'),
    );
    procs.push(etcd);
    const pki = await createClusterPki(dir, name, serviceIp);
    const sni = sniNames.length > 0 ? await createSniCert(dir, sniNames) : undefined;

    const token = randomBytes(24).toString('hex');
    const componentTokens = {
      'kube-controller-manager': randomBytes(24).toString('hex'),
      'kube-scheduler': randomBytes(24).toString('hex'),
      kwok: randomBytes(24).toString('hex'),
      kubelet: randomBytes(24).toString('hex'),
    };
    // Every identity is in system:masters: the harness tests Bulwark, not RBAC of the components.
    await fsp.writeFile(
      path.join(dir, 'tokens.csv'),
      [
        `${token},bulwark-admin,uid-admin,"system:masters"`,
        `${componentTokens['kube-controller-manager']},system:kube-controller-manager,uid-kcm,"system:masters"`,
        `${componentTokens['kube-scheduler']},system:kube-scheduler,uid-sched,"system:masters"`,
        `${componentTokens.kwok},kwok-controller,uid-kwok,"system:masters"`,
        `${componentTokens.kubelet},system:node:kubelet,uid-kubelet,"system:masters"`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const kubeconfigPath = path.join(dir, 'kubeconfig');
    await writeKubeconfig(kubeconfigPath, name, server, pki.caCertPem, token);
    const componentKubeconfig = async (c: keyof typeof componentTokens): Promise<string> => {
      const p = path.join(dir, `${c}.kubeconfig`);
      await writeKubeconfig(p, name, server, pki.caCertPem, componentTokens[c]);
      return p;
    };

    await waitUntil(`etcd of ${name} healthy on ${etcdUrl}`, etcd, deadline, async () => {
      const r = await plainGet(`${etcdUrl}/health`);
      return r.includes('"health":"true"');
    });

    const apiserverArgs = [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--tls-cert-file=${pki.serverCertPath}`,
      `--tls-private-key-file=${pki.serverKeyPath}`,
      `--client-ca-file=${pki.caCertPath}`,
      `--token-auth-file=${path.join(dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki.saPubPath}`,
      `--service-account-signing-key-file=${pki.saKeyPath}`,
      `--service-cluster-ip-range=${serviceCidr}`,
      // No kubernetes-Service endpoints for a loopback address (it is not a valid endpoint IP).
      '--endpoint-reconciler-type=none',
      '--allow-privileged=true',
      // Reach kubelets (logs) at their InternalIP: a node name resolves nowhere here, and a
      // DNS lookup of it would leave the machine.
      '--kubelet-preferred-address-types=InternalIP',
      '--profiling=false',
      // pods/log?stream=Stdout|Stderr (alpha since 1.32, off by default): the driver reads the
      // two streams apart where the cluster allows it (docs/kubernetes.md "Logs").
      '--feature-gates=PodLogsQuerySplitStreams=true',
      `--cert-dir=${path.join(dir, 'apiserver-certs')}`,
      ...(sni ? [`--tls-sni-cert-key=${sni.certPath},${sni.keyPath}:${sniNames.join(',')}`] : []),
    ];
    const target = { server, token, caCertPem: pki.caCertPem };
    let apiserver: ManagedProcess | undefined;
    /** (Re)start the apiserver; it takes its predecessor's slot in procs so stop() order holds. */
    const launchApiserver = async (until: number): Promise<void> => {
      const p = startProcess(
        'kube-apiserver',
        path.join(bins.dir, 'kube-apiserver'),
        apiserverArgs,
        path.join(logs, 'kube-apiserver.log'),
      );
      const slot = apiserver ? procs.indexOf(apiserver) : -1;
      if (slot >= 0) procs[slot] = p;
      else procs.push(p);
      apiserver = p;
      await waitUntil(`kube-apiserver of ${name} ready on ${server}/readyz`, p, until, async () => {
        const r = await kubeRequest(target, '/readyz', { timeoutMs: 5000 });
        return r.status === 200;
      });
    };
    await launchApiserver(deadline);

    const cmKubeconfig = await componentKubeconfig('kube-controller-manager');
    const cm = startProcess(
      'kube-controller-manager',
      path.join(bins.dir, 'kube-controller-manager'),
      [
        `--kubeconfig=${cmKubeconfig}`,
        `--authentication-kubeconfig=${cmKubeconfig}`,
        `--authorization-kubeconfig=${cmKubeconfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${cmPort}`,
        `--cert-dir=${path.join(dir, 'kcm-certs')}`,
        '--leader-elect=false',
        `--cluster-name=${name}`,
        // Signs the tokens of the ServiceAccount token controller; root CA goes into kube-root-ca.crt.
        `--service-account-private-key-file=${pki.saKeyPath}`,
        `--root-ca-file=${pki.caCertPath}`,
        '--use-service-account-credentials=false',
        // Default is 20 QPS: too slow for a benchmark that applies hundreds of pods.
        '--kube-api-qps=200',
        '--kube-api-burst=400',
        // kwok renews node leases from one process; on a loaded 2-core machine a few missed
        // heartbeats would make the node lifecycle controller mark every pod NotReady, and
        // nothing marks simulated pods Ready again. Real clusters keep the 50 s default.
        '--node-monitor-grace-period=5m',
        '--profiling=false',
      ],
      path.join(logs, 'kube-controller-manager.log'),
    );
    procs.push(cm);
    const schedKubeconfig = await componentKubeconfig('kube-scheduler');
    const scheduler = startProcess(
      'kube-scheduler',
      path.join(bins.dir, 'kube-scheduler'),
      [
        `--kubeconfig=${schedKubeconfig}`,
        `--authentication-kubeconfig=${schedKubeconfig}`,
        `--authorization-kubeconfig=${schedKubeconfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${schedPort}`,
        `--cert-dir=${path.join(dir, 'scheduler-certs')}`,
        '--leader-elect=false',
        '--profiling=false',
      ],
      path.join(logs, 'kube-scheduler.log'),
    );
    procs.push(scheduler);
    const kwok = startProcess(
      'kwok',
      path.join(bins.dir, 'kwok'),
      [
        `--kubeconfig=${await componentKubeconfig('kwok')}`,
        `--config=${bins.kwokStages}`,
        '--manage-all-nodes=false',
        `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
        `--cidr=${podCidr}`,
      ],
      path.join(logs, 'kwok.log'),
    );
    procs.push(kwok);

    const nodeNames = Array.from({ length: nodeCount }, (_, i) => `${name}-node-${i}`);
    for (const [i, nodeName] of nodeNames.entries()) {
      const r = await kubeRequest(target, '/api/v1/nodes', { body: kwokNode(name, nodeName, i) });
      if (r.status !== 201)
        throw new Error(`creating Node ${nodeName} in ${name}: HTTP ${r.status} ${r.text}`);
    }

    await Promise.all([
      waitUntil(`kube-controller-manager of ${name} healthy`, cm, deadline, () => healthz(cmPort)),
      waitUntil(`kube-scheduler of ${name} healthy`, scheduler, deadline, () => healthz(schedPort)),
      waitUntil(`kwok of ${name}: ${nodeCount} Nodes Ready and untainted`, kwok, deadline, async () => {
        const r = await kubeRequest(target, '/api/v1/nodes', { timeoutMs: 5000 });
        const items = (r.body.items ?? []) as KubeObject[];
        return nodeNames.every((n) =>
          items.some((node) => node.metadata?.name === n && nodeSchedulable(node)),
        );
      }),
      // The ServiceAccount admission plugin rejects pods until the namespace's "default" SA exists.
      waitUntil(
        `kube-controller-manager of ${name}: ServiceAccount default/default`,
        cm,
        deadline,
        async () => {
          const r = await kubeRequest(target, '/api/v1/namespaces/default/serviceaccounts/default', {
            timeoutMs: 5000,
          });
          return r.status === 200;
        },
      ),
    ]);

    if (kubeletCount > 0) {
      const why = nodeUnsupportedReason(path.join(bins.dir, 'kubelet'));
      if (why) throw new Error(`kubelet nodes for ${name}: ${why}`);
      // One at a time: each imports the images and registers; two kubelets on two cores at once
      // only make both slower.
      for (let i = 0; i < kubeletCount; i++) {
        kubelets.push(
          await startKubeletNode({
            nodeName: `${name}-kubelet-${i}`,
            dir: path.join(dir, `kubelet-${i}`),
            // Spread by pid: another test process counts its clusters from 0 too.
            index: (process.pid + seq * 4 + i) % 250,
            target: { server, token: componentTokens.kubelet, caCertPem: pki.caCertPem },
            kubeletBin: path.join(bins.dir, 'kubelet'),
            images: opts.images ?? [],
            imageCache: path.join(cacheDir(), 'images'),
            pauseImage: pauseImage(),
            deadline,
          }),
        );
      }
    }

    return {
      name,
      server,
      kubeconfigPath,
      kubeletNodeNames: kubelets.map((k) => k.nodeName),
      token,
      caCertPem: pki.caCertPem,
      dir,
      etcdUrl,
      nodeNames,
      serviceCidr,
      podCidr,
      logPath: (c) => path.join(logs, `${c}.log`),
      pause: async () => {
        apiserver!.signal('SIGSTOP');
        await waitForState(apiserver!.pid, 'T');
      },
      resume: async () => {
        apiserver!.signal('SIGCONT');
        await waitForState(apiserver!.pid, 'not-T');
      },
      restartApiserver: async () => {
        await apiserver!.stop();
        await launchApiserver(Date.now() + 120_000);
      },
      stop,
      compactEtcd: () => compactEtcd(etcdUrl),
      ...(sni ? { sni: { caCertPem: sni.caCertPem, names: sniNames } } : {}),
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

function kwokNode(cluster: string, nodeName: string, index: number): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: nodeName,
      annotations: { [KWOK_NODE_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      labels: {
        'kubernetes.io/hostname': nodeName,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'node-role.kubernetes.io/agent': '',
        type: 'kwok',
        // Spread over three zones so topology-spread and PDB tests have something to spread over.
        'topology.kubernetes.io/zone': `${cluster}-zone-${index % 3}`,
      },
    },
    spec: {},
  };
}

function nodeSchedulable(node: KubeObject): boolean {
  const conds = (node.status?.conditions ?? []) as KubeObject[];
  const ready = conds.some((c) => c.type === 'Ready' && c.status === 'True');
  const taints = (node.spec?.taints ?? []) as KubeObject[];
  return ready && !taints.some((t) => t.effect === 'NoSchedule' || t.effect === 'NoExecute');
}

async function writeKubeconfig(
  file: string,
  name: string,
  server: string,
  caPem: string,
  token: string,
): Promise<void> {
  // JSON is valid YAML; kubectl and every client library read it.
  const cfg = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      { name, cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } },
    ],
    users: [{ name: `${name}-user`, user: { token } }],
    contexts: [{ name, context: { cluster: name, user: `${name}-user` } }],
    'current-context': name,
  };
  await fsp.writeFile(file, JSON.stringify(cfg, null, 2) + '\n', { mode: 0o600 });
}

/**
 * Poll `check` until true. Fails at once when `proc` exited, and at the deadline,
 * with the tail of `proc`'s log either way.
 */
async function waitUntil(
  what: string,
  proc: ManagedProcess,
  deadline: number,
  check: () => Promise<boolean>,
): Promise<void> {
  let last: unknown = 'not yet';
  for (;;) {
    if (proc.exited()) throw describeFailure(`waiting for ${what}`, proc, 'process exited');
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw describeFailure(`timed out waiting for ${what}`, proc, last);
    await sleep(200);
  }
}

async function plainGet(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  return await res.text();
}

async function healthz(port: number): Promise<boolean> {
  // The components serve /healthz with a self-signed cert from their --cert-dir; it is on loopback.
  return await new Promise((resolve, reject) => {
    const req = https.get(
      { host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false, timeout: 3000 },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/**
 * Compact etcd the way kube-apiserver's own compactor does (it runs every 5 minutes): record
 * the revision in `compact_rev_key`, which every apiserver watches to learn the compaction
 * revision, then compact to it. The watch cache drops history below it at its next poll
 * (every 15 s), after which older resourceVersions get 410 Gone from lists and watches.
 */
async function compactEtcd(etcdUrl: string): Promise<number> {
  const post = async (p: string, body: unknown): Promise<KubeObject> => {
    const res = await fetch(`${etcdUrl}${p}`, {
      method: 'POST',
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const json = (await res.json()) as KubeObject;
    if (!res.ok) throw new Error(`etcd ${p}: HTTP ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const b64 = (v: string): string => Buffer.from(v).toString('base64');
  // etcd's gRPC gateway: a range read returns the current revision in its header.
  const range = await post('/v3/kv/range', { key: b64('compact_rev_key') });
  const revision = Number(range.header?.revision);
  if (!Number.isFinite(revision))
    throw new Error(`etcd range returned no revision: ${JSON.stringify(range)}`);
  await post('/v3/kv/put', { key: b64('compact_rev_key'), value: b64(String(revision)) });
  await post('/v3/kv/compaction', { revision: String(revision), physical: true });
  return revision;
}

/** Wait until /proc says the process is (T) or is not ('not-T') stopped, so pause() means paused. */
async function waitForState(pid: number, want: 'T' | 'not-T'): Promise<void> {
  for (let i = 0; i < 100; i++) {
    let state = '';
    try {
      const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8');
      state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    } catch {
      return; // gone: nothing to wait for
    }
    if (want === 'T' ? state === 'T' : state !== 'T') return;
    await sleep(20);
  }
  throw new Error(`process ${pid} did not reach state ${want} within 2 s`);
}
