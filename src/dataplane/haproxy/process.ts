/**
 * Owns one HAProxy process tree (master-worker mode) in a work directory.
 *
 * - Master-worker (`-W -S master.sock`): a reload is SIGUSR2 to the master,
 *   which re-executes itself and starts a new worker that takes the listening
 *   sockets over from the old one (`expose-fd listeners`), so no connection
 *   is refused during a reload. The master stays our direct child, so a crash
 *   (the master exits when a worker dies) is seen as an `exit` event.
 * - Each configuration generation is written to its own directory, validated
 *   with `haproxy -c`, then `haproxy.cfg` is switched by an atomic rename.
 * - A pid file plus a /proc scan find an HAProxy left by a previous run of
 *   the control plane on the same work dir; it is stopped before we start.
 * - The work dir is private (`private-dir.ts`: 0700, ours, parents nobody
 *   else can write): the admin and master sockets in it drive the gateway,
 *   and the config files carry the request-log key. The sockets are 0600 as
 *   well, in case the directory's mode is ever loosened.
 */
import { spawn, execFile } from 'node:child_process';
import { promises as fs, existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ensurePrivateDir } from './private-dir.ts';
import { RuntimeApi } from './runtime-api.ts';
import type { RenderedConfig } from './config.ts';
import { sleep } from '../../util/time.ts';

const execFileP = promisify(execFile);

export const DEFAULT_HAPROXY_BINARY = '/usr/sbin/haproxy';
export const INSTALL_HINT = 'apt-get install -y haproxy';

/** Find the haproxy binary; optionally install it with apt when running as root. */
export async function ensureHaproxy(
  opts: { binary?: string; autoInstall?: boolean } = {},
): Promise<{ binary: string; version: string; installed: boolean }> {
  const candidates = opts.binary
    ? [opts.binary]
    : [DEFAULT_HAPROXY_BINARY, '/usr/local/sbin/haproxy', '/usr/bin/haproxy'];
  const found = candidates.find((c) => existsSync(c));
  if (found) return { binary: found, version: await haproxyVersion(found), installed: false };
  if (opts.autoInstall && !opts.binary) {
    if (process.getuid?.() !== 0) {
      throw new Error(`haproxy is not installed and auto-install needs root: run '${INSTALL_HINT}' as root`);
    }
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    await execFileP('apt-get', ['update'], { env, timeout: 300_000 });
    await execFileP('apt-get', ['install', '-y', 'haproxy'], { env, timeout: 600_000 });
    if (existsSync(DEFAULT_HAPROXY_BINARY)) {
      return {
        binary: DEFAULT_HAPROXY_BINARY,
        version: await haproxyVersion(DEFAULT_HAPROXY_BINARY),
        installed: true,
      };
    }
  }
  throw new Error(
    `haproxy binary not found (looked at ${candidates.join(', ')}): install it with '${INSTALL_HINT}' ` +
      `(as root), or pass { autoInstall: true } when running as root`,
  );
}

async function haproxyVersion(binary: string): Promise<string> {
  const { stdout } = await execFileP(binary, ['-v']);
  return /version (\S+)/.exec(stdout)?.[1] ?? 'unknown';
}

/** Run `haproxy -c`; throws an error carrying HAProxy's own alert lines. */
export async function validateConfig(binary: string, cfgPath: string): Promise<void> {
  try {
    await execFileP(binary, ['-c', '-f', cfgPath], { timeout: 30_000 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    const text = `${e.stdout ?? ''}${e.stderr ?? ''}`;
    const alerts = text
      .split('\n')
      .filter((l) => /ALERT|error/i.test(l))
      .join('\n');
    throw new Error(`HAProxy rejected configuration ${cfgPath}:\n${alerts || text || e.message}`);
  }
}

export type ProcessState = 'stopped' | 'starting' | 'running' | 'restarting' | 'failed';

export interface HaproxyProcessStatus {
  state: ProcessState;
  masterPid?: number;
  workerPid?: number;
  generation: number;
  reloads: number;
  restarts: number;
  staleStopped: number;
  lastError?: string;
  configPath: string;
}

export interface HaproxyProcessOptions {
  workDir: string;
  binary?: string;
  /** Produces the configuration for a map directory; called on start, reload and crash restart. */
  render: (mapDir: string) => RenderedConfig;
  /** Called after a crash restart, once the new worker answers (e.g. to re-apply runtime state). */
  onRestarted?: () => void;
  /** Give up restarting after this many crashes within a minute. @default 5 */
  maxRestartsPerMinute?: number;
  /** How long to wait for a worker to answer on the stats socket. @default 10000 */
  readyTimeoutMs?: number;
  /**
   * Start HAProxy on these CPUs only (`taskset`): the master and every worker
   * it forks. HAProxy 2.6 ignores `cpu-map` when it runs one thread, so the
   * config's `nbthread`/`cpu-map` (RenderOptions.cpus) need this for one CPU;
   * for several it also keeps the master off the instances' cores.
   */
  cpus?: readonly number[];
}

export class HaproxyProcess {
  readonly workDir: string;
  readonly binary: string;
  readonly configPath: string;
  readonly pidFile: string;
  readonly statsSocketPath: string;
  readonly masterSocketPath: string;
  readonly api: RuntimeApi;
  private readonly opts: HaproxyProcessOptions;
  private child: ReturnType<typeof spawn> | undefined;
  private state: ProcessState = 'stopped';
  private stopping = false;
  private generation = 0;
  private reloads = 0;
  private restarts = 0;
  private staleStopped = 0;
  private crashTimes: number[] = [];
  private workerPid: number | undefined;
  private lastError: string | undefined;
  private stderrTail: string[] = [];

  constructor(opts: HaproxyProcessOptions) {
    this.opts = opts;
    this.workDir = path.resolve(opts.workDir);
    this.binary = opts.binary ?? DEFAULT_HAPROXY_BINARY;
    this.configPath = path.join(this.workDir, 'haproxy.cfg');
    this.pidFile = path.join(this.workDir, 'haproxy.pid');
    this.statsSocketPath = path.join(this.workDir, 'stats.sock');
    this.masterSocketPath = path.join(this.workDir, 'master.sock');
    this.api = new RuntimeApi({ socketPath: this.statsSocketPath });
  }

  /** Create the work dir, stop a stale HAProxy from a previous run, write + validate the config, start. */
  static async create(opts: HaproxyProcessOptions): Promise<HaproxyProcess> {
    const p = new HaproxyProcess(opts);
    ensurePrivateDir(p.workDir);
    await p.stopStale();
    await p.writeGeneration();
    await p.spawnAndWait();
    return p;
  }

  status(): HaproxyProcessStatus {
    return {
      state: this.state,
      masterPid: this.child?.pid,
      workerPid: this.workerPid,
      generation: this.generation,
      reloads: this.reloads,
      restarts: this.restarts,
      staleStopped: this.staleStopped,
      lastError: this.lastError,
      configPath: this.configPath,
    };
  }

  /** Re-render, validate and reload seamlessly; resolves when the new worker answers. */
  async reload(): Promise<void> {
    if (!this.child?.pid || this.state !== 'running')
      throw new Error(`cannot reload HAProxy in state ${this.state}`);
    const oldWorker = this.workerPid;
    await this.writeGeneration();
    this.child.kill('SIGUSR2');
    this.workerPid = await this.waitForWorker(oldWorker);
    this.reloads++;
    await this.pruneGenerations();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const killed = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
      if (!killed) {
        child.kill('SIGKILL');
        await exited;
      }
    }
    this.child = undefined;
    this.state = 'stopped';
    await fs.rm(this.pidFile, { force: true });
  }

  private async writeGeneration(): Promise<void> {
    const gen = this.generation + 1;
    const dir = path.join(this.workDir, `gen-${gen}`);
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const rendered = this.opts.render(dir);
    for (const [name, content] of Object.entries(rendered.files)) {
      await fs.writeFile(path.join(dir, name), content, { mode: 0o600 });
    }
    const candidate = path.join(dir, 'haproxy.cfg');
    await fs.writeFile(candidate, rendered.cfg, { mode: 0o600 });
    try {
      await validateConfig(this.binary, candidate);
    } catch (err) {
      this.lastError = (err as Error).message;
      throw err;
    }
    const tmp = `${this.configPath}.tmp`;
    await fs.writeFile(tmp, rendered.cfg, { mode: 0o600 });
    await fs.rename(tmp, this.configPath);
    this.generation = gen;
  }

  /** Keep the current and previous generation (an old worker may still read nothing, but keep one for debugging). */
  private async pruneGenerations(): Promise<void> {
    for (const entry of await fs.readdir(this.workDir)) {
      const m = /^gen-(\d+)$/.exec(entry);
      if (m && Number(m[1]) < this.generation - 1) {
        await fs.rm(path.join(this.workDir, entry), { recursive: true, force: true });
      }
    }
  }

  private async spawnAndWait(): Promise<void> {
    this.state = 'starting';
    this.stopping = false;
    await fs.rm(this.statsSocketPath, { force: true });
    // The master CLI can stop, reload and reach every worker's CLI: owner only, like the stats socket.
    const master = `${this.masterSocketPath},mode,600`;
    const args = ['-W', '-S', master, '-f', this.configPath, '-p', this.pidFile];
    // taskset execs HAProxy in place: the child's pid is the master's.
    const [cmd, argv] = this.opts.cpus
      ? ['taskset', ['-c', this.opts.cpus.join(','), this.binary, ...args]]
      : [this.binary, args];
    const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => {
      this.stderrTail.push(...d.split('\n').filter(Boolean));
      if (this.stderrTail.length > 50) this.stderrTail.splice(0, this.stderrTail.length - 50);
    });
    child.on('exit', (code, signal) => this.onExit(child, code, signal));
    try {
      this.workerPid = await this.waitForWorker(undefined);
    } catch (err) {
      child.kill('SIGKILL');
      this.state = 'failed';
      this.lastError = `HAProxy did not start: ${(err as Error).message}\n${this.stderrTail.slice(-10).join('\n')}`;
      throw new Error(this.lastError);
    }
    this.state = 'running';
  }

  private onExit(child: ReturnType<typeof spawn>, code: number | null, signal: string | null): void {
    if (child !== this.child || this.stopping || this.state === 'failed') return;
    this.lastError = `HAProxy master exited (code ${code}, signal ${signal}): ${this.stderrTail.slice(-3).join(' | ')}`;
    const now = Date.now();
    this.crashTimes = this.crashTimes.filter((t) => now - t < 60_000);
    this.crashTimes.push(now);
    if (this.crashTimes.length > (this.opts.maxRestartsPerMinute ?? 5)) {
      this.state = 'failed';
      return;
    }
    this.state = 'restarting';
    void this.restartAfterCrash();
  }

  private async restartAfterCrash(): Promise<void> {
    try {
      await sleep(100);
      // A worker of the dead master may linger for a moment holding the port.
      await this.stopStale();
      await this.writeGeneration();
      await this.spawnAndWait();
      this.restarts++;
      this.opts.onRestarted?.();
    } catch (err) {
      this.state = 'failed';
      this.lastError = `restart after crash failed: ${(err as Error).message}`;
    }
  }

  /** Poll `show info` until a worker other than `previous` answers; returns its pid. */
  private async waitForWorker(previous: number | undefined): Promise<number> {
    const deadline = Date.now() + (this.opts.readyTimeoutMs ?? 10_000);
    let last = '';
    while (Date.now() < deadline) {
      if (this.child && (this.child.exitCode !== null || this.child.signalCode !== null)) {
        throw new Error(`HAProxy exited during start: ${this.stderrTail.slice(-5).join(' | ')}`);
      }
      try {
        const info = await this.api.showInfo();
        const pid = Number(info['Pid']);
        if (pid && pid !== previous) return pid;
      } catch (err) {
        last = (err as Error).message;
      }
      await sleep(20);
    }
    throw new Error(
      `no HAProxy worker answered on ${this.statsSocketPath} in time${last ? `: ${last}` : ''}`,
    );
  }

  /** Stop any HAProxy started on this work dir's config by a previous run (pid file or /proc scan). */
  private async stopStale(): Promise<void> {
    const pids = new Set<number>();
    try {
      const pid = Number(readFileSync(this.pidFile, 'utf8').trim());
      if (pid && this.cmdlineMatches(pid)) pids.add(pid);
    } catch {
      // no pid file: nothing recorded
    }
    for (const entry of readdirSync('/proc')) {
      const pid = Number(entry);
      if (pid && pid !== this.child?.pid && this.cmdlineMatches(pid)) pids.add(pid);
    }
    if (this.child?.pid) pids.delete(this.child.pid);
    if (pids.size === 0) return;
    for (const pid of pids) safeKill(pid, 'SIGTERM');
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && [...pids].some(alive)) await sleep(20);
    for (const pid of pids) if (alive(pid)) safeKill(pid, 'SIGKILL');
    while ([...pids].some(alive) && Date.now() < deadline + 2000) await sleep(20);
    this.staleStopped += pids.size;
    await fs.rm(this.pidFile, { force: true });
  }

  private cmdlineMatches(pid: number): boolean {
    try {
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return args.some((a) => a.endsWith('haproxy')) && args.includes(this.configPath);
    } catch {
      return false;
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still answers signal 0; treat it as gone.
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

function safeKill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}
