/**
 * Test support: start the fixture server (optionally inside a network
 * namespace) and run the load fixture; everything started here is killed by
 * `stop()` / `deleteNetns()`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const SERVER = fileURLToPath(new URL('./server.ts', import.meta.url));
export const LOAD = fileURLToPath(new URL('./load.ts', import.meta.url));

export interface Fixture {
  child: ChildProcess;
  pid: number;
  port: number;
  /** stdout and stderr lines so far, in arrival order. */
  lines: string[];
  stop(): Promise<void>;
}

export function sh(file: string, args: string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs }, (err, stdout, stderr) =>
      err ? reject(new Error(`${file} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
    );
  });
}

export async function createNetns(name: string): Promise<void> {
  await sh('ip', ['netns', 'add', name]);
  await sh('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
}

export async function deleteNetns(name: string): Promise<void> {
  await sh('ip', ['netns', 'delete', name]).catch(() => undefined);
}

export async function startServer(
  opts: {
    env?: Record<string, string>;
    netns?: string;
    nodeArgs?: string[];
    /** cgroup v1 `cgroup.procs` files the server's pid is written to right after spawn. */
    cgroupProcs?: string[];
  } = {},
): Promise<Fixture> {
  const argv = [process.execPath, ...(opts.nodeArgs ?? []), SERVER];
  // `ip netns exec` execs the command in place, so the child's pid is node's.
  const [file, args] = opts.netns
    ? ['ip', ['netns', 'exec', opts.netns, ...argv]]
    : [argv[0]!, argv.slice(1)];
  // Its own process group, so stop() also ends a child it runs (FIXTURE_BLOCK_AFTER_MS's sleep).
  const child = spawn(file, args, {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  for (const procs of opts.cgroupProcs ?? []) writeFileSync(procs, String(child.pid));
  const lines: string[] = [];
  const onData = (buf: Buffer): void => {
    lines.push(...buf.toString().split('\n').filter(Boolean));
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async (): Promise<void> => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // the group is gone already
    }
    await exited;
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    const m = lines.map((l) => /^listening (\d+)/.exec(l)).find(Boolean);
    if (m) return { child, pid: child.pid!, port: Number(m[1]), lines, stop };
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop();
      throw new Error(`fixture server did not start: ${lines.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface LoadResult {
  ok: number;
  failed: number;
  errors: string[];
}

/** Run the load fixture against `url` for `durationMs` (inside `netns` when given). */
export async function runLoad(url: string, durationMs: number, netns?: string): Promise<LoadResult> {
  const argv = [process.execPath, LOAD];
  const [file, args] = netns ? ['ip', ['netns', 'exec', netns, ...argv]] : [argv[0]!, argv.slice(1)];
  const out = await new Promise<string>((resolve, reject) => {
    execFile(
      file,
      args,
      { timeout: durationMs + 10_000, env: { ...process.env, URL: url, DURATION_MS: String(durationMs) } },
      (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout)),
    );
  });
  return JSON.parse(out.trim().split('\n').at(-1)!) as LoadResult;
}
