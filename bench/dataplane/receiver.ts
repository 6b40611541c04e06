/**
 * Receiver-only cost of the per-request log, without HAProxy and wrk on the
 * same cores: a sender process writes octet-counted request log lines at a
 * fixed rate in ~10-line writes (as HAProxy's ring forwarder does) to a real
 * SyslogReceiver whose listener runs parseRequestLog and RequestStats.add, as
 * HaproxyDataPlane does. Prints this process's CPU per line and the delivery
 * delay; the last stdout line is a JSON summary.
 *
 * Also prints how long the receiver held the CPU in one go (a run of lines
 * parsed without returning to the event loop): that is how long whatever
 * shares its core waits, which is what a request's p99 sees.
 *
 *   node bench/dataplane/receiver.ts [--rate 15000] [--seconds 8] [--batch-ms 25] [--slice-ms 0.1] [--no-parse]
 *
 * To compare with an older commit, run the same file from a checkout of it
 * (`git archive <commit> | tar -x -C /tmp/old`) if it exists there, or copy it.
 */
import { fork } from 'node:child_process';
import net from 'node:net';
import { parseRequestLog } from '../../src/dataplane/haproxy/log-parser.ts';
import { RequestStats } from '../../src/dataplane/haproxy/request-stats.ts';
import {
  DEFAULT_READ_BATCH_MS,
  DEFAULT_SLICE_MS,
  SyslogReceiver,
} from '../../src/dataplane/haproxy/syslog.ts';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function logLine(i: number): string {
  const d = new Date();
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const ts = `${p(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
  const l = `bwlog1 ${ts} 127.0.0.1 web.bench.acme i${1 + (i % 2)} GET "/" 200 0 0 0 ---- 161 "" "00-ae23c26682ad4ae2ba60d9bdf9567543-ea6e1350bc2f47b2-01"`;
  return `${l.length} ${l}`;
}

if (process.argv[2] === '--sender') {
  const [port, rate] = [Number(process.argv[3]), Number(process.argv[4])];
  const c = net.connect(port, '127.0.0.1');
  c.setNoDelay(true);
  let i = 0;
  let due = 0;
  // Every millisecond, the lines of that millisecond in writes of up to 10 lines.
  setInterval(() => {
    due += rate / 1000;
    let out = '';
    for (let k = 1; due >= 1; k++, due--) {
      out += logLine(i++);
      if (k % 10 === 0) {
        c.write(out);
        out = '';
      }
    }
    if (out) c.write(out);
  }, 1);
} else {
  const rate = arg('--rate', 15_000);
  const seconds = arg('--seconds', 8);
  const noParse = process.argv.includes('--no-parse');
  const receiver = await SyslogReceiver.create({
    readBatchMs: arg('--batch-ms', DEFAULT_READ_BATCH_MS),
    sliceMs: arg('--slice-ms', DEFAULT_SLICE_MS),
  });
  const stats = new RequestStats();
  let lines = 0;
  const delays: number[] = [];
  // A run of lines ends when the event loop reaches its check phase: libuv reads up to
  // 32 chunks of 64 KiB per poll callback with no turn of the loop between them
  // (microtasks do run between them, so a microtask would split one hold into many).
  const blocks: number[] = [];
  let blockStart = -1;
  const endBlock = (): void => {
    blocks.push(performance.now() - blockStart);
    blockStart = -1;
  };
  receiver.onMessage((m) => {
    lines++;
    if (blockStart < 0) {
      blockStart = performance.now();
      setImmediate(endBlock);
    }
    if (noParse) return;
    const log = parseRequestLog(m);
    if (!log) return;
    stats.add(log);
    if ((lines & 63) === 0) delays.push(Date.now() - Date.parse(log.at));
  });
  const sender = fork(new URL(import.meta.url).pathname, ['--sender', String(receiver.port), String(rate)]);
  await new Promise((r) => setTimeout(r, 2000)); // warm-up (JIT)
  const u0 = process.cpuUsage();
  const [l0, d0, b0] = [lines, delays.length, blocks.length];
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const u = process.cpuUsage(u0);
  const n = lines - l0;
  const d = delays.slice(d0).sort((a, b) => a - b);
  const bl = blocks.slice(b0).sort((a, b) => a - b);
  const ms = (v: number | undefined): number | null => (v === undefined ? null : Number(v.toFixed(2)));
  const summary = {
    bench: 'dataplane-receiver',
    rate,
    linesPerS: Math.round(n / seconds),
    cpuUsPerLine: Number(((u.user + u.system) / n).toFixed(2)),
    userUsPerLine: Number((u.user / n).toFixed(2)),
    sysUsPerLine: Number((u.system / n).toFixed(2)),
    delayP50Ms: d[Math.floor(d.length / 2)] ?? null,
    delayP99Ms: d[Math.floor(d.length * 0.99)] ?? null,
    blockP50Ms: ms(bl[Math.floor(bl.length / 2)]),
    blockP99Ms: ms(bl[Math.floor(bl.length * 0.99)]),
    blockMaxMs: ms(bl.at(-1)),
    slices: receiver.status().slices,
    parse: !noParse,
  };
  console.log(
    `${summary.linesPerS} lines/s: ${summary.cpuUsPerLine} us/line (user ${summary.userUsPerLine}, sys ${summary.sysUsPerLine}), delay p50 ${summary.delayP50Ms} ms p99 ${summary.delayP99Ms} ms, CPU held p50 ${summary.blockP50Ms} p99 ${summary.blockP99Ms} max ${summary.blockMaxMs} ms`,
  );
  console.log(JSON.stringify(summary));
  sender.kill();
  await receiver.close();
}
