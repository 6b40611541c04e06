/**
 * Adversarial fault suite, long form: third-party servers (python http.server,
 * nginx, caddy) under open-loop load, faults sent from outside (SIGKILL,
 * SIGTERM, SIGSTOP, 100 % packet loss, host CPU starvation) at random moments.
 * Per workload and fault: time until the faulty instance is out of traffic,
 * client errors, false isolations (a healthy instance isolated) and missed
 * ones. Prints a markdown table and, as the last stdout line, a JSON summary.
 *
 *   node bench/chaos/run.ts [--quick] [--workloads python,nginx,caddy] [--faults sigkill,...]
 *       [--injections 10] [--rps 600] [--seed 1]
 *
 * Root only (network namespaces, iptables in them). See bench/chaos/README.md.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { FAULTS, faultNamed } from './faults.ts';
import { runSuite, type FaultSummary } from './suite.ts';
import { WORKLOADS, workloadNamed } from './workloads.ts';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    workloads: { type: 'string' },
    faults: { type: 'string' },
    injections: { type: 'string' },
    rps: { type: 'string' },
    seed: { type: 'string', default: '1' },
  },
});

function positiveInt(flag: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`--${flag} must be a whole number >= 1 (got '${v}')\n`);
    process.exit(2);
  }
  return n;
}

if (process.getuid?.() !== 0) {
  process.stderr.write('bench/chaos needs root (network namespaces, iptables inside them); run it as root\n');
  process.exit(2);
}
const workloads = (
  args.workloads?.split(',') ?? (args.quick ? ['python'] : WORKLOADS.map((w) => w.name))
).map(workloadNamed);
const faults = (args.faults?.split(',') ?? FAULTS.map((f) => f.name)).map(faultNamed);
const injections = positiveInt('injections', args.injections, args.quick ? 1 : 10);
const rps = positiveInt('rps', args.rps, args.quick ? 300 : 600);
const seed = positiveInt('seed', args.seed, 1);
for (const w of workloads) {
  if (w.binary.startsWith('/') && !existsSync(w.binary)) {
    process.stderr.write(
      `${w.name}: ${w.binary} is missing; install it with: apt-get install -y ${w.debianPackage}\n`,
    );
    process.exit(2);
  }
}

const all: FaultSummary[] = [];
const t0 = Date.now();
for (const w of workloads) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `bw-chaos-${w.name}-`));
  process.stderr.write(`== ${w.name}: ${faults.length} faults x ${injections}, ${rps} req/s\n`);
  const { summaries } = await runSuite({
    dir,
    workload: w,
    faults,
    injections,
    rps,
    seed,
    ...(args.quick ? { pauseMs: [500, 1500] as [number, number], watchMs: 4000 } : {}),
    log: (l) => process.stderr.write(`  ${l}\n`),
  });
  all.push(...summaries);
}

const fmt = (v: number | undefined): string => (v === undefined ? '-' : String(Math.round(v)));
console.log(
  '| workload | fault | expected | injections | out p50 ms | out p99 ms | client errors | false isolations | missed |',
);
console.log('| --- | --- | --- | --: | --: | --: | --: | --: | --: |');
for (const s of all) {
  console.log(
    `| ${s.workload} | ${s.fault} | ${s.expect} | ${s.injections} | ${fmt(s.outP50Ms)} | ${fmt(s.outP99Ms)} | ${s.clientErrors} / ${s.requests} | ${s.falseIsolations} | ${s.missed} |`,
  );
}
const totals = {
  injections: all.reduce((a, s) => a + s.injections, 0),
  falseIsolations: all.reduce((a, s) => a + s.falseIsolations, 0),
  missed: all.reduce((a, s) => a + s.missed, 0),
  clientErrors: all.reduce((a, s) => a + s.clientErrors, 0),
  requests: all.reduce((a, s) => a + s.requests, 0),
};
console.log(
  JSON.stringify({
    bench: 'chaos',
    quick: args.quick,
    rps,
    seed,
    seconds: Math.round((Date.now() - t0) / 1000),
    totals,
    results: all,
  }),
);
