/**
 * Measure how long the Kubernetes test harness takes to start one cluster,
 * and three in parallel (the multi-cluster tests' set-up), on this machine.
 * Usage: flock /tmp/bulwark-bench.lock node_modules/.bin/node test/support/kube/measure-start.ts [runs]
 * Prints one line per run and a JSON summary last (medians in ms, load average).
 */
import os from 'node:os';
import { startKubeCluster, startKubeClusters } from '../kube-harness.ts';

const runs = Number(process.argv[2] ?? 3);
if (!Number.isInteger(runs) || runs < 1 || runs > 20) {
  console.error(`runs must be an integer 1..20, got ${process.argv[2]}`);
  process.exit(2);
}
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

const one: number[] = [];
const three: number[] = [];
const load: number[] = [];
for (let i = 0; i < runs; i++) {
  load.push(os.loadavg()[0]!);
  let t0 = Date.now();
  const c = await startKubeCluster({ name: `m${i}` });
  one.push(Date.now() - t0);
  await c.stop();
  t0 = Date.now();
  const cs = await startKubeClusters([`m${i}a`, `m${i}b`, `m${i}c`]);
  three.push(Date.now() - t0);
  await Promise.all(cs.map((x) => x.stop()));
  console.log(
    `run ${i + 1}: one ${one.at(-1)} ms, three in parallel ${three.at(-1)} ms, load ${load.at(-1)!.toFixed(1)}`,
  );
}
console.log(
  JSON.stringify({
    runs,
    oneClusterMedianMs: median(one),
    threeClustersMedianMs: median(three),
    oneClusterMs: one,
    threeClustersMs: three,
    loadAvg1m: load.map((l) => Math.round(l * 10) / 10),
    cores: os.cpus().length,
  }),
);
