/**
 * Cost of the instance sandbox (issue 15): start-to-ready latency and HTTP
 * throughput of a sandboxed instance against the same program as a plain
 * process, in the same run, rounds alternating between the two so drift on
 * the machine hits both alike.
 *
 *   node bench/sandbox/run.ts [--quick] [--starts N] [--rounds N] [--seconds S]
 *
 * Start-to-ready: from `driver.ensure()` to the first HTTP answer from the
 * instance's address (polled every 2 ms, so the readiness probe's interval
 * does not quantize it). Throughput: wrk (1 thread, 16 connections) against
 * the instance's address, one instance per mode, and the server's CPU time
 * per request over those runs (steadier than req/s on a shared machine).
 * Both drivers are privileged
 * (netns, cgroups) on bridges of their own; only the sandbox differs.
 * Targets: start p50 at most +50 ms, throughput within 3 % (the median of the
 * per-round ratios: a round runs both modes back to back). Prints a table;
 * the last stdout line is a JSON summary.
 *
 * Needs root, bubblewrap and wrk.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { InstanceSpec } from '../../src/runtime/driver.ts';
import { LocalDriver } from '../../src/runtime/local/local-driver.ts';
import { MemoryInstanceRecords } from '../../src/runtime/local/records.ts';

const SERVER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'server.ts');

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    starts: { type: 'string' },
    rounds: { type: 'string' },
    seconds: { type: 'string' },
  },
});
const quick = args.quick === true;
const num = (v: string | undefined, d: number, name: string): number => {
  if (v === undefined) return d;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got '${v}'`);
  return n;
};
const STARTS = num(args.starts, quick ? 10 : 30, 'starts');
const ROUNDS = num(args.rounds, quick ? 3 : 6, 'rounds');
const SECONDS = num(args.seconds, quick ? 3 : 10, 'seconds');

if (process.getuid?.() !== 0) {
  console.error('bench/sandbox needs root (network namespaces, cgroups, sandbox uids)');
  process.exit(2);
}

type Mode = 'plain' | 'sandboxed';
const MODES: Mode[] = ['plain', 'sandboxed'];
const tmp = mkdtempSync(path.join(os.tmpdir(), 'bench-sandbox-'));

function spec(id: string): InstanceSpec {
  return {
    id,
    site: 'bench',
    project: 'bench',
    app: 'sb',
    workload: id,
    ordinal: 0,
    command: [process.execPath, SERVER],
    env: {},
    ports: [{ name: 'http', port: 8080 }],
    restartPolicy: 'Always',
    terminationGracePeriodMs: 1000,
    specHash: 'h1',
  };
}

const answers = (host: string, port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const req = http.get({ host, port, path: '/', timeout: 200, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });

async function startToReady(d: LocalDriver, id: string): Promise<number> {
  const t0 = performance.now();
  const st = await d.ensure(spec(id));
  for (;;) {
    if (await answers(st.ip, st.ports.http!)) return performance.now() - t0;
    if (performance.now() - t0 > 15_000) throw new Error(`${id} did not answer within 15 s`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Requests/sec and the number of requests of one wrk run. */
function wrk(url: string, seconds: number): Promise<{ rps: number; requests: number }> {
  return new Promise((resolve, reject) =>
    execFile('wrk', ['-t1', '-c16', `-d${seconds}s`, url], { timeout: (seconds + 10) * 1000 }, (err, out) => {
      if (err) return reject(err);
      const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
      if (!m) return reject(new Error(`no Requests/sec in wrk output:\n${out}`));
      const n = /(\d+) requests in/.exec(out);
      resolve({ rps: Number(m[1]), requests: Number(n?.[1] ?? NaN) });
    }),
  );
}

/** USER_HZ: /proc's unit of CPU time on every Linux ABI Node supports. */
const TICKS_PER_SECOND = 100;
const cpuTicks = (pid: number): number => {
  const rest = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(rest[11]) + Number(rest[12]); // utime, stime
};

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

const drivers = {} as Record<Mode, LocalDriver>;
try {
  for (const [i, mode] of MODES.entries()) {
    drivers[mode] = await LocalDriver.create({
      stateDir: path.join(tmp, mode),
      site: 'bench',
      records: new MemoryInstanceRecords(),
      privileged: true,
      bridge: `bwbsb${i}`,
      subnet: `10.237.${i}.0/24`,
      cgroupParent: `bulwark-bench-sb${i}`,
      sandbox: mode === 'sandboxed',
    });
  }
  const sb = drivers.sandboxed.capabilities().sandbox;
  if (!sb?.available) throw new Error(`the sandbox is unavailable: ${sb?.reason ?? 'not reported'}`);

  // Start-to-ready, alternating modes; the first start of each warms caches and is dropped.
  const starts: Record<Mode, number[]> = { plain: [], sandboxed: [] };
  for (let i = -1; i < STARTS; i++) {
    for (const mode of i % 2 === 0 ? MODES : [...MODES].reverse()) {
      const id = `start-${mode}-${i + 1}`;
      const ms = await startToReady(drivers[mode], id);
      if (i >= 0) starts[mode].push(ms);
      await drivers[mode].remove(id);
    }
  }

  // Throughput: one instance per mode, wrk rounds alternating.
  const rps: Record<Mode, number[]> = { plain: [], sandboxed: [] };
  // CPU time the server spent per request (user + system, /proc/<pid>/stat): unlike req/s, it
  // hardly moves when other work on the machine takes the CPU away, so it shows the sandbox's own
  // cost (seccomp runs on every system call) under the load a shared machine has.
  const cpuUs: Record<Mode, number[]> = { plain: [], sandboxed: [] };
  const pids = {} as Record<Mode, number>;
  const urls = {} as Record<Mode, string>;
  for (const mode of MODES) {
    const id = `load-${mode}`;
    await startToReady(drivers[mode], id);
    const st = drivers[mode].get(id)!;
    urls[mode] = `http://${st.ip}:${st.ports.http}/`;
    pids[mode] = st.pid!;
    await wrk(urls[mode], 1); // warm-up: JIT and connection setup
  }
  for (let r = 0; r < ROUNDS; r++) {
    for (const mode of r % 2 === 0 ? MODES : [...MODES].reverse()) {
      const c0 = cpuTicks(pids[mode]);
      const w = await wrk(urls[mode], SECONDS);
      rps[mode].push(w.rps);
      cpuUs[mode].push(((cpuTicks(pids[mode]) - c0) * 1e6) / TICKS_PER_SECOND / w.requests);
    }
  }

  const row = (name: string, vals: Record<Mode, string>, ratio: string): string =>
    `${name.padEnd(28)} ${vals.plain.padStart(12)} ${vals.sandboxed.padStart(12)} ${ratio.padStart(10)}`;
  const f1 = (x: number): string => x.toFixed(1);
  const startP50 = { plain: median(starts.plain), sandboxed: median(starts.sandboxed) };
  const startP90 = { plain: pct(starts.plain, 90), sandboxed: pct(starts.sandboxed, 90) };
  const rpsMed = { plain: median(rps.plain), sandboxed: median(rps.sandboxed) };
  console.log(`bench/sandbox: ${STARTS} starts per mode, ${ROUNDS} x ${SECONDS} s of wrk -t1 -c16 per mode`);
  console.log(row('', { plain: 'plain', sandboxed: 'sandboxed' }, 'ratio'));
  console.log(
    row(
      'start-to-ready p50 (ms)',
      { plain: f1(startP50.plain), sandboxed: f1(startP50.sandboxed) },
      (startP50.sandboxed / startP50.plain).toFixed(3),
    ),
  );
  console.log(
    row(
      'start-to-ready p90 (ms)',
      { plain: f1(startP90.plain), sandboxed: f1(startP90.sandboxed) },
      (startP90.sandboxed / startP90.plain).toFixed(3),
    ),
  );
  console.log(
    row(
      'throughput median (req/s)',
      { plain: rpsMed.plain.toFixed(0), sandboxed: rpsMed.sandboxed.toFixed(0) },
      (rpsMed.sandboxed / rpsMed.plain).toFixed(3),
    ),
  );
  // Each round runs both modes back to back: their ratio cancels load that drifts between rounds
  // (other work on the machine), which the medians of each mode do not.
  const paired = rps.sandboxed.map((x, i) => x / rps.plain[i]!);
  console.log(row('throughput paired ratio p50', { plain: '', sandboxed: '' }, median(paired).toFixed(3)));
  const cpuMed = { plain: median(cpuUs.plain), sandboxed: median(cpuUs.sandboxed) };
  console.log(
    row(
      'server CPU per request (us)',
      { plain: cpuMed.plain.toFixed(2), sandboxed: cpuMed.sandboxed.toFixed(2) },
      (cpuMed.sandboxed / cpuMed.plain).toFixed(3),
    ),
  );
  console.log(`throughput rounds plain: ${rps.plain.map((x) => x.toFixed(0)).join(' ')}`);
  console.log(`throughput rounds sandboxed: ${rps.sandboxed.map((x) => x.toFixed(0)).join(' ')}`);
  const startDeltaMs = startP50.sandboxed - startP50.plain;
  const rpsRatio = rpsMed.sandboxed / rpsMed.plain;
  const pairedRatio = median(paired);
  const summary = {
    bench: 'sandbox',
    quick,
    starts: STARTS,
    rounds: ROUNDS,
    seconds: SECONDS,
    startP50Ms: { plain: +f1(startP50.plain), sandboxed: +f1(startP50.sandboxed) },
    startP50DeltaMs: +f1(startDeltaMs),
    throughputRps: { plain: Math.round(rpsMed.plain), sandboxed: Math.round(rpsMed.sandboxed) },
    throughputRatio: +rpsRatio.toFixed(3),
    throughputPairedRatio: +pairedRatio.toFixed(3),
    cpuPerRequestUs: { plain: +cpuMed.plain.toFixed(2), sandboxed: +cpuMed.sandboxed.toFixed(2) },
    cpuPerRequestRatio: +(cpuMed.sandboxed / cpuMed.plain).toFixed(3),
    targets: { startP50DeltaMsMax: 50, throughputRatioMin: 0.97 },
    met: { start: startDeltaMs <= 50, throughput: pairedRatio >= 0.97 },
  };
  console.log(JSON.stringify(summary));
} finally {
  for (const d of Object.values(drivers)) {
    for (const i of d.list()) await d.remove(i.id);
    await d.close();
  }
  for (const [i] of MODES.entries()) {
    await new Promise((r) => execFile('ip', ['link', 'del', `bwbsb${i}`], r));
    for (const c of ['memory', 'cpu', 'cpuacct', '']) {
      const dir = path.join('/sys/fs/cgroup', c, `bulwark-bench-sb${i}`);
      await new Promise((r) => execFile('find', [dir, '-depth', '-type', 'd', '-delete'], r));
    }
  }
  rmSync(tmp, { recursive: true, force: true });
}
