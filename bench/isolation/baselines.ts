/**
 * The baselines: one hand-started HAProxy with one backend per baseline, each
 * backend with its own 4 demo ledger processes. The HAProxy config is Bulwark's
 * own rendering (`renderConfig`: same timeouts, retries, redispatch, retry-on
 * and disable-l7-retry rules), only the server check/observe options differ,
 * so what is compared is detection and nothing else. Without a controller the
 * benchmark itself clears each fault (SIGCONT, fault `none`, restart).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { renderConfig } from '../../src/dataplane/haproxy/config.ts';
import { CgroupsV1, type CgroupPaths } from '../../src/runtime/local/cgroups.ts';
import { freePort } from '../../src/util/ports.ts';
import { sleep, waitFor } from '../../src/util/time.ts';
import { onCleanup } from './cleanup.ts';
import {
  ServerWatcher,
  alive,
  healthy,
  inject,
  now,
  setFault,
  describe,
  type Fault,
  type Injection,
} from './harness.ts';

const execFileP = promisify(execFile);
const HAPROXY = '/usr/sbin/haproxy';
export const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
export const REPLICAS = 4;
/** Same limits as the Bulwark manifest (ledger.yaml), so a leak hits the same wall. */
export const MEMORY_BYTES = 256 * 1024 * 1024;
export const CPU_CORES = 0.5;
/** Errors are still attributed to an injection for this long after isolation (requests in flight then). */
export const SETTLE_MS = 1000;

export type BaselineName = 'k8s' | 'haproxy' | 'envoy';

export interface BaselineSpec {
  name: BaselineName;
  title: string;
  /** Options of each `server` line: check timing and passive observation. */
  serverOptions: string;
  /** Extra backend directives. */
  backendLines: string[];
  /** An injection not isolated after this long is recorded as "not isolated". */
  windowMs: number;
  /**
   * Keep Bulwark's layer-7 retries (5xx status, response timeout). HAProxy never passes a response
   * it retries to `observe`, so a detector that counts errors is blind under them.
   * @default true
   */
  l7Retries?: boolean;
}

export const BASELINES: Record<BaselineName, BaselineSpec> = {
  // readinessProbe defaults: periodSeconds 10, timeoutSeconds 1, failureThreshold 3, successThreshold 1.
  k8s: {
    name: 'k8s',
    title: 'Kubernetes readiness defaults (httpGet /healthz every 10 s, timeout 1 s, 3 failures)',
    serverOptions: 'check inter 10s fall 3 rise 1',
    backendLines: ['timeout check 1s'],
    windowMs: 35_000,
  },
  // HAProxy's default timing (inter 2s, fall 3, rise 2); an HTTP check on the health path, since a
  // plain TCP check would not even see a 5xx or a stopped process (the kernel still accepts).
  haproxy: {
    name: 'haproxy',
    title: 'HAProxy default checks (httpchk /healthz, inter 2 s, fall 3, rise 2)',
    serverOptions: 'check inter 2s fall 3 rise 2',
    backendLines: [],
    windowMs: 12_000,
  },
  // Envoy outlier detection defaults: consecutive_5xx 5 (connect failures count as 5xx), no active
  // health checking; a slow 10 s check only brings an ejected host back (Envoy: interval 10 s,
  // base ejection 30 s). Envoy's default route timeout is 15 s, so a hung host produces 504s then.
  // Envoy's detector sees every upstream answer, retried or not; HAProxy's `observe` does not see
  // retried ones, so this backend keeps only the retries of requests that got no answer at all
  // (Envoy's default route has no retries either: its clients receive the 5 errors).
  envoy: {
    name: 'envoy',
    title: 'Envoy default outlier detection (5 consecutive 5xx, route timeout 15 s)',
    serverOptions: 'check inter 10s fall 1000 rise 1 observe layer7 error-limit 5 on-error mark-down',
    backendLines: ['timeout server 15s'],
    windowMs: 20_000,
    l7Retries: false,
  },
};

export const backendName = (b: BaselineName): string => `${b}.ledger.isobench`;

/** One demo ledger process of a baseline, confined to its own cgroup like a Bulwark instance. */
export class LedgerProcess {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  #proc: ChildProcess | undefined;
  readonly #dataDir: string;
  readonly #cg: CgroupPaths;
  readonly #cgroups: CgroupsV1;

  constructor(name: string, port: number, dataDir: string, cgroups: CgroupsV1, memoryBytes = MEMORY_BYTES) {
    this.name = name;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.#dataDir = dataDir;
    this.#cgroups = cgroups;
    this.#cg = cgroups.create(name, { cpu: CPU_CORES, memoryBytes });
  }

  get pid(): number {
    const pid = this.#proc?.pid;
    if (pid === undefined) throw new Error(`ledger ${this.name} is not running`);
    return pid;
  }

  /** Resolves when the current process has exited (at once if none runs). */
  async exited(): Promise<void> {
    const p = this.#proc;
    if (!p || !this.isAlive()) return;
    await new Promise<void>((r) => p.once('exit', () => r()));
  }

  isAlive(): boolean {
    return this.#proc?.pid !== undefined && this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /** Start (or restart) on the same port; the shell joins the cgroups before exec, so node never runs unconfined. */
  async start(): Promise<void> {
    const join = this.#cgroups
      .procsFiles(this.#cg)
      .map((f) => `echo $$ > ${f}`)
      .join('; ');
    this.#proc = spawn(
      '/bin/sh',
      ['-c', `${join}; exec "$0" "$@"`, process.execPath, path.join(REPO_ROOT, 'examples/bank/ledger.ts')],
      {
        cwd: REPO_ROOT,
        env: {
          ...process.env,
          PORT: String(this.port),
          HOST: '127.0.0.1',
          BANK_DATA_DIR: this.#dataDir,
          BULWARK_SERVICE: this.name,
        },
        stdio: 'ignore',
      },
    );
    await waitFor(`ledger ${this.name} /healthz on ${this.url}`, () => healthy(this.url), {
      timeoutMs: 30_000,
      intervalMs: 50,
    });
  }

  async stop(): Promise<void> {
    const p = this.#proc;
    if (!p || !this.isAlive()) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    try {
      process.kill(p.pid as number, 'SIGCONT');
      process.kill(p.pid as number, 'SIGKILL');
    } catch {
      // already gone
    }
    await Promise.race([exited, sleep(5000)]);
  }

  async remove(): Promise<void> {
    await this.stop();
    await this.#cgroups.remove(this.#cg);
  }
}

export interface BaselineEnv {
  haproxyPort: number;
  statsSocket: string;
  ledgers: Map<BaselineName, LedgerProcess[]>;
}

/** Start the ledgers of every baseline and one HAProxy with a backend per baseline. */
export async function startBaselines(dir: string, names: BaselineName[]): Promise<BaselineEnv> {
  const cgroups = new CgroupsV1({ parent: 'bulwark-bench-isolation' });
  const cap = cgroups.detect();
  if (!cap.available) throw new Error(`baselines need cgroup v1 memory limits (leak fault): ${cap.reason}`);
  onCleanup('baseline cgroup parent', () => cgroups.removeParentIfEmpty());
  const ledgers = new Map<BaselineName, LedgerProcess[]>();
  for (const b of names) {
    const list: LedgerProcess[] = [];
    for (let i = 0; i < REPLICAS; i++) {
      const l = new LedgerProcess(`${b}-${i}`, await freePort(), path.join(dir, `data-${b}`), cgroups);
      onCleanup(`ledger ${l.name}`, () => l.remove());
      list.push(l);
    }
    ledgers.set(b, list);
  }
  await Promise.all([...ledgers.values()].flat().map((l) => l.start()));

  const haproxyDir = path.join(dir, 'haproxy');
  mkdirSync(haproxyDir, { recursive: true });
  const haproxyPort = await freePort();
  const statsSocket = path.join(haproxyDir, 'stats.sock');
  const rendered = renderConfig({
    binds: [{ address: '127.0.0.1', port: haproxyPort }],
    backends: names.map((b) => ({ name: backendName(b), aliases: [], checkPath: '/healthz', servers: [] })),
    statsSocketPath: statsSocket,
    mapDir: haproxyDir,
    options: { requestLogs: false },
  });
  let cfg = rendered.cfg;
  const retryOn = /^\s*retry-on (.+)$/m.exec(cfg)?.[1]?.split(/\s+/) ?? [];
  const withoutL7 = retryOn.filter((c) => c === 'conn-failure' || c === 'empty-response');
  for (const b of names) {
    const spec = BASELINES[b];
    const lines = [...spec.backendLines];
    if (spec.l7Retries === false) lines.push(`retry-on ${withoutL7.join(' ') || 'none'}`);
    const header = `backend ${backendName(b)}\n`;
    if (!cfg.includes(header)) throw new Error(`rendered haproxy.cfg has no '${header.trim()}' section`);
    const servers = (ledgers.get(b) ?? []).map(
      (l) =>
        `  server ${l.name} 127.0.0.1:${l.port} weight 100 ${spec.serverOptions} pool-max-conn 1000 pool-purge-delay 5s`,
    );
    cfg = cfg.replace(header, header + [...lines.map((x) => `  ${x}`), ...servers, ''].join('\n'));
  }
  for (const [f, content] of Object.entries(rendered.files)) writeFileSync(path.join(haproxyDir, f), content);
  const cfgFile = path.join(haproxyDir, 'haproxy.cfg');
  writeFileSync(cfgFile, cfg);
  await execFileP(HAPROXY, ['-c', '-q', '-f', cfgFile]).catch((err: { stderr?: string }) => {
    throw new Error(`baseline haproxy.cfg (${cfgFile}) is invalid: ${err.stderr ?? String(err)}`);
  });
  const proc = spawn(HAPROXY, ['-f', cfgFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  onCleanup('baseline haproxy', async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill('SIGKILL');
    await Promise.race([exited, sleep(3000)]);
  });
  for (const b of names) {
    const w = new ServerWatcher(statsSocket, backendName(b));
    await waitFor(
      `baseline haproxy (${cfgFile}) with all ${REPLICAS} ${b} servers UP${stderr ? `; stderr: ${stderr}` : ''}`,
      async () => (await w.upServers()).length === REPLICAS,
      { timeoutMs: 40_000, intervalMs: 100 },
    );
  }
  return { haproxyPort, statsSocket, ledgers };
}

/** Put the instance back the way it was: resume, clear the fault, or restart it. */
async function clearFault(l: LedgerProcess, fault: Fault): Promise<void> {
  if (fault === 'crash') await Promise.race([l.exited(), sleep(5000)]);
  if (fault === 'hang' && l.isAlive()) process.kill(l.pid, 'SIGCONT');
  if ((fault === '5xx' || fault === 'slow' || fault === 'leak') && l.isAlive() && alive(l.pid)) {
    await setFault({ pid: l.pid, url: l.url }, { mode: 'none' }).catch(() => undefined);
  }
  if (!l.isAlive()) await l.start();
  await waitFor(`ledger ${l.name} healthy after clearing ${fault}`, () => healthy(l.url), {
    timeoutMs: 30_000,
  });
}

export interface BaselinePlan {
  fault: Fault;
  injections: number;
}

/**
 * Inject each planned fault into the replicas in turn and time HAProxy's
 * reaction. A fault type is abandoned after 3 injections none of which was
 * isolated (the outcome is then clear, and each costs a whole window).
 */
export async function runBaseline(
  env: BaselineEnv,
  b: BaselineName,
  plan: BaselinePlan[],
  log: (s: string) => void,
  /** Quick mode: do not restore the last victim (the run ends; cleanup stops every ledger). */
  opts: { skipFinalRestore?: boolean } = {},
  /** Filled as injections complete, so a failure later keeps what was measured. */
  out: Injection[] = [],
): Promise<Injection[]> {
  const total = plan.reduce((n, p) => n + p.injections, 0);
  const spec = BASELINES[b];
  const ledgers = env.ledgers.get(b) ?? [];
  const be = backendName(b);
  const watcher = new ServerWatcher(env.statsSocket, be);
  const allUp = async (): Promise<true | undefined> =>
    (await watcher.upServers()).length === REPLICAS ? true : undefined;
  let turn = 0;
  for (const { fault, injections } of plan) {
    for (let k = 0; k < injections; k++) {
      const mine = out.filter((i) => i.fault === fault);
      if (mine.length >= 3 && mine.every((i) => i.isolateMs === undefined)) {
        log(
          `${b} ${fault}: not isolated in ${mine.length} of ${mine.length}; skipping the remaining injections`,
        );
        break;
      }
      const upMsg = `all ${REPLICAS} servers of ${be} UP before the next injection`;
      await waitFor(upMsg, allUp, { timeoutMs: 30_000, intervalMs: 50 }).catch(async () => {
        // On a starved machine a restarted ledger can miss its checks for long: force the health of
        // every server that answers up again (as after each injection), then give it once more.
        const states = await watcher.servers();
        for (const x of ledgers) {
          if (states.get(x.name)?.up !== true && (await healthy(x.url)))
            await watcher.api.exec(`set server ${be}/${x.name} health up`, 'empty');
        }
        await waitFor(`${upMsg} (after forcing health up)`, allUp, { timeoutMs: 30_000, intervalMs: 50 });
      });
      const l = ledgers[turn++ % ledgers.length] as LedgerProcess;
      // Random phase against the check timers, so time-to-isolate is sampled fairly.
      await sleep(Math.random() * 1000);
      const t0 = await inject({ pid: l.pid, url: l.url }, fault);
      const outAt = await watcher.waitOut(l.name, t0 + spec.windowMs);
      if (outAt !== undefined) await sleep(Math.max(0, outAt + SETTLE_MS - now()));
      const inj: Injection = {
        system: b,
        fault,
        server: l.name,
        injectedAt: t0,
        windowMs: spec.windowMs,
        windowEndAt: now(),
        requests: 0,
        errors: 0,
        p99LatencyMs: 0,
        ...(outAt !== undefined ? { isolateMs: outAt - t0 } : {}),
      };
      out.push(inj);
      log(describe(inj).replace(/, 0\/0 errors.*$/, ''));
      if (out.length === total && opts.skipFinalRestore) break;
      await clearFault(l, fault);
      // No controller: force the check state up once the instance answers again, so the next
      // injection does not wait `rise x inter` (up to 20 s) for nothing; checks confirm it.
      if ((await watcher.servers()).get(l.name)?.up !== true) {
        await watcher.api.exec(`set server ${be}/${l.name} health up`, 'empty');
      }
    }
  }
  return out;
}
