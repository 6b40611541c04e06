/**
 * Runs the real control plane (`bulwark server`) as a child process so tests
 * can SIGKILL it, restart it on the same data directory and watch it
 * converge — the way it fails in production.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SERVER_NODE_FLAGS } from '../../src/cli/node-flags.ts';
import { freePort } from '../../src/util/ports.ts';
import { waitFor } from '../../src/util/time.ts';
import { removeEmptyScopeCgroups, scopeOf } from './leftovers.ts';

export const REPO_ROOT = path.resolve(import.meta.dirname, '../..');

export interface ControlPlaneProcess {
  url: string;
  gatewayUrl: string;
  gatewayPort: number;
  token: string;
  dataDir: string;
  pid: number;
  child: ChildProcess;
  output: () => string;
  api: <T>(method: string, p: string, body?: unknown, yaml?: boolean) => Promise<{ status: number; body: T }>;
  kill: (signal: NodeJS.Signals) => Promise<void>;
  /**
   * Stops the control plane and all it started, for a test's afterAll (see stopAndClean):
   * `kill('SIGTERM')` alone leaves instances and HAProxy running, by design.
   */
  stop: () => Promise<void>;
}

export interface StartOptions {
  dataDir: string;
  port?: number;
  gatewayPort?: number;
  token?: string;
  unprivileged?: boolean;
  storeUrl?: string;
  /** Extra arguments for `bulwark server`. */
  extraArgs?: string[];
  /**
   * How the server is launched: `node` (the default) runs src/cli/main.ts with `nodeFlags`;
   * `bin` runs bin/bulwark, the launcher users run, which picks its own Node flags.
   */
  launcher?: 'node' | 'bin';
  /** Node flags for the `node` launcher. @default SERVER_NODE_FLAGS */
  nodeFlags?: readonly string[];
  /** Extra environment for the control plane process. */
  env?: Record<string, string>;
}

export async function startControlPlane(opts: StartOptions): Promise<ControlPlaneProcess> {
  const port = opts.port ?? (await freePort());
  const gatewayPort = opts.gatewayPort ?? (await freePort());
  const token = opts.token ?? `bwk_test_${randomBytes(16).toString('hex')}`;
  fs.mkdirSync(opts.dataDir, { recursive: true });
  const serverArgs = [
    'server',
    '--port',
    String(port),
    '--gateway-port',
    String(gatewayPort),
    '--data-dir',
    opts.dataDir,
    ...(opts.unprivileged ? ['--unprivileged'] : []),
    ...(opts.storeUrl ? ['--store-url', opts.storeUrl] : []),
    ...(opts.extraArgs ?? []),
  ];
  const [file, args] =
    opts.launcher === 'bin'
      ? [path.join(REPO_ROOT, 'bin/bulwark'), serverArgs]
      : [
          process.execPath,
          [...(opts.nodeFlags ?? SERVER_NODE_FLAGS), path.join(REPO_ROOT, 'src/cli/main.ts'), ...serverArgs],
        ];
  const child = spawn(file, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, BULWARK_BOOTSTRAP_TOKEN: token, BULWARK_LOG_LEVEL: 'warn', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  child.stderr?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  const url = `http://127.0.0.1:${port}`;
  const api = async <T>(method: string, p: string, body?: unknown, yaml = false) => {
    const res = await fetch(url + p, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': yaml ? 'application/yaml' : 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: yaml ? String(body) : JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
  // Fail at once (not after the timeout) when the server exits during start-up.
  let onExit: (() => void) | undefined;
  const exitedEarly = new Promise<never>((_, reject) => {
    onExit = () =>
      reject(
        new Error(`control plane exited with ${child.exitCode ?? child.signalCode}: ${out.slice(-3000)}`),
      );
    child.once('exit', onExit);
  });
  try {
    await Promise.race([
      exitedEarly,
      waitFor(
        `control plane on ${url}`,
        async () => (await fetch(`${url}/api/v1/healthz`).catch(() => undefined))?.ok,
        { timeoutMs: 60_000, intervalMs: 200 },
      ),
    ]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err instanceof Error ? new Error(`${err.message}\n${out.slice(-3000)}`) : err;
  } finally {
    if (onExit) child.off('exit', onExit);
    exitedEarly.catch(() => undefined);
  }
  const kill = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    await exited;
  };
  const cp: ControlPlaneProcess = {
    url,
    gatewayUrl: `http://127.0.0.1:${gatewayPort}`,
    gatewayPort,
    token,
    dataDir: opts.dataDir,
    pid: child.pid as number,
    child,
    output: () => out,
    api,
    kill,
    stop: () => stopAndClean(cp),
  };
  return cp;
}

/**
 * Stops a control plane so that nothing it started outlives the test.
 * `bulwark server` keeps its instances and HAProxy on SIGTERM (a restarted
 * server adopts them), which in a test is a leak: a ledger, its shim,
 * network namespace and cgroup still running an hour later. So, while the
 * server runs: delete every app and wait until the API lists no instance
 * (the driver then has removed their processes, namespaces and cgroups),
 * then SIGTERM. What still runs from the data dir after that (HAProxy, kept
 * by design; shims and instances of a server that was SIGKILLed) is killed
 * by pid, and the site's own cgroup (`bulwark/<scope>`, kept for re-adoption)
 * is removed once empty: rmdir fails on a cgroup that still holds an
 * instance, so a leaked one stays for the run's leftover check. Throws, after that clean-up, when the instances did not go away
 * through the API: a removal that does not remove is a bug to see.
 */
export async function stopAndClean(cp: ControlPlaneProcess): Promise<void> {
  let problem: string | undefined;
  // A stopped (SIGSTOPped) instance cannot act on the SIGTERM of its removal: let it run first.
  for (const p of instanceProcesses(cp.gatewayPort)) {
    try {
      process.kill(p.pid, 'SIGCONT');
    } catch {
      // exited meanwhile
    }
  }
  if (cp.child.exitCode === null && cp.child.signalCode === null) {
    try {
      const apps = await cp.api<{ items: { metadata: { project: string; name: string } }[] }>(
        'GET',
        '/api/v1/apps',
      );
      for (const a of apps.body.items)
        await cp.api('DELETE', `/api/v1/projects/${a.metadata.project}/apps/${a.metadata.name}`);
      let left: string[] = [];
      await waitFor(
        'every instance removed',
        async () => {
          const r = await cp.api<{ items: { id: string }[] }>('GET', '/api/v1/instances');
          left = r.body.items.map((i) => i.id);
          return left.length === 0;
        },
        { timeoutMs: 60_000, intervalMs: 300 },
      ).catch(() => {
        problem = `instances still listed 60 s after their apps were deleted: ${left.join(', ')}`;
      });
    } catch (err) {
      problem = `could not delete the apps through the API: ${String(err)}`;
    }
    await cp.kill('SIGTERM');
  }
  const stray = [
    ...new Set([...processesOf(cp.dataDir), ...instanceProcesses(cp.gatewayPort).map((p) => p.pid)]),
  ];
  for (const pid of stray) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  await waitFor(
    'stray processes gone',
    () => stray.every((pid) => !fs.existsSync(`/proc/${pid}/cmdline`) || isZombie(pid)),
    {
      timeoutMs: 10_000,
    },
  ).catch(() => undefined);
  removeEmptySiteCgroups(cp.dataDir);
  if (problem) throw new Error(`stopping the control plane of ${cp.dataDir}: ${problem}`);
}

/** Removes the (empty) per-site cgroup of each local site under the data dir: `<hierarchy>/bulwark*\/<scope>`. */
function removeEmptySiteCgroups(dataDir: string): void {
  let sites: string[] = [];
  try {
    sites = fs.readdirSync(path.join(dataDir, 'sites'));
  } catch {
    return; // never started a site
  }
  removeEmptyScopeCgroups(new Set(sites.map((s) => scopeOf(path.join(dataDir, 'sites', s, 'instances')))));
}

function isZombie(pid: number): boolean {
  try {
    return /^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
}

/** Processes whose command line or working directory is in `dir` (HAProxy's config, shims' state dirs). */
export function processesOf(dir: string): number[] {
  const abs = path.resolve(dir);
  const found: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ');
      let cwd = '';
      try {
        cwd = fs.readlinkSync(`/proc/${name}/cwd`);
      } catch {
        // not ours to read
      }
      if (cmdline.includes(`${abs}/`) || cwd === abs || cwd.startsWith(`${abs}/`)) found.push(Number(name));
    } catch {
      // exited while we looked
    }
  }
  return found;
}

/** Processes whose environment says they are instances behind this gateway port. */
export function instanceProcesses(
  gatewayPort: number,
): { pid: number; instanceId: string; cmdline: string }[] {
  const found: { pid: number; instanceId: string; cmdline: string }[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const env = fs.readFileSync(`/proc/${name}/environ`, 'utf8').split('\0');
      const gw = env.find((e) => e.startsWith('BULWARK_GATEWAY_URL='));
      const id = env.find((e) => e.startsWith('BULWARK_INSTANCE_ID='));
      if (!gw || !id || !gw.endsWith(`:${gatewayPort}`)) continue;
      const cmdline = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ');
      // The per-instance shim carries the same environment; count only the workload itself.
      if (cmdline.includes('shim')) continue;
      // So do the sandbox's bwrap and its init (pid 1 inside the instance's PID namespace).
      if (fs.readFileSync(`/proc/${name}/comm`, 'utf8').trim() === 'bwrap') continue;
      found.push({ pid: Number(name), instanceId: id.slice('BULWARK_INSTANCE_ID='.length), cmdline });
    } catch {
      // Process exited while we looked, or is not ours to read.
    }
  }
  return found;
}
