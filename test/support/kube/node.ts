/**
 * A real Kubernetes node for the test harness: containerd (Debian's, with its CRI plugin)
 * and runc running pods for a kubelet built from the same pinned modules as the control
 * plane, on loopback, all in one temp dir:
 *
 * - containerd with its own root, state and socket, overlayfs snapshots, cgroupfs, a bridge
 *   CNI network of its own (bridge `bwk<n>`, 10.214.<n>.0/24, host-local IPAM, no NAT: the
 *   test reaches pod IPs directly, nothing leaves the machine) and the pause image imported
 *   from a tarball made here (no registry);
 * - the kubelet: node IP = the bridge's address 10.214.<n>.1, its API on a free port there
 *   (anonymous + AlwaysAllow: only this machine reaches that address), cgroup driver
 *   cgroupfs under a cgroup root of its own (`/bulwark-<node>`) in every v1 hierarchy,
 *   `failCgroupV1: false` (kubelet >= 1.31 refuses cgroup v1 otherwise), no swap check,
 *   eviction thresholds low enough that a busy CI disk does not evict the test pods.
 *
 * stop() deletes every pod through the kubelet first (so containerd tears down sandboxes
 * and CNI releases addresses), then stops the kubelet and containerd, kills what is left,
 * unmounts everything under the dir, removes the cgroup root and the bridge, and the dir.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../../src/util/ports.ts';
import { sleep } from '../../../src/util/time.ts';
import { kubeRequest, type KubeObject, type KubeTarget } from './http.ts';
import { PAUSE_IMAGE, imageTarball, type ImageSpec } from './image.ts';
import { describeFailure, startProcess, type ManagedProcess } from './process.ts';

const execFileP = promisify(execFile);

export interface KubeletNodeOptions {
  /** Node name, also the kubelet's hostname override. */
  nodeName: string;
  /** Directory the node lives in (removed by stop()). */
  dir: string;
  /** 0..249: where to start looking for a free bridge `bwk<n>` (and so subnet 10.214.<n>). */
  index: number;
  /** The apiserver and a token with node rights (system:masters in the harness). */
  target: KubeTarget;
  kubeletBin: string;
  /** Images to import besides the pause image (tarballs cached in `imageCache`). */
  images: ImageSpec[];
  imageCache: string;
  pauseImage: ImageSpec;
  deadline: number;
}

export interface KubeletNode {
  nodeName: string;
  /** The node's InternalIP (the bridge's address), what pods see as BULWARK_HOST_IP. */
  nodeIp: string;
  /** 10.214.<n>.0/24 */
  podCidr: string;
  logPath(component: 'containerd' | 'kubelet'): string;
  stop(): Promise<void>;
}

/** What this machine needs for a real node; empty when it has everything. */
export function missingNodeTools(kubeletBin: string): string[] {
  const need: [string, string][] = [
    [kubeletBin, 'kubelet (bash scripts/kube/build.sh)'],
    ['/usr/bin/containerd', 'containerd (apt-get install containerd)'],
    ['/usr/bin/ctr', 'ctr (apt-get install containerd)'],
    ['/usr/sbin/runc', 'runc (apt-get install runc)'],
    ['/usr/lib/cni/bridge', 'CNI plugins (apt-get install containernetworking-plugins)'],
    ['/bin/busybox', 'busybox (apt-get install busybox-static)'],
  ];
  const missing = need.filter(([p]) => !fs.existsSync(p)).map(([, what]) => what);
  if (process.getuid?.() !== 0) missing.push('root (containerd and the kubelet need it)');
  return missing;
}

/** Why this machine cannot run a kubelet node, or undefined. */
export function nodeUnsupportedReason(kubeletBin: string): string | undefined {
  const missing = missingNodeTools(kubeletBin);
  return missing.length > 0 ? `missing: ${missing.join(', ')}` : undefined;
}

const V1_CONTROLLERS = [
  'cpu',
  'cpuacct',
  'cpuset',
  'memory',
  'devices',
  'freezer',
  'blkio',
  'pids',
  'systemd',
];

/** The v1 hierarchies this host mounts (hybrid layout: one dir per controller). */
function cgroupHierarchies(): string[] {
  return V1_CONTROLLERS.map((c) => `/sys/fs/cgroup/${c}`).filter((d) => fs.existsSync(path.join(d, 'tasks')));
}

/** Those plus the hybrid layout's cgroup2 mount, where runc also makes each container's cgroup. */
function allCgroupHierarchies(): string[] {
  const unified = '/sys/fs/cgroup/unified';
  return [...cgroupHierarchies(), ...(fs.existsSync(path.join(unified, 'cgroup.procs')) ? [unified] : [])];
}

async function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<string> {
  try {
    return (await execFileP(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * 2 ** 20 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

export async function startKubeletNode(o: KubeletNodeOptions): Promise<KubeletNode> {
  const d = (...p: string[]): string => path.join(o.dir, ...p);
  await fsp.mkdir(d('logs'), { recursive: true });
  const sock = d('containerd.sock');
  // Claimed in the try below; stop() removes the bridge only once it is ours.
  let bridge = '';
  let podCidr = '';
  let nodeIp = '';
  const cgroupRoot = `/bulwark-${o.nodeName}`;
  const procs: ManagedProcess[] = [];
  let stopped = false;

  const ctr = (...args: string[]): Promise<string> =>
    run('ctr', ['--address', sock, '-n', 'k8s.io', ...args], 120_000);

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    const kubelet = procs.find((p) => p.name === 'kubelet');
    const containerd = procs.find((p) => p.name === 'containerd');
    // 1. Pods go through the kubelet, so sandboxes are stopped and CNI releases addresses.
    const live = containerd && !containerd.exited();
    if (kubelet && !kubelet.exited()) {
      await drainPods(o.target, o.nodeName).catch(() => {});
      // A pod object is gone once its containers are; the sandbox stops (CNI DEL, netns
      // removed) a moment later. Wait for that while the kubelet can still do it.
      const until = Date.now() + 20_000;
      while (live && Date.now() < until && (await ctr('tasks', 'ls', '-q').catch(() => '')).trim())
        await sleep(250);
    }
    await kubelet?.stop();
    // What a sandbox that did not stop cleanly would leave: its netns mount and CNI cache.
    const ids: string[] = [];
    const netns = new Set<string>();
    if (live) {
      ids.push(...(await ctr('containers', 'ls', '-q').catch(() => '')).split('\n').filter(Boolean));
      for (const id of ids) {
        const info = JSON.parse(await ctr('containers', 'info', id).catch(() => '{}')) as {
          Spec?: { linux?: { namespaces?: { type: string; path?: string }[] } };
        };
        for (const ns of info.Spec?.linux?.namespaces ?? [])
          if (ns.type === 'network' && ns.path && /^\/(var\/)?run\/netns\/cni-/.test(ns.path))
            netns.add(ns.path);
      }
    }
    // 2. Whatever is left in containerd: kill the tasks, then the shims exit.
    if (live) {
      const tasks = await ctr('tasks', 'ls', '-q').catch(() => '');
      for (const id of tasks.split('\n').filter(Boolean)) {
        await ctr('tasks', 'kill', '-s', 'SIGKILL', id).catch(() => {});
        await ctr('tasks', 'delete', '-f', id).catch(() => {});
      }
      const cs = await ctr('containers', 'ls', '-q').catch(() => '');
      for (const id of cs.split('\n').filter(Boolean)) await ctr('containers', 'rm', id).catch(() => {});
    }
    await containerd?.stop();
    await killShims(o.dir);
    // 3. Mounts (rootfs overlays, shm), cgroups, the bridge, the dir.
    await unmountUnder(o.dir);
    for (const ns of netns) {
      await run('umount', [ns]).catch(() => {});
      await fsp.rm(ns, { force: true }).catch(() => {});
    }
    await removeCniResults(`bulwark-${o.nodeName}`, ids);
    await removeCgroupRoot(cgroupRoot);
    if (bridge) await run('ip', ['link', 'del', bridge]).catch(() => {});
    // BULWARK_KUBE_KEEP=1 keeps the logs (the mounts are gone by now, so rm is safe either way).
    if (process.env.BULWARK_KUBE_KEEP !== '1')
      await fsp.rm(o.dir, { recursive: true, force: true }).catch(() => {});
    else await fsp.rm(d('containerd'), { recursive: true, force: true }).catch(() => {});
  };

  try {
    // The node's IP is its bridge's own address: the kubelet rejects a loopback node IP (the
    // Node then has no address and the apiserver cannot reach it for logs), and pods reach
    // BULWARK_HOST_IP through their gateway. It is an address of this machine only.
    const n = await claimBridge(o.index);
    bridge = `bwk${n}`;
    podCidr = `10.214.${n}.0/24`;
    nodeIp = `10.214.${n}.1`;
    await run('ip', ['addr', 'add', `${nodeIp}/24`, 'dev', bridge]);
    await run('ip', ['link', 'set', bridge, 'up']);
    // containerd, with the CRI plugin configured for this node only.
    await fsp.mkdir(d('cni', 'net.d'), { recursive: true });
    await fsp.writeFile(
      d('cni', 'net.d', '10-bulwark.conflist'),
      JSON.stringify({
        cniVersion: '0.4.0',
        name: `bulwark-${o.nodeName}`,
        plugins: [
          {
            type: 'bridge',
            bridge,
            isGateway: true,
            ipMasq: false,
            hairpinMode: true,
            ipam: { type: 'host-local', ranges: [[{ subnet: podCidr }]], dataDir: d('cni', 'ipam') },
          },
          { type: 'loopback' },
        ],
      }),
    );
    const streamPort = await freePort();
    const runcBinary = process.env.BULWARK_KUBE_RUNC ?? (await runcFor(o.dir));
    await fsp.writeFile(
      d('containerd.toml'),
      [
        'version = 2',
        `root = "${d('containerd', 'root')}"`,
        `state = "${d('containerd', 'state')}"`,
        '[grpc]',
        `  address = "${sock}"`,
        '[ttrpc]',
        `  address = "${sock}.ttrpc"`,
        '[metrics]',
        '  address = ""',
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = "${d('containerd', 'opt')}"`,
        '[plugins."io.containerd.grpc.v1.cri"]',
        `  sandbox_image = "${PAUSE_IMAGE}"`,
        '  stream_server_address = "127.0.0.1"',
        `  stream_server_port = "${streamPort}"`,
        '  enable_selinux = false',
        '  [plugins."io.containerd.grpc.v1.cri".containerd]',
        '    snapshotter = "overlayfs"',
        '    default_runtime_name = "runc"',
        '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
        '      runtime_type = "io.containerd.runc.v2"',
        '      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
        '        SystemdCgroup = false',
        ...(runcBinary !== '/usr/sbin/runc' ? [`        BinaryName = "${runcBinary}"`] : []),
        // Nothing is pulled: a missing image must fail at once, without a DNS lookup or a
        // connection leaving the machine (port 9 on loopback refuses).
        '  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."bulwark.local"]',
        '    endpoint = ["http://127.0.0.1:9"]',
        '  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]',
        '    endpoint = ["http://127.0.0.1:9"]',
        '  [plugins."io.containerd.grpc.v1.cri".cni]',
        '    bin_dir = "/usr/lib/cni"',
        `    conf_dir = "${d('cni', 'net.d')}"`,
        '',
      ].join('\n'),
    );
    const containerd = startProcess(
      'containerd',
      '/usr/bin/containerd',
      ['--config', d('containerd.toml'), '--log-level', 'warn'],
      d('logs', 'containerd.log'),
    );
    procs.push(containerd);
    await waitUntil('containerd answering', containerd, o.deadline, async () => {
      if (!fs.existsSync(sock)) return false;
      await ctr('version');
      return true;
    });
    for (const image of [o.pauseImage, ...o.images]) {
      const tar = await imageTarball(image, o.imageCache);
      // The CRI plugin pulls nothing: an image must be there, unpacked for overlayfs, before a pod asks.
      await ctr('images', 'import', '--snapshotter', 'overlayfs', tar);
    }

    // The kubelet.
    for (const h of cgroupHierarchies()) await fsp.mkdir(path.join(h, cgroupRoot), { recursive: true });
    const [kubeletPort, healthzPort] = await Promise.all([freePort(), freePort()]);
    await fsp.writeFile(
      d('kubelet.kubeconfig'),
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: 'c',
            cluster: {
              server: o.target.server,
              'certificate-authority-data': Buffer.from(o.target.caCertPem).toString('base64'),
            },
          },
        ],
        users: [{ name: 'kubelet', user: { token: o.target.token } }],
        contexts: [{ name: 'c', context: { cluster: 'c', user: 'kubelet' } }],
        'current-context': 'c',
      }),
      { mode: 0o600 },
    );
    const kubeletConfig = {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      // This machine mounts cgroup v1; kubelet >= 1.31 refuses it unless told not to.
      failCgroupV1: false,
      cgroupDriver: 'cgroupfs',
      cgroupRoot,
      cgroupsPerQOS: true,
      address: nodeIp,
      port: kubeletPort,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      healthzPort,
      authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
      authorization: { mode: 'AlwaysAllow' },
      containerRuntimeEndpoint: `unix://${sock}`,
      failSwapOn: false,
      resolvConf: '',
      registerNode: true,
      // The shared CI disk may be fuller than the defaults allow; the harness must not evict.
      evictionHard: { 'memory.available': '50Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      // Status reaches the apiserver quickly, as the driver's tests wait on it.
      nodeStatusUpdateFrequency: '2s',
      syncFrequency: '5s',
      serializeImagePulls: false,
      maxPods: 50,
      podPidsLimit: 512,
      localStorageCapacityIsolation: false,
      containerLogMaxSize: '1Mi',
      // The kubelet splits pods/log by stream only with the gate (the API server's too).
      featureGates: { PodLogsQuerySplitStreams: true },
    };
    await fsp.writeFile(d('kubelet.yaml'), JSON.stringify(kubeletConfig, null, 2));
    const kubelet = startProcess(
      'kubelet',
      o.kubeletBin,
      [
        `--config=${d('kubelet.yaml')}`,
        `--kubeconfig=${d('kubelet.kubeconfig')}`,
        `--root-dir=${d('kubelet')}`,
        `--cert-dir=${d('kubelet-pki')}`,
        `--hostname-override=${o.nodeName}`,
        `--node-ip=${nodeIp}`,
        `--node-labels=type=kubelet,topology.kubernetes.io/zone=${o.nodeName}-zone`,
        '--v=1',
      ],
      d('logs', 'kubelet.log'),
    );
    procs.push(kubelet);
    await waitUntil(`kubelet node ${o.nodeName} Ready`, kubelet, o.deadline, async () => {
      const r = await kubeRequest(o.target, `/api/v1/nodes/${o.nodeName}`, { timeoutMs: 5000 });
      const conds = (r.body?.status?.conditions ?? []) as KubeObject[];
      return r.status === 200 && conds.some((c) => c.type === 'Ready' && c.status === 'True');
    });
    return {
      nodeName: o.nodeName,
      nodeIp,
      podCidr,
      logPath: (c) => d('logs', `${c}.log`),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Create the first free bridge `bwk<n>` from `start` on: `ip link add` is atomic, so two
 * test processes (each with its own cluster counter) never share one, and a bridge that
 * exists (another run's, or one a SIGKILLed run left) is never touched.
 */
async function claimBridge(start: number): Promise<number> {
  for (let k = 0; k < 250; k++) {
    const n = (start + k) % 250;
    try {
      await run('ip', ['link', 'add', `bwk${n}`, 'type', 'bridge']);
      return n;
    } catch (err) {
      if (!/exists/i.test((err as Error).message)) throw err;
    }
  }
  throw new Error('no free bridge name bwk0..bwk249 (delete stale ones: ip link del bwk<n>)');
}

/** CAP_SYS_RESOURCE (24) in this process's effective set? Without it oom_score_adj cannot go below its current value. */
function hasSysResource(): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? (BigInt(`0x${m[1]}`) & (1n << 24n)) !== 0n : true;
}

/**
 * runc as containerd should call it. Where this process lacks CAP_SYS_RESOURCE (a sandboxed
 * CI VM: CapBnd 000001fffeffffff), runc fails every pod with "failed to update
 * /proc/self/oom_score_adj: Permission denied" ("can't get final child's PID from pipe"),
 * because the kubelet asks -998 for the pause container and -997 for Guaranteed pods. The
 * wrapper raises a negative oomScoreAdj in the bundle's config.json to 0 and runs runc;
 * nothing else changes. On a machine with the capability runc is used as it is.
 */
async function runcFor(dir: string): Promise<string> {
  if (hasSysResource()) return '/usr/sbin/runc';
  const wrapper = path.join(dir, 'runc-oom-clamp');
  await fsp.writeFile(
    wrapper,
    [
      '#!/bin/sh',
      '# Written by test/support/kube/node.ts: no CAP_SYS_RESOURCE here, so no negative oom_score_adj.',
      'prev=""',
      'for a in "$@"; do',
      '  case "$prev" in --bundle) f="$a/config.json" ;; --process) f="$a" ;; esac',
      '  prev="$a"',
      'done',
      'if [ -n "$f" ] && [ -f "$f" ]; then sed -i -E \'s/"oomScoreAdj": *-[0-9]+/"oomScoreAdj":0/\' "$f"; fi',
      'exec /usr/sbin/runc "$@"',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return wrapper;
}

/** Delete every pod bound to the node (grace 0) and wait until the kubelet confirmed each. */
async function drainPods(target: KubeTarget, nodeName: string): Promise<void> {
  const list = async (): Promise<KubeObject[]> => {
    const r = await kubeRequest(target, `/api/v1/pods?fieldSelector=spec.nodeName=${nodeName}`, {
      timeoutMs: 5000,
    });
    return (r.body?.items ?? []) as KubeObject[];
  };
  for (const p of await list()) {
    await kubeRequest(
      target,
      `/api/v1/namespaces/${p.metadata.namespace}/pods/${p.metadata.name}?gracePeriodSeconds=0`,
      {
        method: 'DELETE',
        timeoutMs: 5000,
      },
    ).catch(() => undefined);
  }
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && (await list()).length > 0) await sleep(250);
}

/** Shims of this node's containerd (their command line names its address) outlive it: kill them. */
async function killShims(dir: string): Promise<void> {
  for (const pid of await fsp.readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    const cmd = await fsp.readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes('containerd-shim') && cmd.includes(dir)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}

/** CNI's cache of this node's network (`<network>-<container>-<if>`) and of its loopbacks. */
async function removeCniResults(network: string, ids: string[]): Promise<void> {
  const dir = '/var/lib/cni/results';
  for (const f of await fsp.readdir(dir).catch(() => [] as string[])) {
    if (f.startsWith(`${network}-`) || ids.some((id) => f === `cni-loopback-${id}-lo`))
      await fsp.rm(path.join(dir, f), { force: true }).catch(() => {});
  }
}

/** Unmount everything mounted below `dir`, deepest first. */
async function unmountUnder(dir: string): Promise<void> {
  for (let round = 0; round < 3; round++) {
    const mounts = (await fsp.readFile('/proc/self/mountinfo', 'utf8'))
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m): m is string => !!m && (m === dir || m.startsWith(`${dir}/`)))
      .sort((a, b) => b.length - a.length);
    if (mounts.length === 0) return;
    for (const m of mounts) await run('umount', ['-l', m]).catch(() => {});
  }
}

/** rmdir the cgroup root and everything under it in every hierarchy (children first). */
async function removeCgroupRoot(root: string): Promise<void> {
  const rmTree = async (p: string): Promise<void> => {
    const entries = await fsp.readdir(p, { withFileTypes: true }).catch(() => []);
    for (const e of entries) if (e.isDirectory()) await rmTree(path.join(p, e.name));
    for (let i = 0; i < 20; i++) {
      try {
        await fsp.rmdir(p);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        await sleep(100); // EBUSY: a task is still exiting
      }
    }
  };
  for (const h of allCgroupHierarchies()) await rmTree(path.join(h, root));
}

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
    await sleep(250);
  }
}
