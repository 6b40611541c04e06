/**
 * What each feature of the rendered gateway config costs: the config Bulwark
 * renders (`renderConfig`, static servers with the same options the runtime
 * adds), the same config with one feature taken out at a time, and the
 * minimal hand-written config, all in front of the same two backends, in
 * alternating rounds. The figure to read is HAProxy CPU per request (user+sys
 * of each HAProxy process over the wrk run): on this saturated 2-core box the
 * throughput follows it, and it is far less noisy than req/s.
 *
 *   node bench/dataplane/ablation.ts [--quick] [--pin] [--only full,nolog,...] [--seconds 5] [--rounds 3]
 *
 * Experiment knobs (environment), for the receiver's own placement: RECEIVER_CPU
 * (with --pin: the CPU of this process, default 1), RECEIVER_NICE (its nice
 * value), RECEIVER_BATCH_MS (its readBatchMs, default 10 as before 2026-12-02),
 * RECEIVER_SLICE_MS (its sliceMs, default 0 as before 2026-12-02).
 *
 * Not a substitute for bench/dataplane/run.ts (which drives the real
 * HaproxyDataPlane with runtime-added servers): this one finds where the
 * microseconds are, that one reports the figures the targets use.
 */
import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { constants as fsConstants, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { renderConfig, type RenderOptions } from '../../src/dataplane/haproxy/config.ts';
import { HaproxyDataPlane } from '../../src/dataplane/haproxy/haproxy-dataplane.ts';
import { SyslogReceiver } from '../../src/dataplane/haproxy/syslog.ts';
import { parseRequestLog } from '../../src/dataplane/haproxy/log-parser.ts';
import { RequestStats } from '../../src/dataplane/haproxy/request-stats.ts';
import { freePort } from '../../src/util/ports.ts';
import { sleep, waitFor } from '../../src/util/time.ts';
import { benchServers, machineTimes, minimalHaproxyConfig, pinProcess, procCpuUs } from '../support/proxy.ts';
import { median, parseWrk, startBackend, type WrkReport } from '../support/wrk.ts';

const execFileP = promisify(execFile);
const argv = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const quick = argv.includes('--quick');
const SECONDS = Number(arg('--seconds') ?? (quick ? 3 : 5));
const ROUNDS = Number(arg('--rounds') ?? (quick ? 2 : 3));
const HOST = 'web.bench.acme';
/**
 * --pin: the proxies (and this process, which hosts the log receiver) on CPU 1, wrk and the
 * backends on CPU 0, so a proxy's CPU per request no longer takes cores from its own load.
 */
const PIN = argv.includes('--pin');
const pinned = (cpu: number, cmd: string, args: string[]): [string, string[]] =>
  PIN ? ['taskset', ['-c', String(cpu), cmd, ...args]] : [cmd, args];
if (PIN) pinProcess(process.pid, process.env.RECEIVER_CPU ?? '1');
if (process.env.RECEIVER_NICE) os.setPriority(Number(process.env.RECEIVER_NICE));

interface Variant {
  /** What the variant leaves out, for the table. */
  what: string;
  options?: RenderOptions;
  /** Text edit of the rendered cfg. */
  edit?: (cfg: string) => string;
  /** Hand-written cfg instead of a rendered one. */
  raw?: (port: number, servers: number[]) => string;
  logs: boolean;
  /** Logs to a FIFO inherited as fd 3 (`log fd@3`) instead of the ring + TCP receiver. */
  fdLog?: boolean;
  /** Not a rendered file: HaproxyDataPlane itself, servers added at runtime. */
  dataPlane?: boolean;
}

const drop = (re: RegExp) => (cfg: string) =>
  cfg
    .split('\n')
    .filter((l) => !re.test(l))
    .join('\n');

const compose =
  (...edits: ((cfg: string) => string)[]) =>
  (cfg: string): string =>
    edits.reduce((c, e) => e(c), cfg);
const EDITS = {
  nocapture: (cfg: string) =>
    drop(/http-request capture/)(cfg).replace(
      '%{+Q,+E}[capture.req.hdr(0)] %{+Q,+E}[capture.req.hdr(1)]',
      '"-" "-"',
    ),
  nol7retry: (cfg: string) =>
    drop(/acl bw_|disable-l7-retry/)(cfg).replace(/retry-on .*/, 'retry-on conn-failure'),
  noroute: (cfg: string) =>
    drop(/set-var\(txn\.(host|be|pfx)\)|return status 404|X-Forwarded-Prefix|set-path/)(cfg).replace(
      /use_backend .*/,
      `default_backend ${HOST}`,
    ),
  nochecks: (cfg: string) =>
    cfg.replace(/ check inter \d+ fall \d+ rise \d+/g, '').replace(/ *option httpchk.*\n/, ''),
  nodefaults: drop(
    /option redispatch|^  retries|retry-on|timeout http-request|timeout queue|option http-keep-alive|log global|http-error|stats socket|stats timeout/,
  ),
};

const VARIANTS: Record<string, Variant> = {
  full: { what: 'as rendered (request logs on)', logs: true },
  dp: { what: 'nothing: HaproxyDataPlane with runtime-added (dynamic) servers', logs: true, dataPlane: true },
  nolog: { what: 'no request log', options: { requestLogs: false }, logs: false },
  notrace: { what: 'no X-Request-Id/traceparent generation', options: { traceHeaders: false }, logs: true },
  nocapture: { what: 'no header captures (log fields "-")', edit: EDITS.nocapture, logs: true },
  nol7retry: {
    what: 'retries on connection failure only (no L7 retry, no method ACLs)',
    edit: EDITS.nol7retry,
    logs: true,
  },
  noroute: { what: 'default_backend instead of Host/path map routing', edit: EDITS.noroute, logs: true },
  nochecks: { what: 'no active health checks', edit: EDITS.nochecks, logs: true },
  bare: {
    what: 'all of the above and logs and trace headers: should cost what minimal costs',
    options: { requestLogs: false, traceHeaders: false },
    edit: compose(EDITS.nocapture, EDITS.nol7retry, EDITS.noroute, EDITS.nochecks),
    logs: false,
  },
  barest: {
    what: 'bare, and the defaults/global extras (redispatch, retries, timeouts, stats socket, http-error)',
    options: { requestLogs: false, traceHeaders: false },
    edit: compose(EDITS.nocapture, EDITS.nol7retry, EDITS.noroute, EDITS.nochecks, EDITS.nodefaults),
    logs: false,
  },
  'bare+log': {
    what: 'bare with the request log (and the captures it logs)',
    options: { traceHeaders: false },
    edit: compose(EDITS.nol7retry, EDITS.noroute, EDITS.nochecks),
    logs: true,
  },
  'bare+trace': {
    what: 'bare with trace header generation',
    options: { requestLogs: false },
    edit: compose(EDITS.nocapture, EDITS.nol7retry, EDITS.noroute, EDITS.nochecks),
    logs: false,
  },
  'bare+l7retry': {
    what: 'bare with L7 retries',
    options: { requestLogs: false, traceHeaders: false },
    edit: compose(EDITS.nocapture, EDITS.noroute, EDITS.nochecks),
    logs: false,
  },
  'bare+route': {
    what: 'bare with Host/path routing',
    options: { requestLogs: false, traceHeaders: false },
    edit: compose(EDITS.nocapture, EDITS.nol7retry, EDITS.nochecks),
    logs: false,
  },
  'bare+checks': {
    what: 'bare with health checks',
    options: { requestLogs: false, traceHeaders: false },
    edit: compose(EDITS.nocapture, EDITS.nol7retry, EDITS.noroute),
    logs: false,
  },
  fdlog: {
    what: 'nothing; request log written to an inherited pipe (log fd@3) instead of ring + TCP',
    options: {},
    edit: (cfg) =>
      cfg
        .replace(/^ring [\s\S]*?\n\n/m, '')
        .replace(/  log ring@\S+ len 4096 /, '  log fd@3 len 4096 format raw '),
    logs: true,
    fdLog: true,
  },
  onethread: {
    what: 'nothing; one HAProxy thread (nbthread 1) instead of one per core',
    edit: (cfg) => cfg.replace(/^global\n/m, 'global\n  nbthread 1\n'),
    logs: true,
  },
  bufsize8k: {
    what: 'nothing; 8 KiB buffers (tune.bufsize 8192) instead of 16 KiB',
    edit: (cfg) => cfg.replace(/^global\n/m, 'global\n  tune.bufsize 8192\n'),
    logs: true,
  },
  onevar: {
    what: 'nothing; Host routing through one variable (the map result) instead of two',
    edit: (cfg) =>
      cfg
        .replace(
          /  http-request set-var\(txn\.host\) .*\n  http-request set-var\(txn\.be\) var\(txn\.host\),(map_str\([^)]*\))/,
          '  http-request set-var(txn.be) req.hdr(host),field(1,:),lower,$1',
        )
        .replace('%[var(txn.host)]', '%[req.hdr(host)]'),
    logs: true,
  },
  reusealways: {
    what: 'nothing; http-reuse always instead of safe',
    edit: (cfg) => cfg.replace(/^defaults\n/m, 'defaults\n  http-reuse always\n'),
    logs: true,
  },
  preferlast: {
    what: 'nothing; option prefer-last-server (per-connection instead of per-request balancing)',
    edit: (cfg) => cfg.replace(/^defaults\n/m, 'defaults\n  option prefer-last-server\n'),
    logs: true,
  },
  minimal: {
    what: 'hand-written: one frontend, default_backend, roundrobin, no logs',
    raw: minimalHaproxyConfig,
    logs: false,
  },
};

interface Result extends WrkReport {
  cpuUsPerReq: number;
  /** Share of the machine's CPU time the hypervisor stole during the run, %. */
  stealPct: number;
}

async function main(): Promise<void> {
  const only = arg('--only')?.split(',');
  const names = Object.keys(VARIANTS).filter((n) => !only || only.includes(n));
  const unknown = only?.filter((n) => !(n in VARIANTS)) ?? [];
  if (unknown.length > 0)
    throw new Error(
      `--only: unknown variant(s) ${unknown.join(', ')}; known: ${Object.keys(VARIANTS).join(', ')}`,
    );
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bw-ablation-'));
  const procs: ChildProcess[] = [];
  const receiver = await SyslogReceiver.create({
    transport: 'tcp',
    readBatchMs: Number(process.env.RECEIVER_BATCH_MS ?? 10),
    sliceMs: Number(process.env.RECEIVER_SLICE_MS ?? 0),
  });
  const stats = new RequestStats({});
  let lines = 0;
  let fifoLines = 0;
  const sent: Record<string, number> = {};
  const fifoSockets: net.Socket[] = [];
  const dataPlanes: HaproxyDataPlane[] = [];
  receiver.onMessage((m) => {
    const log = parseRequestLog(m);
    if (log) {
      lines++;
      stats.add(log);
    }
  });
  try {
    const a = await startBackend('i1');
    const b = await startBackend('i2');
    procs.push(a.proc, b.proc);
    if (PIN) for (const p of [a.proc, b.proc]) pinProcess(p.pid!, '0');
    const ports = [a.port, b.port];
    const running: Record<string, { port: number; pid: number }> = {};
    for (const name of names) {
      const v = VARIANTS[name]!;
      if (v.dataPlane) {
        // The real thing: HaproxyDataPlane, servers added at runtime (dynamic servers).
        const dp = await HaproxyDataPlane.create({
          workDir: path.join(dir, name),
          binds: [{ address: '127.0.0.1', port: await freePort() }],
          ...(PIN ? { render: { cpus: [1] } } : {}),
        });
        dataPlanes.push(dp);
        dp.onRequest(() => void lines++);
        await dp.sync({ backends: [{ name: HOST, aliases: [], servers: [] }] });
        await dp.sync({
          backends: [
            {
              name: HOST,
              aliases: [],
              servers: benchServers(ports),
            },
          ],
        });
        running[name] = { port: Number(new URL(dp.gatewayUrl).port), pid: dp.status().process.workerPid! };
        continue;
      }
      const port = await freePort();
      const vdir = path.join(dir, name);
      mkdirSync(vdir);
      let cfg: string;
      if (v.raw) cfg = v.raw(port, ports);
      else {
        const r = renderConfig({
          binds: [{ address: '127.0.0.1', port }],
          backends: [
            {
              name: HOST,
              aliases: [],
              servers: benchServers(ports),
            },
          ],
          statsSocketPath: path.join(vdir, 'stats.sock'),
          ...(v.logs ? { syslog: { host: receiver.host, port: receiver.port } } : {}),
          mapDir: vdir,
          options: { maxConn: 4000, ...v.options },
        });
        for (const [f, text] of Object.entries(r.files)) writeFileSync(path.join(vdir, f), text);
        cfg = v.edit ? v.edit(r.cfg) : r.cfg;
      }
      const file = path.join(vdir, 'haproxy.cfg');
      writeFileSync(file, cfg);
      if (!v.fdLog)
        await execFileP('/usr/sbin/haproxy', ['-c', '-q', '-f', file]).catch((err: { stderr?: string }) => {
          throw new Error(`variant ${name}: config rejected by haproxy -c:\n${err.stderr ?? String(err)}`);
        });
      let stdio: ('ignore' | number)[] = ['ignore', 'ignore', 'ignore'];
      if (v.fdLog) {
        const fifo = path.join(vdir, 'log.fifo');
        execFileSync('mkfifo', [fifo]);
        // O_RDWR: opening never blocks, and the FIFO never reports EOF while we hold it.
        const fd = openSync(fifo, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
        stdio = ['ignore', 'ignore', 'ignore', fd];
        let rest = '';
        const sock = new net.Socket({
          fd: openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK),
          readable: true,
          writable: false,
        });
        sock.setEncoding('latin1');
        sock.on('data', (chunk: string) => {
          const text = rest + chunk;
          let at = 0;
          for (let nl = text.indexOf('\n', at); nl >= 0; nl = text.indexOf('\n', at)) {
            const log = parseRequestLog(text.slice(at, nl));
            if (log) {
              fifoLines++;
              stats.add(log);
            }
            at = nl + 1;
          }
          rest = text.slice(at);
        });
        fifoSockets.push(sock);
      }
      const proc = spawn(...pinned(1, '/usr/sbin/haproxy', ['-f', file]), {
        stdio: v.fdLog ? ['ignore', 'ignore', 'inherit', ...stdio.slice(3)] : stdio,
      });
      procs.push(proc);
      await waitFor(`haproxy ${name}`, async () => {
        // node:http, not fetch: fetch drops a Host header.
        const status = await new Promise<number | undefined>((resolve) => {
          http
            .get({ host: '127.0.0.1', port, path: '/', headers: { host: HOST } }, (res) => {
              res.resume();
              resolve(res.statusCode);
            })
            .on('error', () => resolve(undefined));
        });
        return status === 200;
      });
      running[name] = { port, pid: proc.pid! };
    }
    const run = async (name: string, seconds: number): Promise<Result> => {
      const { port, pid } = running[name]!;
      const c0 = procCpuUs(pid);
      const [t0, st0] = machineTimes();
      const { stdout } = await execFileP(
        ...pinned(0, 'wrk', [
          '-t1',
          '-c32',
          `-d${seconds}s`,
          '--latency',
          '-H',
          `Host: ${HOST}`,
          `http://127.0.0.1:${port}/`,
        ]),
        { timeout: (seconds + 30) * 1000 },
      );
      const r = parseWrk(stdout);
      sent[name] = (sent[name] ?? 0) + r.requests;
      const [t1, st1] = machineTimes();
      return {
        ...r,
        cpuUsPerReq: (procCpuUs(pid) - c0) / r.requests,
        stealPct: (100 * (st1 - st0)) / Math.max(1, t1 - t0),
      };
    };
    for (const name of names) await run(name, 1); // warm-up: JIT, connection pools
    const results: Record<string, Result[]> = Object.fromEntries(names.map((n) => [n, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? names : [...names].reverse();
      for (const name of order) {
        const r = await run(name, SECONDS);
        results[name]!.push(r);
        process.stderr.write(
          `round ${round + 1}/${ROUNDS} ${name}: ${r.rps.toFixed(0)} req/s p99 ${r.p99Ms} ms, HAProxy ${r.cpuUsPerReq.toFixed(1)} us/req, steal ${r.stealPct.toFixed(0)} %\n`,
        );
        await sleep(300);
      }
    }
    const summary = Object.fromEntries(
      names.map((n) => {
        const rs = results[n]!;
        return [
          n,
          {
            rps: Math.round(median(rs.map((x) => x.rps))),
            p99Ms: Number(median(rs.map((x) => x.p99Ms)).toFixed(2)),
            cpuUsPerReq: Number(median(rs.map((x) => x.cpuUsPerReq)).toFixed(1)),
            errors: rs.reduce((s, x) => s + x.errors, 0),
          },
        ];
      }),
    );
    const full = summary['full'];
    console.log(`\nwrk -t1 -c32 -d${SECONDS}s, ${ROUNDS} alternating rounds, medians\n`);
    console.log('| variant | leaves out | req/s | p99 ms | HAProxy CPU µs/req | vs full µs/req |');
    console.log('|---|---|---:|---:|---:|---:|');
    for (const n of names) {
      const s = summary[n]!;
      const d = full ? (s.cpuUsPerReq - full.cpuUsPerReq).toFixed(1) : '-';
      console.log(`| ${n} | ${VARIANTS[n]!.what} | ${s.rps} | ${s.p99Ms} | ${s.cpuUsPerReq} | ${d} |`);
    }
    console.log(`log lines received over TCP: ${lines}, over the FIFO: ${fifoLines}`);
    const fifoSent = names.filter((n) => VARIANTS[n]!.fdLog).reduce((a, n) => a + (sent[n] ?? 0), 0);
    if (fifoSent > 0)
      console.log(`requests to FIFO-logging variants: ${fifoSent} (lines lost: ${fifoSent - fifoLines})`);
    console.log(
      JSON.stringify({ bench: 'dataplane-ablation', quick, seconds: SECONDS, rounds: ROUNDS, ...summary }),
    );
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    for (const s of fifoSockets) s.destroy();
    for (const dp of dataPlanes) await dp.close();
    await receiver.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
