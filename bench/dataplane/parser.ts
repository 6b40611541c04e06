/**
 * What the request log key costs per line: the data plane's per-line work
 * (HaproxyDataPlane.onLogMessage: parseRequestLog, plus the refusal check for
 * lines that are not records) on lines as HAProxy writes them, once without a
 * key (the baseline: the format before the key) and once with this start's
 * key (what runs now). Each measurement runs in a fresh process, the two
 * variants alternating round by round on the same lines; the ratio of
 * medians is the number.
 *
 *   node bench/dataplane/parser.ts [--quick] [--rounds 15] [--lines 200000]
 *
 * The last stdout line is a JSON summary.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { newLogKey } from '../../src/dataplane/haproxy/config.ts';
import { hasRecordTag, parseRequestLog, recordPrefix } from '../../src/dataplane/haproxy/log-parser.ts';
import type { RequestLog } from '../../src/dataplane/dataplane.ts';

const quick = process.argv.includes('--quick');
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
};
const rounds = arg('--rounds', quick ? 7 : 15);
const linesPerRound = arg('--lines', quick ? 100_000 : 300_000);

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const d = new Date();
const p = (n: number, w = 2): string => String(n).padStart(w, '0');
const second = `${p(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;

/** 1000 distinct lines in one second (HAProxy's lines arrive in bursts within a second). */
function lines(tag: string): string[] {
  const text = Array.from(
    { length: 1000 },
    (_, i) =>
      `${tag} ${second}.${p(i, 3)} 127.0.0.1 web.bench.acme i${1 + (i % 3)} GET "/p/${i}" 200 ${i % 7} 0 0 ---- 161 "" "00-ae23c26682ad4ae2ba60d9bdf9567543-ea6e1350bc2f47b2-01"\n`,
  ).join('');
  // Cut out of one latin1-decoded buffer, as the receiver cuts lines out of a read
  // (flat strings: template-literal strings are cons strings, slower to scan).
  const read = Buffer.from(text).toString('latin1');
  const out: string[] = [];
  for (let at = 0, nl = read.indexOf('\n'); nl >= 0; at = nl + 1, nl = read.indexOf('\n', at))
    out.push(read.slice(at, nl));
  return out;
}

const key = newLogKey();
let sink = 0;
let refused = 0;
/** onLogMessage's work for one line, without the listeners. */
function handle(message: string, prefix: string): void {
  const log: RequestLog | undefined = parseRequestLog(message, prefix);
  if (!log) {
    if (hasRecordTag(message) && !message.startsWith(prefix)) refused++;
    return;
  }
  sink += log.status;
}

/** One variant in this process: warm up, then ns per line over `linesPerRound`. */
function measure(variant: 'baseline' | 'keyed'): number {
  const set = lines(variant === 'keyed' ? `bwlog1 ${key}` : 'bwlog1');
  const prefix = variant === 'keyed' ? recordPrefix(key) : recordPrefix();
  // CPU time, not wall time: on a shared box the process is descheduled for
  // long stretches (load average 15-20 on 2 cores while this was written).
  const run = (n: number): number => {
    const u0 = process.cpuUsage();
    for (let i = 0; i < n; i++) handle(set[i % set.length] ?? '', prefix);
    const u = process.cpuUsage(u0);
    return ((u.user + u.system) * 1000) / n;
  };
  run(linesPerRound / 2); // JIT warm-up
  const ns = run(linesPerRound);
  if (refused !== 0 || sink === 0)
    throw new Error(`bench lines were refused (${refused}): the bench is broken`);
  return ns;
}

const child = process.argv.indexOf('--child');
if (child >= 0) {
  const variant = process.argv[child + 1] === 'keyed' ? 'keyed' : 'baseline';
  console.log(JSON.stringify({ ns: measure(variant) }));
} else {
  // Each measurement in a fresh process: in one process the variant compiled
  // second ran up to 1.5x slower whichever it was (JIT feedback shared by both).
  const once = (variant: string): number => {
    const out = execFileSync(
      process.execPath,
      [fileURLToPath(import.meta.url), '--child', variant, '--lines', String(linesPerRound)],
      { encoding: 'utf8' },
    );
    return (JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { ns: number }).ns;
  };
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.floor(s.length / 2)] ?? NaN;
  };
  const base: number[] = [];
  const ours: number[] = [];
  for (let r = 0; r < rounds; r++) {
    // Alternate which goes first so drift (other jobs, CPU frequency) hits both alike.
    if (r % 2 === 0) {
      base.push(once('baseline'));
      ours.push(once('keyed'));
    } else {
      ours.push(once('keyed'));
      base.push(once('baseline'));
    }
  }
  const summary = {
    bench: 'dataplane-log-parser-key',
    rounds,
    linesPerRound,
    baselineNsPerLine: Number(median(base).toFixed(1)),
    keyedNsPerLine: Number(median(ours).toFixed(1)),
    ratio: Number((median(ours) / median(base)).toFixed(3)),
  };
  console.log('| lines                  | ns/line (median) |');
  console.log('|------------------------|------------------|');
  console.log(`| no key (baseline)      | ${summary.baselineNsPerLine.toString().padStart(16)} |`);
  console.log(`| with the log key       | ${summary.keyedNsPerLine.toString().padStart(16)} |`);
  console.log(`ratio keyed/baseline: ${summary.ratio}`);
  console.log(JSON.stringify(summary));
}
