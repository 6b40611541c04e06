/**
 * One client must not stall the control plane: health and read latency while
 * 10,000 apps are applied (10 requests of 1000, the per-request limit),
 * against the same routes on the idle server in the same run (the anchor),
 * plus the apply's duration, the server's RSS, and a restart on the data dir
 * with all the apps in it. Last stdout line: a JSON summary.
 *
 *   node bench/big-apply/run.ts [--quick] [--apps 10000]
 *
 * --quick: 2000 apps (two requests, one at the limit), under a minute.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startControlPlane } from '../../test/support/control-plane-process.ts';
import { bigApply, restart, stopQuietly } from './scenario.ts';

const { values: args } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, apps: { type: 'string' } },
});
const apps = Number(args.apps ?? (args.quick ? 2000 : 10_000));
if (!Number.isInteger(apps) || apps < 1 || apps > 100_000) {
  process.stderr.write(`--apps must be a whole number from 1 to 100000 (got '${args.apps}')\n`);
  process.exit(2);
}
const dir = mkdtempSync(path.join(os.tmpdir(), 'bw-bigapply-'));
// The apps have no replicas: nothing is started, so no sandbox is needed.
let cp = await startControlPlane({ dataDir: path.join(dir, 'data'), unprivileged: true });
try {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const applied = await bigApply(cp, apps, { log, ...(args.quick ? { idleMs: 2000 } : {}) });
  const restarted = await restart(cp, { unprivileged: true, ...(args.quick ? { probeMs: 3000 } : {}) });
  cp = restarted.cp;
  const ratio = (a: number, b: number) => Math.round((a / b) * 10) / 10;
  const summary = {
    bench: 'big-apply',
    ...applied,
    ratio: {
      healthP99: ratio(applied.during.health.p99, applied.idle.health.p99),
      readP99: ratio(applied.during.read.p99, applied.idle.read.p99),
      statusP99: ratio(applied.during.status.p99, applied.idle.status.p99),
    },
    restart: restarted.result,
  };
  const row = (name: string, l: { p50: number; p99: number; max: number; count: number; errors: number }) =>
    `| ${name} | ${l.p50} | ${l.p99} | ${l.max} | ${l.count} | ${l.errors} |`;
  process.stdout.write(
    [
      `apps ${apps} in ${applied.batches} requests: ${applied.applyMs} ms (batches ${applied.batchMs.join(', ')} ms); stored ${applied.storedApps}; RSS ${applied.rssMiB} MiB (peak ${applied.peakRssMiB} MiB)`,
      '| probe | p50 ms | p99 ms | max ms | n | errors |',
      '| --- | --- | --- | --- | --- | --- |',
      row('health idle', applied.idle.health),
      row('health during apply', applied.during.health),
      row('read idle', applied.idle.read),
      row('read during apply', applied.during.read),
      row('status idle', applied.idle.status),
      row('status during apply', applied.during.status),
      row('health after restart', restarted.result.after.health),
      row('read after restart', restarted.result.after.read),
      `progress: ${applied.progress.snapshots} snapshots of a running apply, ${applied.progress.distinctDone} distinct counts, phases ${applied.progress.phases.join(', ')}`,
      `restart: healthy after ${restarted.result.healthyAfterMs} ms, stored ${restarted.result.storedApps}, RSS ${restarted.result.rssMiB} MiB`,
      JSON.stringify(summary),
      '',
    ].join('\n'),
  );
} finally {
  await stopQuietly(cp).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
}
