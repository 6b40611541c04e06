/**
 * Fault-isolation benchmark: steady load on 4 replicas of the demo ledger,
 * faults injected one at a time (crash, hang, 5xx, slow, leak), and per fault
 * type the time from injection until the faulty server is out of traffic
 * (p50/p99), the time until a replacement is ready (Bulwark), and the errors
 * clients saw. Bulwark is compared with three detection baselines configured
 * on one HAProxy with Bulwark's own retry policy: Kubernetes readiness
 * defaults, HAProxy default checks, Envoy default outlier detection.
 * Prints a markdown table and, as the last stdout line, a JSON summary.
 * See bench/isolation/README.md for the method.
 *
 *   node bench/isolation/run.ts [--quick] [--systems bulwark,haproxy,envoy,k8s]
 *       [--faults crash,hang,5xx,slow,leak] [--injections 10] [--k8s-injections 5] [--rps 200]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { sleep } from '../../src/util/time.ts';
import { cleanupAll, installSignalHandlers, onCleanup } from './cleanup.ts';
import {
  BASELINES,
  backendName,
  runBaseline,
  startBaselines,
  type BaselineEnv,
  type BaselineName,
  type BaselinePlan,
} from './baselines.ts';
import { BULWARK_WINDOW_MS, SERVICE_HOST, runBulwark, startBulwark } from './bulwark.ts';
import {
  CLIENT_TIMEOUT_MS,
  FAULTS,
  LoadGenerator,
  SLOW_DELAY_MS,
  now,
  account,
  describe,
  percentile,
  type Fault,
  type Injection,
} from './harness.ts';

type System = 'bulwark' | BaselineName;
const SYSTEMS: System[] = ['bulwark', 'haproxy', 'envoy', 'k8s'];
/** Kubernetes' readiness model is not asked about exits: the kubelet sees those directly (README). */
const K8S_FAULTS: Fault[] = ['hang', '5xx', 'slow'];
/** Bulwark's targets: p99 time-to-isolate and client-visible error share per fault type. */
const TARGETS: Record<Fault, { isolateP99Ms: number; maxErrorRatio: number }> = {
  crash: { isolateP99Ms: 1000, maxErrorRatio: 0 },
  '5xx': { isolateP99Ms: 1000, maxErrorRatio: 0 },
  hang: { isolateP99Ms: 1000, maxErrorRatio: 0.001 },
  slow: { isolateP99Ms: 3000, maxErrorRatio: 0.001 },
  leak: { isolateP99Ms: 3000, maxErrorRatio: Infinity },
};

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    systems: { type: 'string' },
    faults: { type: 'string' },
    injections: { type: 'string' },
    'k8s-injections': { type: 'string' },
    rps: { type: 'string', default: '200' },
  },
});
const quick = args.quick === true;

function list<T extends string>(flag: string, v: string | undefined, allowed: readonly T[], dflt: T[]): T[] {
  if (v === undefined) return dflt;
  const out = v.split(',').map((x) => x.trim()) as T[];
  const bad = out.filter((x) => !allowed.includes(x));
  if (bad.length > 0)
    throw new Error(`--${flag}: unknown ${bad.join(', ')}; use some of ${allowed.join(',')}`);
  return out;
}
function int(flag: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer (got ${v})`);
  return n;
}

const systems = list('systems', args.systems, SYSTEMS, quick ? ['bulwark', 'haproxy'] : SYSTEMS);
const faults = list('faults', args.faults, FAULTS, quick ? ['crash', '5xx'] : [...FAULTS]);
/**
 * Quick mode (under a minute; a smoke check of the whole method, not a measurement to quote): one
 * injection per fault, 1 s of warm-up, and two overlaps the full run does not have: the baselines'
 * ledgers and HAProxy start while Bulwark starts (they idle until their turn), and Bulwark's
 * instances are torn down while the baselines are measured. The full run keeps every phase
 * sequential, 10 injections per fault.
 */
const injections = int('injections', args.injections, quick ? 1 : 10);
const k8sInjections = int('k8s-injections', args['k8s-injections'], quick ? 1 : 5);
const rps = int('rps', args.rps, 200);
const WARMUP_MS = quick ? 1000 : 5000;

const log = (s: string): void =>
  void process.stderr.write(`[${new Date().toISOString().slice(11, 23)}] ${s}\n`);

interface Row {
  system: System;
  fault: Fault;
  n: number;
  isolated: number;
  /** Infinity when the percentile falls on an injection that was not isolated within the window. */
  isolateP50Ms: number;
  isolateP99Ms: number;
  windowMs: number;
  replacementReadyP50Ms: number | null;
  errors: number;
  requests: number;
  errorPct: number;
  windowP99LatencyMs: number;
}

function summarise(system: System, fault: Fault, inj: Injection[]): Row | undefined {
  const mine = inj.filter((i) => i.system === system && i.fault === fault);
  if (mine.length === 0) return undefined;
  const iso = mine.map((i) => i.isolateMs ?? Infinity);
  const rep = mine.flatMap((i) => (i.replacementReadyMs === undefined ? [] : [i.replacementReadyMs]));
  const errors = mine.reduce((s, i) => s + i.errors, 0);
  const requests = mine.reduce((s, i) => s + i.requests, 0);
  return {
    system,
    fault,
    n: mine.length,
    isolated: mine.filter((i) => i.isolateMs !== undefined).length,
    isolateP50Ms: percentile(iso, 50),
    isolateP99Ms: percentile(iso, 99),
    windowMs: mine[0]?.windowMs ?? 0,
    replacementReadyP50Ms: rep.length > 0 ? percentile(rep, 50) : null,
    errors,
    requests,
    errorPct: requests > 0 ? (100 * errors) / requests : 0,
    windowP99LatencyMs: percentile(
      mine.map((i) => i.p99LatencyMs),
      50,
    ),
  };
}

const ms = (x: number, windowMs: number): string =>
  Number.isFinite(x) ? x.toFixed(0) : `>${(windowMs / 1000).toFixed(0)} s (not isolated)`;
const jsonMs = (x: number): number | null => (Number.isFinite(x) ? Math.round(x) : null);

/** Requests outside every injection window, and how many failed: recovery and background noise. */
function outside(load: LoadGenerator, inj: Injection[]): { requests: number; errors: number } {
  const total = load.count(-Infinity, Infinity);
  let requests = total.requests;
  let errors = total.errors;
  for (const i of inj) {
    requests -= i.requests;
    errors -= i.errors;
  }
  return { requests, errors };
}

/**
 * Keep the load running until every request that started inside the last window has ended
 * (answered or timed out after CLIENT_TIMEOUT_MS), so it is accounted; the restore after the
 * last injection may already have taken that long.
 */
async function drainAfter(inj: Injection[]): Promise<void> {
  const lastEnd = Math.max(0, ...inj.map((i) => i.windowEndAt));
  await sleep(Math.max(0, lastEnd + CLIENT_TIMEOUT_MS + 200 - now()));
}

/** Runs Bulwark's injections; resolves with its teardown, awaited at once unless `overlapTeardown`. */
async function bulwarkPhase(
  dir: string,
  out: Injection[],
  notes: string[],
  overlapTeardown: boolean,
): Promise<{ teardown: Promise<void> }> {
  log(`bulwark: starting the control plane and applying bench/isolation/ledger.yaml`);
  const env = await startBulwark(dir, {
    requireIsolationApi: process.env.BENCH_ISOLATION_NO_INCIDENTS !== '1',
  });
  const load = new LoadGenerator({ url: env.cp.gatewayUrl, host: SERVICE_HOST, rps });
  const stopLoad = onCleanup('bulwark load', () => load.stop());
  try {
    load.start();
    await sleep(WARMUP_MS);
    const inj: Injection[] = [];
    try {
      await runBulwark(
        env,
        faults.map((fault) => ({ fault, injections })),
        (s) => log(s),
        inj,
        { skipFinalRelease: quick },
      );
    } finally {
      // Keep what was measured before a failure.
      await drainAfter(inj);
      await stopLoad();
      account(inj, load);
      out.push(...inj);
      // The full table comes at the very end (after ~25 min): log each phase's accounted results now.
      for (const i of inj) log(`accounted: ${describe(i)}`);
      for (const [id, why] of env.unexpected)
        notes.push(`bulwark: UNEXPECTED isolation of ${id} (no fault injected): ${why}`);
    }
    const o = outside(load, inj);
    notes.push(
      `bulwark: ${o.errors} errors in ${o.requests} requests outside the injection windows; all codes ${JSON.stringify(load.byCode())}`,
    );
  } catch (err) {
    await stopLoad();
    await env.stop();
    throw err;
  }
  await stopLoad();
  const teardown = env.stop();
  if (!overlapTeardown) await teardown;
  return { teardown };
}

function startBaselinesLogged(dir: string, names: BaselineName[]): Promise<BaselineEnv> {
  log(`baselines ${names.join(', ')}: starting ${names.length * 4} ledger processes and one HAProxy`);
  return startBaselines(dir, names);
}

async function baselinePhase(
  envP: Promise<BaselineEnv>,
  names: BaselineName[],
  out: Injection[],
  notes: string[],
  failures: string[],
): Promise<void> {
  const env = await envP;
  // One baseline at a time (the others' ledgers idle): on a 2-core machine three loads at once
  // overloaded the ledgers, and the timeouts that caused were not the injected fault's.
  for (const b of names) {
    const load = new LoadGenerator({ url: `http://127.0.0.1:${env.haproxyPort}`, host: backendName(b), rps });
    const stopLoad = onCleanup(`${b} load`, () => load.stop());
    load.start();
    await sleep(WARMUP_MS);
    const plan: BaselinePlan[] = (b === 'k8s' ? faults.filter((f) => K8S_FAULTS.includes(f)) : faults).map(
      (fault) => ({ fault, injections: b === 'k8s' ? k8sInjections : injections }),
    );
    const inj: Injection[] = [];
    try {
      await runBaseline(env, b, plan, log, { skipFinalRestore: quick && b === names.at(-1) }, inj);
    } catch (err) {
      // Keep what this baseline measured and go on with the next one.
      failures.push(`${b}: ${(err as Error).message}`);
      log(`${b.toUpperCase()} FAILED: ${(err as Error).message}`);
    }
    await drainAfter(inj);
    await stopLoad();
    account(inj, load);
    out.push(...inj);
    for (const i of inj) log(`accounted: ${describe(i)}`);
    const o = outside(load, inj);
    notes.push(
      `${b}: ${o.errors} errors in ${o.requests} requests outside the injection windows; all codes ${JSON.stringify(load.byCode())}`,
    );
  }
}

async function main(): Promise<number> {
  installSignalHandlers();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bw-isobench-'));
  onCleanup('temp dir', () => rmSync(dir, { recursive: true, force: true }));
  const started = Date.now();
  const injectionsAll: Injection[] = [];
  const notes: string[] = [];
  const failures: string[] = [];
  log(
    `${quick ? 'quick' : 'full'} run: systems ${systems.join(',')}; faults ${faults.join(',')}; ` +
      `${injections} injections per fault (k8s ${k8sInjections}); ${rps} req/s per system`,
  );
  try {
    const names = systems.filter((s): s is BaselineName => s !== 'bulwark');
    // Quick: the baselines' processes start alongside Bulwark (see WARMUP_MS above for why only then).
    let baselines = quick && names.length > 0 ? startBaselinesLogged(dir, names) : undefined;
    // Not awaited yet: keep an early failure from surfacing as an unhandled rejection.
    baselines?.catch(() => undefined);
    let teardown: Promise<void> = Promise.resolve();
    if (systems.includes('bulwark')) {
      try {
        ({ teardown } = await bulwarkPhase(dir, injectionsAll, notes, quick));
      } catch (err) {
        failures.push(`bulwark: ${(err as Error).message}`);
        log(`BULWARK FAILED: ${(err as Error).message}`);
      }
    }
    if (names.length > 0) {
      baselines ??= startBaselinesLogged(dir, names);
      try {
        await baselinePhase(baselines, names, injectionsAll, notes, failures);
      } catch (err) {
        failures.push(`baselines: ${(err as Error).message}`);
        log(`BASELINES FAILED: ${(err as Error).message}`);
      }
    }
    await teardown;
  } finally {
    await cleanupAll();
  }

  // ------------------------------------------------------------ report
  const rows: Row[] = [];
  for (const s of systems)
    for (const f of faults) {
      const r = summarise(s, f, injectionsAll);
      if (r) rows.push(r);
    }
  const bw = new Map(rows.filter((r) => r.system === 'bulwark').map((r) => [r.fault, r]));
  const ratio = (r: Row): { value: number | null; lowerBound: boolean } => {
    const b = bw.get(r.fault);
    if (r.system === 'bulwark' || !b || !Number.isFinite(b.isolateP99Ms) || b.isolateP99Ms <= 0)
      return { value: null, lowerBound: false };
    if (!Number.isFinite(r.isolateP99Ms)) return { value: r.windowMs / b.isolateP99Ms, lowerBound: true };
    return { value: r.isolateP99Ms / b.isolateP99Ms, lowerBound: false };
  };

  console.log(`\nper-injection results:`);
  for (const i of injectionsAll) console.log(`  ${describe(i)}`);
  console.log(
    `\n${rps} req/s per system (GET /balances, 20% POST /entries with Idempotency-Key) on 4 ledger replicas; ` +
      `client timeout ${CLIENT_TIMEOUT_MS} ms; slow = +${SLOW_DELAY_MS} ms; windows: ` +
      `${[
        `bulwark ${BULWARK_WINDOW_MS / 1000} s`,
        ...Object.values(BASELINES).map((b) => `${b.name} ${b.windowMs / 1000} s`),
      ]
        .filter((w) => systems.includes(w.split(' ')[0] as System))
        .join(', ')}; ${os.cpus().length} CPUs\n`,
  );
  console.log(
    '| system | fault | n | isolated | isolate p50 ms | isolate p99 ms | replacement ready p50 ms | errors / requests | error % | window p99 latency ms | p99 vs bulwark |',
  );
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const q = ratio(r);
    console.log(
      `| ${r.system} | ${r.fault} | ${r.n} | ${r.isolated} | ${ms(r.isolateP50Ms, r.windowMs)} | ${ms(r.isolateP99Ms, r.windowMs)} | ` +
        `${r.replacementReadyP50Ms === null ? '-' : r.replacementReadyP50Ms.toFixed(0)} | ${r.errors} / ${r.requests} | ` +
        `${r.errorPct.toFixed(3)} | ${r.windowP99LatencyMs.toFixed(0)} | ` +
        `${q.value === null ? '-' : `${q.lowerBound ? '>' : ''}${q.value.toFixed(1)}x`} |`,
    );
  }
  for (const [s, b] of Object.entries(BASELINES))
    if (systems.includes(s as System)) console.log(`\n${s}: ${b.title}`);
  console.log('');
  for (const n of notes) console.log(n);

  const targets: Record<string, { met: boolean; why: string }> = {};
  for (const [f, r] of bw) {
    const t = TARGETS[f];
    const isoOk = r.isolateP99Ms <= t.isolateP99Ms;
    const errOk = r.requests > 0 && r.errors / r.requests <= t.maxErrorRatio;
    targets[f] = {
      met: isoOk && errOk,
      why:
        `p99 ${ms(r.isolateP99Ms, r.windowMs)} ms (target <= ${t.isolateP99Ms}), ` +
        `errors ${r.errorPct.toFixed(3)}% (target ${t.maxErrorRatio === 0 ? '0' : t.maxErrorRatio === Infinity ? 'none' : `< ${t.maxErrorRatio * 100}%`})`,
    };
    console.log(`bulwark ${f}: target ${targets[f].met ? 'met' : 'MISSED'}: ${targets[f].why}`);
  }
  for (const f of failures) console.log(`FAILED ${f}`);
  const pass = failures.length === 0 && bw.size > 0 && Object.values(targets).every((t) => t.met);
  console.log(
    JSON.stringify({
      bench: 'isolation',
      quick,
      rps,
      injections,
      k8sInjections,
      durationS: Math.round((Date.now() - started) / 1000),
      results: Object.fromEntries(
        systems.map((s) => [
          s,
          Object.fromEntries(
            rows
              .filter((r) => r.system === s)
              .map((r) => {
                const q = ratio(r);
                return [
                  r.fault,
                  {
                    n: r.n,
                    isolated: r.isolated,
                    isolateP50Ms: jsonMs(r.isolateP50Ms),
                    isolateP99Ms: jsonMs(r.isolateP99Ms),
                    windowMs: r.windowMs,
                    replacementReadyP50Ms:
                      r.replacementReadyP50Ms === null ? null : Math.round(r.replacementReadyP50Ms),
                    errors: r.errors,
                    requests: r.requests,
                    errorPct: Number(r.errorPct.toFixed(4)),
                    p99RatioVsBulwark: q.value === null ? null : Number(q.value.toFixed(2)),
                    ...(q.lowerBound ? { p99RatioIsLowerBound: true } : {}),
                  },
                ];
              }),
          ),
        ]),
      ),
      targets,
      failures,
      pass,
    }),
  );
  return failures.length > 0 ? 1 : 0;
}

process.exitCode = await main();
