/**
 * Records the cgroup memory of one demo ledger (256 MiB, CPU 0.5, like the
 * benchmark's instances) every 50 ms through start-up, idle, steady load and a
 * 20 MiB/s leak until the OOM kill: the real traces the memory-leak signature
 * is calibrated against (src/isolation/signatures/memory-trend.test.ts).
 * TRACE_RPS sets the load phase's rate (default 200; a burst such as the
 * foundation test's: TRACE_RPS=3000 TRACE_MAX_IN_FLIGHT=8), TRACE_LEAK=0 ends the
 * trace after the load instead of injecting the leak.
 *
 *   TRACE_LIMIT_MIB=256 TRACE_LOAD_S=25 node bench/isolation/memory-trace.ts > trace.json   (root: cgroup v1)
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CgroupsV1 } from '../../src/runtime/local/cgroups.ts';
import { sleep } from '../../src/util/time.ts';
import { LedgerProcess } from './baselines.ts';
import { freePort } from '../../src/util/ports.ts';
import { LoadGenerator, now, setFault } from './harness.ts';

const cgroups = new CgroupsV1({ parent: 'bulwark-bench-memtrace' });
const cap = cgroups.detect();
if (!cap.available) throw new Error(cap.reason);
const dir = mkdtempSync(path.join(os.tmpdir(), 'memtrace-'));
const limitMiB = Number(process.env.TRACE_LIMIT_MIB ?? 256);
const ledger = new LedgerProcess('trace-0', await freePort(), dir, cgroups, limitMiB * 1048576);
const memFile = path.join(cgroups.root, 'memory', cgroups.parent, 'trace-0');
const samples: [number, number, string][] = [];
let phase = 'start';
const t0 = now();
const timer = setInterval(() => {
  const s = cgroups.stats({ memory: memFile, cpu: memFile });
  if (s) samples.push([Math.round(now() - t0), s.memoryBytes, phase]);
}, 50);
await ledger.start();
phase = 'idle';
await sleep(3000);
phase = 'load';
const load = new LoadGenerator({
  url: ledger.url,
  host: 'ledger',
  rps: Number(process.env.TRACE_RPS ?? 200),
  // A closed-loop burst like the foundation test's (8 requests in flight, as fast as they go): TRACE_MAX_IN_FLIGHT=8 with a high TRACE_RPS.
  ...(process.env.TRACE_MAX_IN_FLIGHT ? { maxInFlight: Number(process.env.TRACE_MAX_IN_FLIGHT) } : {}),
});
load.start();
await sleep(Number(process.env.TRACE_LOAD_S ?? 25) * 1000);
if (process.env.TRACE_LEAK !== '0') {
  phase = 'leak';
  await setFault({ url: ledger.url } as never, { mode: 'leak' });
  const end = now() + 20_000;
  while (ledger.isAlive() && now() < end) await sleep(50);
}
clearInterval(timer);
await load.stop();
await ledger.remove();
cgroups.removeParentIfEmpty();
process.stdout.write(`${JSON.stringify(samples)}\n`);
