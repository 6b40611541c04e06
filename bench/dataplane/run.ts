/**
 * Data plane benchmark: requests/s and latency (p50/p99) of
 *   (a) direct   - wrk straight to the instances (one wrk per instance, run together),
 *   (b) bulwark  - through the HAProxy managed by HaproxyDataPlane (servers added at
 *                  runtime, host routing, trace headers, request logging to syslog on),
 *   (b') bulwark-nolog - the same with request logging off (attributes the logging cost),
 *   (c) minimal  - through a hand-written haproxy.cfg (one frontend, one backend,
 *                  the same two servers, no logging),
 * in alternating rounds; prints medians, the bulwark/minimal ratios, a markdown
 * table, and as the last stdout line a one-line JSON summary.
 *
 * Two CPU layouts on this 2-core machine (see README.md, "CPU layouts"):
 *   pinned - the proxies and the Bulwark gateways' hosts (gateway-host.ts,
 *            each running its request-log receiver as the control plane
 *            does) on CPU 1, wrk and the instances on CPU 0: the platform
 *            on a core of its own, as
 *            `bulwark server --gateway-cpus 1 --control-plane-cpus 1` deploys
 *            it; the targets are read here. BENCH_RECEIVER_CPU=0 puts
 *            the receiver beside the instances instead (the layout until
 *            2026-12-02, measured side by side in docs/benchmarks.md).
 *   shared - nothing pinned: wrk, the instances, the proxies and the receiver
 *            compete for both cores, so the figures measure CPU per request
 *            of the whole box more than the proxy.
 * Every HAProxy is started under its layout's affinity, so both proxies get
 * the same thread count (HAProxy starts one thread per CPU it may run on).
 *
 *   node bench/dataplane/run.ts [--quick] [--layout pinned|shared|both]
 *   (default: both for a full run, pinned for --quick)
 */
import { spawn, execFile, execFileSync, fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { HaproxyDataPlaneOptions } from '../../src/dataplane/haproxy/haproxy-dataplane.ts';
import { SERVER_NODE_FLAGS } from '../../src/cli/node-flags.ts';
import type { GatewayHostStart, GatewayHostStatus } from './gateway-host.ts';
import { freePort } from '../../src/util/ports.ts';
import { benchServers, machineTimes, minimalHaproxyConfig, pinProcess, procCpuUs } from '../support/proxy.ts';
import { median, parseWrk, startBackend, type WrkReport } from '../support/wrk.ts';
import { sleep, waitFor } from '../../src/util/time.ts';

const execFileP = promisify(execFile);
const quick = process.argv.includes('--quick');
type Layout = 'pinned' | 'shared';
const layoutArg = (() => {
  const i = process.argv.indexOf('--layout');
  const v = i >= 0 ? process.argv[i + 1] : quick ? 'pinned' : 'both';
  if (v !== 'pinned' && v !== 'shared' && v !== 'both')
    throw new Error(`--layout must be pinned, shared or both, got '${String(v)}'`);
  return v;
})();
const LAYOUTS: Layout[] = layoutArg === 'both' ? ['pinned', 'shared'] : [layoutArg];
/** The CPUs of this machine; the pinned layout needs two. */
const CPUS = os.availableParallelism();
let layout: Layout = 'pinned';
/** [cmd, args] wrapped in `taskset -c <cpu>` in the pinned layout. */
const onCpu = (cpu: number, cmd: string, args: string[]): [string, string[]] =>
  layout === 'pinned' ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args];
const ROUNDS = quick ? 2 : 5;
const DURATION_S = quick ? 3 : 10;
const CONNECTIONS = 32;
const THREADS = 1;

interface WrkResult extends WrkReport {
  /** HAProxy worker CPU (user+sys) per request, microseconds; NaN for direct. */
  proxyCpuUsPerReq?: number;
  /** This process's CPU per request (the syslog receiver and parser), microseconds. */
  receiverCpuUsPerReq?: number;
}

/** wrk `run` with the CPU per request of the proxy (`pid`) and of the log receiver's process (`receiverPid`). */
async function measured(
  pid: () => number | undefined,
  run: () => Promise<WrkResult>,
  receiverPid?: number,
): Promise<WrkResult> {
  const c0 = procCpuUs(pid());
  const r0 = procCpuUs(receiverPid);
  const r = await run();
  const c1 = procCpuUs(pid());
  const r1 = procCpuUs(receiverPid);
  return {
    ...r,
    proxyCpuUsPerReq: (c1 - c0) / r.requests,
    receiverCpuUsPerReq: (r1 - r0) / r.requests,
  };
}

/** A gateway hosted by bench/dataplane/gateway-host.ts: HAProxy plus its receiver in their own process. */
interface HostedGateway {
  gatewayUrl: string;
  /** The hosting Node process (the log receiver's CPU). */
  hostPid: number;
  workerPid: number | undefined;
  status(): Promise<GatewayHostStatus>;
  close(): Promise<void>;
}

const HOST_SCRIPT = path.join(import.meta.dirname, 'gateway-host.ts');

/** One reply of the host to `request` (or its error). */
function ask<T>(child: ChildProcess, request: object, key: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onMessage = (m: Record<string, unknown>): void => {
      if (key in m) {
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(m[key] as T);
      } else if ('error' in m) reject(new Error(`gateway host: ${String(m.error)}`));
    };
    const onExit = (code: number | null): void => reject(new Error(`gateway host exited (${code})`));
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.send(request);
  });
}

async function startHostedGateway(
  start: GatewayHostStart,
  nodeFlags: readonly string[],
): Promise<HostedGateway> {
  const child = fork(HOST_SCRIPT, [], {
    execArgv: [...nodeFlags],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const started = await ask<{ gatewayUrl: string; workerPid: number | undefined }>(
    child,
    { start },
    'started',
  );
  return {
    gatewayUrl: started.gatewayUrl,
    hostPid: child.pid!,
    workerPid: started.workerPid,
    status: () => ask<GatewayHostStatus>(child, { status: true }, 'status'),
    close: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.send({ close: true });
      await Promise.race([exited, sleep(10_000)]);
      child.kill('SIGKILL');
    },
  };
}

async function wrk(
  url: string,
  connections: number,
  headers: string[] = [],
  delayMs?: number,
): Promise<WrkResult> {
  const args = ['-t', String(THREADS), '-c', String(connections), '-d', `${DURATION_S}s`, '--latency'];
  for (const h of headers) args.push('-H', h);
  if (delayMs !== undefined) {
    // Per-connection pacing: each connection waits `delay` ms before its next request
    // (wrk has no open-loop mode, and wrk2 is not packaged here).
    const script = PACE_SCRIPT;
    writeFileSync(script, `function delay()\n  return ${Math.max(0, Math.round(delayMs))}\nend\n`);
    args.push('-s', script);
  }
  const { stdout } = await execFileP(...onCpu(0, 'wrk', [...args, url]), {
    timeout: (DURATION_S + 30) * 1000,
  });
  return parseWrk(stdout);
}

/** Direct: one wrk per instance at the same time, half the connections each. */
async function wrkDirect(urls: string[]): Promise<WrkResult> {
  const rs = await Promise.all(urls.map((u) => wrk(u, CONNECTIONS / urls.length)));
  return {
    rps: rs.reduce((a, r) => a + r.rps, 0),
    p50Ms: Math.max(...rs.map((r) => r.p50Ms)),
    p99Ms: Math.max(...rs.map((r) => r.p99Ms)),
    errors: rs.reduce((a, r) => a + r.errors, 0),
    requests: rs.reduce((a, r) => a + r.requests, 0),
  };
}

async function startMinimalHaproxy(
  dir: string,
  ports: number[],
): Promise<{ port: number; proc: ChildProcess }> {
  const port = await freePort();
  const cfg = minimalHaproxyConfig(port, ports);
  const file = path.join(dir, 'minimal.cfg');
  writeFileSync(file, cfg);
  const proc = spawn('/usr/sbin/haproxy', ['-f', file], { stdio: 'ignore' });
  await waitFor('minimal haproxy', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
    return r?.status === 200;
  });
  return { port, proc };
}

interface Summary {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  proxyCpuUsPerReq: number | null;
  receiverCpuUsPerReq: number;
}

interface LayoutResult {
  layout: Layout;
  summary: Record<string, Summary>;
  throughputRatio: number;
  p99Ratio: number;
  mediansRatio: { throughput: number; p99: number };
  stealPctMedian: number;
  /** Rounds run again because steal time exceeded STEAL_LIMIT_PCT during one of their runs. */
  discardedRounds: number;
  logLines: number;
  logDelayP50Ms: number;
  logDelayP99Ms: number;
  /** Pinned full runs: the same paced load below the gateway core's saturation. */
  fixedRate?: FixedRate;
}

interface FixedRate {
  connections: number;
  delayMs: number;
  /** Offered load aimed at: FIXED_SHARE of the minimal target's median peak. */
  targetRps: number;
  bulwark: { rps: number; p50Ms: number; p99Ms: number; proxyCpuUsPerReq: number | null };
  minimal: { rps: number; p50Ms: number; p99Ms: number; proxyCpuUsPerReq: number | null };
  /** Median of per-round bulwark/minimal p99 ratios. */
  p99Ratio: number;
}

/** Steal time (% of the machine) above which a round is run again. */
const STEAL_LIMIT_PCT = 10;

const PACE_SCRIPT = path.join(os.tmpdir(), `bw-dataplane-pace-${process.pid}.lua`);

/** Paced connections and the share of the minimal peak they offer in the fixed-rate phase. */
const PACED_CONNECTIONS = 128;
const FIXED_SHARE = 0.6;

async function measureLayout(l: Layout): Promise<LayoutResult> {
  layout = l;
  // Children inherit this process's affinity: the gateway hosts (the log receivers) and their
  // HAProxy (one thread per CPU it may use) get the data plane's core in the pinned layout.
  pinProcess(process.pid, l === 'pinned' ? '1' : `0-${CPUS - 1}`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bw-bench-'));
  const procs: ChildProcess[] = [];
  /** Every gateway started, for the finally below. */
  const gateways: HostedGateway[] = [];
  try {
    const a = await startBackend('i1');
    const b = await startBackend('i2');
    procs.push(a.proc, b.proc);
    if (l === 'pinned') for (const p of [a.proc, b.proc]) pinProcess(p.pid!, '0');
    // Pinned: Bulwark's own placement option (`bulwark server --gateway-cpus 1`), which
    // renders the same one thread on CPU 1 that the minimal HAProxy gets from its affinity.
    const render = l === 'pinned' ? { render: { cpus: [1] } } : {};
    const servers = benchServers([a.port, b.port]);
    /**
     * A Bulwark gateway in front of the two instances, added at runtime as the control plane
     * does, in a process of its own that runs with the control plane's Node flags
     * (SERVER_NODE_FLAGS, as `bulwark server` starts) unless told otherwise. Its receiver
     * records the delivery delay of 1 in 64 request records (HAProxy end of request ->
     * listener; isolation needs them within ~100 ms, read batching adds up to readBatchMs).
     */
    const startGateway = async (
      name: string,
      opts: Partial<HaproxyDataPlaneOptions> = {},
      nodeFlags: readonly string[] = SERVER_NODE_FLAGS,
    ): Promise<HostedGateway> => {
      const options: HaproxyDataPlaneOptions = {
        workDir: path.join(dir, name),
        binds: [{ address: '127.0.0.1', port: await freePort() }],
        ...opts,
        ...render,
      };
      const g = await startHostedGateway({ name, options, servers }, nodeFlags);
      gateways.push(g);
      return g;
    };
    /** wrk through gateway `g`, with its HAProxy worker's and its receiver's CPU per request. */
    const viaGateway = (g: HostedGateway, connections = CONNECTIONS, delayMs?: number) =>
      measured(
        () => g.workerPid,
        () => wrk(`${g.gatewayUrl}/`, connections, ['Host: web.bench.acme'], delayMs),
        g.hostPid,
      );
    const dp = await startGateway('bulwark');
    // Same as bulwark with request logging off: attributes the logging cost.
    const dpNoLog = await startGateway('bulwark-nolog', { requestLogs: false });
    // BENCH_AB_LOG_SLICE_MS=<ms>: one more target, the same gateway whose receiver slices
    // its work at that sliceMs (0 = a whole read at once), measured in the same rounds.
    // BENCH_AB_LOG_TRANSPORT=tcp|unix|udp: the same, shipping its logs over that transport.
    // BENCH_AB_NODE_FLAGS='<flags>': the same, its process run with these Node flags instead
    // of SERVER_NODE_FLAGS ('' = Node's defaults).
    const abSlice = process.env.BENCH_AB_LOG_SLICE_MS;
    const abTransport = process.env.BENCH_AB_LOG_TRANSPORT as HaproxyDataPlaneOptions['logTransport'];
    const abFlags = process.env.BENCH_AB_NODE_FLAGS;
    /** The second gateway those ask for: its target name, options and Node flags. */
    const abGateway:
      { name: string; opts: Partial<HaproxyDataPlaneOptions>; flags?: readonly string[] } | undefined =
      abSlice !== undefined
        ? { name: `bulwark-slice${abSlice}`, opts: { logSliceMs: Number(abSlice) } }
        : abTransport !== undefined
          ? { name: `bulwark-${abTransport}`, opts: { logTransport: abTransport } }
          : abFlags !== undefined
            ? { name: `bulwark-flags[${abFlags}]`, opts: {}, flags: abFlags.split(/\s+/).filter(Boolean) }
            : undefined;
    const dpAb = abGateway ? await startGateway('bulwark-ab', abGateway.opts, abGateway.flags) : undefined;
    const minimal = await startMinimalHaproxy(dir, [a.port, b.port]);
    procs.push(minimal.proc);
    // The proxies started on CPU 1 (and stay there). The log receivers (the gateway hosts) stay
    // there too, as `--control-plane-cpus 1` places the control plane: on the gateway's core its
    // work costs the gateway less than beside the instances it costs them and wrk (same-run
    // figures in docs/benchmarks.md). BENCH_RECEIVER_CPU=0 puts them beside the instances.
    const receiverCpu = process.env.BENCH_RECEIVER_CPU ?? '1';
    if (l === 'pinned') for (const g of gateways) pinProcess(g.hostPid, receiverCpu);

    const targets: Record<string, () => Promise<WrkResult>> = {
      direct: () =>
        measured(
          () => undefined,
          () => wrkDirect([`http://127.0.0.1:${a.port}/`, `http://127.0.0.1:${b.port}/`]),
        ),
      bulwark: () => viaGateway(dp),
      'bulwark-nolog': () => viaGateway(dpNoLog),
      minimal: () =>
        measured(
          () => minimal.proc.pid,
          () => wrk(`http://127.0.0.1:${minimal.port}/`, CONNECTIONS),
        ),
    };
    // BENCH_AB_RECEIVER_CPU=<cpu>: one more target, the bulwark gateway itself measured with
    // its host (the log receiver) moved to that CPU for the run, in the same rounds.
    // BENCH_AB_RECEIVER_BATCH=1: the same with its host under SCHED_BATCH for the run
    // (its wakeups do not preempt the proxy; it runs when the proxy's slice ends or it sleeps).
    const abCpu = l === 'pinned' ? process.env.BENCH_AB_RECEIVER_CPU : undefined;
    const abBatch = process.env.BENCH_AB_RECEIVER_BATCH === '1';
    const abName = abGateway?.name ?? (abBatch ? 'bulwark-batch' : `bulwark-rx${abCpu}`);
    /** The bulwark target, run with its host process changed by `apply` and restored by `undo`. */
    const bulwarkWith = (apply: () => void, undo: () => void) => async (): Promise<WrkResult> => {
      apply();
      try {
        return await viaGateway(dp);
      } finally {
        undo();
      }
    };
    const pid = String(dp.hostPid);
    if (dpAb) targets[abName] = () => viaGateway(dpAb);
    else if (abBatch)
      targets[abName] = bulwarkWith(
        () => execFileSync('chrt', ['-a', '-b', '-p', '0', pid]),
        () => execFileSync('chrt', ['-a', '-o', '-p', '0', pid]),
      );
    else if (abCpu !== undefined)
      targets[abName] = bulwarkWith(
        () => pinProcess(dp.hostPid, abCpu),
        () => pinProcess(dp.hostPid, receiverCpu),
      );
    // Warm-up: JIT of the instances, HAProxy connection pools.
    for (const t of Object.values(targets)) await wrk2s(t);
    const results: Record<string, WrkResult[]> = {
      direct: [],
      bulwark: [],
      'bulwark-nolog': [],
      minimal: [],
      ...(abName in targets ? { [abName]: [] } : {}),
    };
    const steal: number[] = [];
    let discarded = 0;
    for (let r = 0; r < ROUNDS; r++) {
      // Alternate the order so drift (thermal, neighbours) does not favour one target.
      const names = Object.keys(results);
      const order = r % 2 === 0 ? names : [...names].reverse();
      const round: Record<string, WrkResult> = {};
      const roundSteal: number[] = [];
      for (const name of order) {
        const [t0, s0] = machineTimes();
        const res = await (targets[name] as () => Promise<WrkResult>)();
        const [t1, s1] = machineTimes();
        roundSteal.push((100 * (s1 - s0)) / Math.max(1, t1 - t0));
        round[name] = res;
        process.stderr.write(
          `${l} round ${r + 1}/${ROUNDS} ${name}: ${res.rps.toFixed(0)} req/s p50 ${res.p50Ms} ms p99 ${res.p99Ms} ms errors ${res.errors} proxy CPU ${res.proxyCpuUsPerReq?.toFixed(1)} us/req, steal ${roundSteal.at(-1)!.toFixed(0)} %\n`,
        );
        await sleep(500);
      }
      // A round in which the hypervisor took a tenth of the machine from any target compares
      // that target's neighbours more than the proxies: it is run again (at most ROUNDS times
      // in all), and the discards are reported.
      const worst = Math.max(...roundSteal);
      if (worst > STEAL_LIMIT_PCT && discarded < ROUNDS) {
        discarded++;
        process.stderr.write(
          `${l} round ${r + 1} discarded: steal ${worst.toFixed(0)} % > ${STEAL_LIMIT_PCT} %\n`,
        );
        r--;
        continue;
      }
      for (const name of names) results[name]!.push(round[name]!);
      steal.push(...roundSteal);
    }
    await sleep(500);
    const summary: Record<string, Summary> = {};
    const round1 = (x: number): number | null => (Number.isFinite(x) ? Number(x.toFixed(1)) : null);
    for (const [name, rs] of Object.entries(results)) {
      summary[name] = {
        rps: Math.round(median(rs.map((x) => x.rps))),
        p50Ms: Number(median(rs.map((x) => x.p50Ms)).toFixed(2)),
        p99Ms: Number(median(rs.map((x) => x.p99Ms)).toFixed(2)),
        errors: rs.reduce((s, x) => s + x.errors, 0),
        proxyCpuUsPerReq: round1(median(rs.map((x) => x.proxyCpuUsPerReq ?? NaN))),
        receiverCpuUsPerReq: round1(median(rs.map((x) => x.receiverCpuUsPerReq ?? NaN))) ?? 0,
      };
    }
    const bw = summary['bulwark']!;
    const mn = summary['minimal']!;
    // The median of per-round ratios: the two targets of one round run minutes apart at most and
    // share the machine's state (steal time on these VMs moves every target by +-30 % over minutes).
    const perRound = (k: 'rps' | 'p99Ms', vs = 'minimal'): number =>
      median(results.bulwark!.map((x, i) => x[k] / results[vs]![i]![k]));
    const st = await dp.status();
    const logs = st.requestLogs;
    const sortedDelays = [...st.delays].sort((x, y) => x - y);
    const out: LayoutResult = {
      layout: l,
      summary,
      throughputRatio: Number(perRound('rps').toFixed(3)),
      p99Ratio: Number(perRound('p99Ms').toFixed(3)),
      mediansRatio: {
        throughput: Number((bw.rps / mn.rps).toFixed(3)),
        p99: Number((bw.p99Ms / mn.p99Ms).toFixed(3)),
      },
      stealPctMedian: Number(median(steal).toFixed(1)),
      discardedRounds: discarded,
      logLines: logs,
      logDelayP50Ms: sortedDelays[Math.floor(sortedDelays.length * 0.5)] ?? NaN,
      logDelayP99Ms: sortedDelays[Math.floor(sortedDelays.length * 0.99)] ?? NaN,
    };
    const where =
      l === 'pinned'
        ? `proxies on CPU 1, the log receiver on CPU ${receiverCpu}; wrk and the instances on CPU 0`
        : `nothing pinned: ${CPUS} CPUs shared by wrk, the instances, the proxies and the receiver`;
    console.log(
      `\n${l} layout (${where}); wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION_S}s --latency, ${ROUNDS} alternating rounds, medians; steal median ${out.stealPctMedian} %, ${out.discardedRounds} round(s) run again for steal > ${STEAL_LIMIT_PCT} %\n`,
    );
    console.log(
      '| target | req/s | p50 ms | p99 ms | errors | HAProxy CPU us/req | log receiver CPU us/req |',
    );
    console.log('|---|---:|---:|---:|---:|---:|---:|');
    for (const [name, s] of Object.entries(summary)) {
      console.log(
        `| ${name} | ${s.rps} | ${s.p50Ms} | ${s.p99Ms} | ${s.errors} | ${s.proxyCpuUsPerReq ?? '-'} | ${name.startsWith('bulwark') && name !== 'bulwark-nolog' ? s.receiverCpuUsPerReq : '-'} |`,
      );
    }
    console.log(
      `\n${l}: bulwark/minimal, median of per-round ratios: throughput ${out.throughputRatio} (target >= 0.90), p99 ${out.p99Ratio} (target <= 1.20); ratio of medians: ${out.mediansRatio.throughput} / ${out.mediansRatio.p99}`,
    );
    if (abName in targets)
      console.log(
        `${l}: bulwark/${abName}, median of per-round ratios: throughput ${perRound('rps', abName).toFixed(3)}, p99 ${perRound('p99Ms', abName).toFixed(3)}`,
      );
    console.log(`bulwark request log lines received: ${logs} (${st.transport}, syslog frames ${st.frames})`);
    const abSt = await dpAb?.status();
    if (abSt)
      console.log(
        `${abName} request log lines received: ${abSt.requestLogs} (${abSt.transport}, syslog frames ${abSt.frames})`,
      );
    console.log(
      `request record delivery delay (HAProxy end of request -> listener, 1 in 64 sampled): p50 ${out.logDelayP50Ms} ms, p99 ${out.logDelayP99Ms} ms`,
    );
    if (l === 'pinned' && !quick) {
      out.fixedRate = await fixedRatePhase(
        mn.rps,
        (delayMs) => viaGateway(dp, PACED_CONNECTIONS, delayMs),
        (delayMs) =>
          measured(
            () => minimal.proc.pid,
            () => wrk(`http://127.0.0.1:${minimal.port}/`, PACED_CONNECTIONS, [], delayMs),
          ),
      );
      const f = out.fixedRate;
      console.log(
        `\nfixed rate (pinned): ${PACED_CONNECTIONS} paced connections, delay ${f.delayMs} ms, aiming at ${f.targetRps} req/s (${FIXED_SHARE * 100} % of the minimal peak)\n`,
      );
      console.log('| target | req/s | p50 ms | p99 ms | HAProxy CPU us/req |');
      console.log('|---|---:|---:|---:|---:|');
      for (const name of ['bulwark', 'minimal'] as const) {
        const x = f[name];
        console.log(`| ${name} | ${x.rps} | ${x.p50Ms} | ${x.p99Ms} | ${x.proxyCpuUsPerReq ?? '-'} |`);
      }
      console.log(`fixed rate: bulwark/minimal p99, median of per-round ratios: ${f.p99Ratio}`);
    }
    return out;
  } finally {
    for (const g of gateways) await g.close();
    for (const p of procs) p.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The same offered load through both proxies, below saturation: separates what the
 * features add to each request's latency from what they cost in capacity.
 */
async function fixedRatePhase(
  minimalPeakRps: number,
  bulwark: (delayMs: number) => Promise<WrkResult>,
  minimal: (delayMs: number) => Promise<WrkResult>,
): Promise<FixedRate> {
  const targetRps = Math.round(FIXED_SHARE * minimalPeakRps);
  // Calibrated once against the minimal proxy, then identical for both.
  let delayMs = (PACED_CONNECTIONS / targetRps) * 1000;
  for (let i = 0; i < 2; i++) {
    const cal = await minimal(delayMs);
    delayMs = Math.max(1, delayMs * (cal.rps / targetRps));
  }
  const rs: Record<'bulwark' | 'minimal', WrkResult[]> = { bulwark: [], minimal: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? (['bulwark', 'minimal'] as const) : (['minimal', 'bulwark'] as const);
    for (const name of order) {
      const res = await (name === 'bulwark' ? bulwark : minimal)(delayMs);
      rs[name].push(res);
      process.stderr.write(
        `fixed round ${r + 1}/${ROUNDS} ${name}: ${res.rps.toFixed(0)} req/s p50 ${res.p50Ms} ms p99 ${res.p99Ms} ms proxy CPU ${res.proxyCpuUsPerReq?.toFixed(1)} us/req\n`,
      );
      await sleep(500);
    }
  }
  const sum = (x: WrkResult[]) => ({
    rps: Math.round(median(x.map((y) => y.rps))),
    p50Ms: Number(median(x.map((y) => y.p50Ms)).toFixed(2)),
    p99Ms: Number(median(x.map((y) => y.p99Ms)).toFixed(2)),
    proxyCpuUsPerReq: Number(median(x.map((y) => y.proxyCpuUsPerReq ?? NaN)).toFixed(1)),
  });
  return {
    connections: PACED_CONNECTIONS,
    delayMs: Math.round(delayMs),
    targetRps,
    bulwark: sum(rs.bulwark),
    minimal: sum(rs.minimal),
    p99Ratio: Number(median(rs.bulwark.map((x, i) => x.p99Ms / rs.minimal[i]!.p99Ms)).toFixed(3)),
  };
}

async function main(): Promise<void> {
  if (LAYOUTS.includes('pinned') && CPUS < 2)
    throw new Error('the pinned layout needs 2 CPUs; use --layout shared');
  const results: LayoutResult[] = [];
  try {
    for (const l of LAYOUTS) results.push(await measureLayout(l));
  } finally {
    pinProcess(process.pid, `0-${CPUS - 1}`);
    rmSync(PACE_SCRIPT, { force: true });
  }
  // The targets are read in the pinned layout when it ran (see the header comment).
  const head = results[0]!;
  console.log(
    JSON.stringify({
      bench: 'dataplane',
      quick,
      rounds: ROUNDS,
      durationS: DURATION_S,
      connections: CONNECTIONS,
      layout: head.layout,
      ...head.summary,
      throughputRatio: head.throughputRatio,
      p99Ratio: head.p99Ratio,
      mediansRatio: head.mediansRatio,
      pass: head.throughputRatio >= 0.9 && head.p99Ratio <= 1.2,
      logLines: head.logLines,
      logDelayP50Ms: head.logDelayP50Ms,
      logDelayP99Ms: head.logDelayP99Ms,
      stealPctMedian: head.stealPctMedian,
      discardedRounds: head.discardedRounds,
      layouts: Object.fromEntries(
        results.map((r) => [
          r.layout,
          {
            throughputRatio: r.throughputRatio,
            p99Ratio: r.p99Ratio,
            mediansRatio: r.mediansRatio,
            ...r.summary,
          },
        ]),
      ),
    }),
  );
}

async function wrk2s(run: () => Promise<WrkResult>): Promise<void> {
  await run().catch(() => undefined);
}

await main();
