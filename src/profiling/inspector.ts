/**
 * Profile a running Node.js process without restarting it: SIGUSR1 opens its
 * inspector, a helper speaks the DevTools protocol to it (CPU profile for N
 * seconds, heap statistics), then closes the inspector again. The process
 * keeps its PID and keeps serving; sampling costs a few percent of CPU.
 *
 * Who can reach the inspector. An open inspector runs arbitrary code for
 * whoever connects, so where it may open is decided before SIGUSR1 is sent
 * (`exposure.ts`):
 * - in the instance's own network namespace, the helper joins it (`ip netns
 *   exec <netns>`, or `nsenter --net` by pid) and talks to 127.0.0.1 there;
 *   that loopback is reachable only from inside the namespace, i.e. by the
 *   instance and by us.
 * - in the host's namespace (unprivileged mode) only on a random port:
 *   the process must have been started with `--inspect-port=0` (e.g. in
 *   NODE_OPTIONS); a fixed port (the default 9229) is refused with code
 *   `unsafe` and no signal sent. Any local process could still find the
 *   random port in /proc/net/tcp for the seconds the profile lasts, so every
 *   connection to it that is not the helper's is watched for and reported
 *   (`audit.foreignClients`, a warning).
 * The inspector is closed from inside the target after the session, also
 * when the session failed, and the result says whether /proc confirms it.
 *
 * Processes that cannot answer: a stopped process (state T) is refused
 * without sending SIGUSR1 (the signal would stay pending and open the
 * inspector later, unattended, on SIGCONT). A process spinning in JavaScript
 * still answers (V8 interrupts). A process blocked in native code (a sync
 * child process, a blocking read) never opens the inspector; that ends in a
 * clear `inspector-not-open` error after `openTimeoutMs`. Known gap: SIGUSR1
 * then stays pending and the inspector opens when the thread unblocks.
 *
 * @example
 *   const r = await profileNodeProcess({ pid, netns: inst.isolation.netns, durationMs: 5000, outDir });
 *   // r.cpuProfilePath opens in Chrome DevTools; r.foldedPath feeds flamegraph.pl
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertCpuProfile, toFolded } from './folded.ts';
import { inspectorExposure, type Exposure } from './exposure.ts';
import type { HeapStats, SessionResult } from './inspector-session.ts';
import {
  clientsOfPort,
  isLoopback,
  listeningSocketsOf,
  ownersOfSocket,
  socketInodes,
  looksLikeNode,
  processExecutable,
  processState,
  type ListeningSocket,
} from './proc-net.ts';

export interface ProfileOptions {
  pid: number;
  /** Network namespace of the instance (InstanceStatus.isolation.netns); absent = host loopback. */
  netns?: string;
  /** How long the CPU profile samples, 1..600000 ms. */
  durationMs: number;
  /** Directory for the `.cpuprofile` and `.folded` files; created when missing. */
  outDir: string;
  /** Last lines of the instance's stderr+stdout; used to explain an inspector that did not open. */
  logTail?: () => Promise<string[]>;
  /** How long to wait for the inspector to listen after SIGUSR1. @default 3000 */
  openTimeoutMs?: number;
  /** Budget for each DevTools round trip. @default 3000 */
  answerTimeoutMs?: number;
  /** How long to wait for the port to stop listening after the close request. @default 2000 */
  closeTimeoutMs?: number;
}

export interface ProfileResult {
  pid: number;
  cpuProfilePath: string;
  foldedPath: string;
  /** Samples in the profile (1 per ~1 ms of on-CPU or idle time). */
  samples: number;
  heap: HeapStats | undefined;
  /** /proc confirms the inspector port no longer listens. */
  inspectorClosed: boolean;
  /** Wall time the profiler actually ran. */
  durationMs: number;
  /** Audit trail of what was done to the process. */
  audit: {
    via: 'netns' | 'host-loopback';
    netns?: string;
    inspectorPort: number;
    /**
     * host-loopback: connections to the inspector from anyone but the helper
     * while it was open (socket inode, and the processes holding it when
     * they could still be found). Empty is the expected value.
     */
    foreignClients?: { inode: number; owners: { pid: number; comm: string }[] }[];
    signalledAt: string;
    openedAt: string;
    closedAt?: string;
  };
  /** Parts that did not work although the profile did (heap statistics, closing). */
  warnings: string[];
}

export type ProfileErrorCode =
  | 'invalid-option'
  | 'not-found'
  | 'not-node'
  | 'stopped'
  | 'zombie'
  | 'no-netns'
  | 'unsafe'
  | 'inspector-not-open'
  | 'inspector-timeout'
  | 'inspector-failed';

export class ProfileError extends Error {
  readonly code: ProfileErrorCode;
  /** Whether the inspector is known closed (undefined: it never opened, or we cannot tell). */
  readonly inspectorClosed: boolean | undefined;
  constructor(code: ProfileErrorCode, message: string, inspectorClosed?: boolean) {
    super(message);
    this.name = 'ProfileError';
    this.code = code;
    this.inspectorClosed = inspectorClosed;
  }
}

const HELPER = fileURLToPath(new URL('./inspector-helper.ts', import.meta.url));
const POLL_MS = 25;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function validate(o: ProfileOptions): void {
  if (!Number.isInteger(o.pid) || o.pid <= 0) {
    throw new ProfileError('invalid-option', `pid must be a positive integer, got ${String(o.pid)}`);
  }
  if (!Number.isInteger(o.durationMs) || o.durationMs < 1 || o.durationMs > 600_000) {
    throw new ProfileError(
      'invalid-option',
      `durationMs must be an integer in 1..600000, got ${String(o.durationMs)}`,
    );
  }
  if (typeof o.outDir !== 'string' || o.outDir === '') {
    throw new ProfileError('invalid-option', 'outDir must be a directory path');
  }
  if (o.netns !== undefined && !/^[A-Za-z0-9_.-]+$/.test(o.netns)) {
    throw new ProfileError(
      'invalid-option',
      `netns '${o.netns}' is not a valid namespace name (see 'ip netns list')`,
    );
  }
}

/** Refuse processes that cannot or must not be profiled, with the reason. */
async function checkTarget(pid: number): Promise<void> {
  const state = await processState(pid);
  if (state === undefined) throw new ProfileError('not-found', `process ${pid} does not exist`);
  if (state === 'Z' || state === 'X')
    throw new ProfileError('zombie', `process ${pid} has exited (state ${state})`);
  if (state === 'T' || state === 't') {
    throw new ProfileError(
      'stopped',
      `process ${pid} is stopped (state ${state}): a stopped process cannot answer the inspector; ` +
        'SIGUSR1 was not sent, so the inspector will not open later on SIGCONT',
    );
  }
  const exe = await processExecutable(pid);
  if (!exe || !looksLikeNode(exe)) {
    throw new ProfileError(
      'not-node',
      `process ${pid} is not a Node.js process (executable ${exe ?? 'unknown'})`,
    );
  }
}

/** Lines of `after` that follow the last line of `before` (the log grew since). */
function newLines(before: string[], after: string[]): string[] {
  const last = before.at(-1);
  if (last === undefined) return after;
  const i = after.lastIndexOf(last);
  return i < 0 ? after : after.slice(i + 1);
}

async function waitForInspector(
  o: ProfileOptions,
  before: Set<number>,
  logBefore: string[],
  timeoutMs: number,
): Promise<ListeningSocket> {
  const deadline = Date.now() + timeoutMs;
  let fresh: string[] = [];
  while (Date.now() < deadline) {
    const found = (await listeningSocketsOf(o.pid)).find(
      (s) => !before.has(s.inode) && isLoopback(s.address),
    );
    if (found) return found;
    if (o.logTail) {
      fresh = newLines(logBefore, await o.logTail().catch(() => []));
      const failed = fresh.find((l) => /Starting inspector on .* failed/.test(l));
      if (failed)
        throw new ProfileError(
          'inspector-not-open',
          `process ${o.pid} could not open its inspector: ${failed.trim()}`,
        );
    }
    if ((await processState(o.pid)) === undefined) {
      throw new ProfileError('not-found', `process ${o.pid} exited while its inspector was opening`);
    }
    await sleep(POLL_MS);
  }
  throw new ProfileError(
    'inspector-not-open',
    `inspector of process ${o.pid} did not open within ${timeoutMs} ms of SIGUSR1: its main thread is ` +
      'probably blocked in native code (synchronous I/O or child process), or it was started with ' +
      '--inspect already, or it ignores SIGUSR1',
    undefined,
  );
}

async function waitForClose(pid: number, inode: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const still = (await listeningSocketsOf(pid)).some((s) => s.inode === inode);
    if (!still) return true;
    if (Date.now() >= deadline) return false;
    await sleep(POLL_MS);
  }
}

function helperCommand(exposure: Exposure, pid: number, nodeArgs: string[]): [string, string[]] {
  if (exposure.via === 'netns')
    return ['ip', ['netns', 'exec', exposure.netns, process.execPath, ...nodeArgs]];
  // A namespace without a name in /run/netns (e.g. a sandbox's): join the target's own.
  if (exposure.via === 'netns-pid')
    return ['nsenter', [`--target=${pid}`, '--net', process.execPath, ...nodeArgs]];
  return [process.execPath, nodeArgs];
}

function runHelper(
  command: [string, string[]],
  timeoutMs: number,
  onStart: (child: ChildProcess) => void,
): Promise<SessionResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      command[0],
      command[1],
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        const line = stdout.trim().split('\n').at(-1);
        if (line?.startsWith('{')) {
          resolve(JSON.parse(line) as SessionResult);
          return;
        }
        const why = err?.killed
          ? `did not finish within ${timeoutMs} ms`
          : stderr.trim() || String(err?.message);
        reject(new ProfileError('inspector-timeout', `inspector helper ${why}`));
      },
    );
    onStart(child);
  });
}

/**
 * Until `stop()`: connections to the inspector port whose socket the helper
 * does not hold. A socket counts once it is seen in two polls in a row, so
 * the helper's own connection, between its fd closing and the kernel
 * dropping the row, is never taken for someone else's.
 */
function watchForeignClients(
  targetPid: number,
  port: number,
  helperPid: () => number | undefined,
): { stop: () => Promise<NonNullable<ProfileResult['audit']['foreignClients']>> } {
  const seenOnce = new Set<number>();
  const foreign = new Map<number, { pid: number; comm: string }[]>();
  let running = true;
  const poll = async (): Promise<void> => {
    while (running) {
      const clients = await clientsOfPort(targetPid, port);
      const pid = helperPid();
      const ours = pid !== undefined ? await socketInodes(pid) : new Set<number>();
      const now = new Set(clients.filter((i) => !ours.has(i)));
      for (const inode of now) {
        if (foreign.has(inode)) continue;
        if (seenOnce.has(inode)) foreign.set(inode, await ownersOfSocket(inode));
        else seenOnce.add(inode);
      }
      for (const inode of seenOnce) if (!now.has(inode)) seenOnce.delete(inode);
      await sleep(POLL_MS);
    }
  };
  const done = poll();
  return {
    stop: async () => {
      running = false;
      await done;
      return [...foreign].map(([inode, owners]) => ({ inode, owners }));
    },
  };
}

export async function profileNodeProcess(o: ProfileOptions): Promise<ProfileResult> {
  validate(o);
  const openTimeoutMs = o.openTimeoutMs ?? 3000;
  const answerTimeoutMs = o.answerTimeoutMs ?? 3000;
  const closeTimeoutMs = o.closeTimeoutMs ?? 2000;
  if (o.netns !== undefined && !existsSync(`/run/netns/${o.netns}`)) {
    throw new ProfileError('no-netns', `network namespace '${o.netns}' does not exist (see 'ip netns list')`);
  }
  await checkTarget(o.pid);
  const exposure = await inspectorExposure(o.pid, o.netns);
  if (exposure.via === 'unsafe') throw new ProfileError('unsafe', exposure.reason);
  // 0700/0600: a profile shows the program's code paths (and the caller's evidence may hold more).
  await mkdir(o.outDir, { recursive: true, mode: 0o700 });

  const before = new Set((await listeningSocketsOf(o.pid)).map((s) => s.inode));
  const logBefore = o.logTail ? await o.logTail().catch(() => []) : [];
  const signalledAt = new Date().toISOString();
  process.kill(o.pid, 'SIGUSR1');
  const sock = await waitForInspector(o, before, logBefore, openTimeoutMs);
  const openedAt = new Date().toISOString();

  const stamp = signalledAt.replace(/[:.]/g, '-');
  const cpuProfilePath = path.join(o.outDir, `cpu-${o.pid}-${stamp}.cpuprofile`);
  const foldedPath = path.join(o.outDir, `cpu-${o.pid}-${stamp}.folded`);
  // Each of the helper's round trips has its own budget; the kill timer covers them all plus start-up.
  const helperTimeoutMs = o.durationMs + 7 * answerTimeoutMs + 2000;
  let session: SessionResult | undefined;
  let helperError: ProfileError | undefined;
  const input = { port: sock.port, durationMs: o.durationMs, cpuProfilePath, answerTimeoutMs };
  const nodeArgs = ['--disable-warning=ExperimentalWarning', HELPER, JSON.stringify(input)];
  let helper: ChildProcess | undefined;
  // Only the host loopback is shared with other processes; a namespace's is the instance's own.
  const watch =
    exposure.via === 'host-loopback' ? watchForeignClients(o.pid, sock.port, () => helper?.pid) : undefined;
  try {
    session = await runHelper(helperCommand(exposure, o.pid, nodeArgs), helperTimeoutMs, (c) => {
      helper = c;
    });
  } catch (err) {
    helperError = err as ProfileError;
  }
  const inspectorClosed = await waitForClose(o.pid, sock.inode, closeTimeoutMs);
  const foreignClients = await watch?.stop();
  const closedAt = inspectorClosed ? new Date().toISOString() : undefined;

  if (!session?.cpuProfileWritten) {
    const why =
      helperError?.message ?? `${session?.stage ?? 'session'}: ${session?.error ?? 'unknown error'}`;
    const code = /did not answer|did not open|within \d+ ms/.test(why)
      ? 'inspector-timeout'
      : 'inspector-failed';
    const closed = inspectorClosed ? 'inspector closed' : 'WARNING: inspector may still be open';
    throw new ProfileError(code, `profiling process ${o.pid} failed at ${why} (${closed})`, inspectorClosed);
  }

  const profile: unknown = JSON.parse(await readFile(cpuProfilePath, 'utf8'));
  assertCpuProfile(profile);
  await writeFile(foldedPath, toFolded(profile), { mode: 0o600 });
  const warnings: string[] = [];
  if (!session.ok) warnings.push(`${session.stage ?? 'session'}: ${session.error ?? 'failed'}`);
  if (session.closeError) warnings.push(`close: ${session.closeError}`);
  if (!inspectorClosed)
    warnings.push(`inspector port ${sock.port} still listens ${closeTimeoutMs} ms after close`);
  for (const f of foreignClients ?? [])
    warnings.push(
      `another process connected to the inspector on 127.0.0.1:${sock.port} while it was open (socket ${f.inode}, ${
        f.owners.map((x) => `pid ${x.pid} ${x.comm}`).join(', ') || 'owner gone'
      })`,
    );
  return {
    pid: o.pid,
    cpuProfilePath,
    foldedPath,
    samples: session.samples ?? profile.samples?.length ?? 0,
    heap: session.heap,
    inspectorClosed,
    durationMs: session.profiledMs ?? o.durationMs,
    audit: {
      via: exposure.via === 'host-loopback' ? 'host-loopback' : 'netns',
      ...(o.netns ? { netns: o.netns } : {}),
      inspectorPort: sock.port,
      ...(foreignClients ? { foreignClients } : {}),
      signalledAt,
      openedAt,
      ...(closedAt ? { closedAt } : {}),
    },
    warnings,
  };
}
