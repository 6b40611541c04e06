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
  return {
    url,
    gatewayUrl: `http://127.0.0.1:${gatewayPort}`,
    gatewayPort,
    token,
    dataDir: opts.dataDir,
    pid: child.pid as number,
    child,
    output: () => out,
    api,
    kill: async (signal) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill(signal);
      await exited;
    },
  };
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
      found.push({ pid: Number(name), instanceId: id.slice('BULWARK_INSTANCE_ID='.length), cmdline });
    } catch {
      // Process exited while we looked, or is not ours to read.
    }
  }
  return found;
}
