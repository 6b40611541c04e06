/**
 * The adversarial fault suite, bounded for CI (bench/chaos/run.ts is the long
 * form): third-party servers nobody here wrote, under open-loop load, faults
 * sent from outside the platform at random moments. Every injection must be
 * handled (the dead restarted, the stuck isolated) and no healthy instance
 * may be isolated: both are asserted, per injection, with the incidents that
 * explain a failure in its message.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { faultNamed } from '../../bench/chaos/faults.ts';
import { runSuite } from '../../bench/chaos/suite.ts';
import { workloadNamed } from '../../bench/chaos/workloads.ts';

const root = process.getuid?.() === 0;

describe.skipIf(!root)('adversarial faults on third-party workloads (root: netns, iptables)', () => {
  for (const [name, faults] of [
    ['python', ['sigkill', 'sigstop', 'loss-100', 'cpu-hog']],
    ['nginx', ['sigkill', 'sigterm', 'sigstop']],
  ] as const) {
    const w = workloadNamed(name);
    it.skipIf(w.binary.startsWith('/') && !existsSync(w.binary))(
      `${name}: every fault handled, no healthy instance isolated`,
      async () => {
        const lines: string[] = [];
        const run = runSuite({
          dir: mkdtempSync(path.join(os.tmpdir(), `bw-chaos-${name}-`)),
          workload: w,
          faults: faults.map(faultNamed),
          injections: 1,
          rps: 300,
          seed: 7,
          pauseMs: [500, 1500],
          watchMs: 4000,
          log: (l) => lines.push(l),
        });
        const { results } = await run.catch((err: unknown) => {
          throw new Error(`${(err as Error).message}\n${lines.join('\n')}`);
        });
        const log = lines.join('\n');
        expect(results).toHaveLength(faults.length);
        expect(
          results.flatMap((r) => r.falseIsolations),
          log,
        ).toEqual([]);
        expect(
          results.filter((r) => r.missed).map((r) => r.fault),
          log,
        ).toEqual([]);
      },
      300_000,
    );
  }
});
