/**
 * Closes the run with the list of skipped tests, one line each
 * ("skipped: <file> > <test>: <reason>"), then one plain line,
 * "N passed, N failed, N skipped", which stays the last line of the output
 * so CI can read the outcome of the run whatever runner it knows. A skip
 * is never silent: the reason is the note given to `ctx.skip(note)`; a
 * static `skip` / `skipIf` / `runIf` carries none, and the line says so
 * (such suites put their reason in their name). Before that line also
 * comes the global setup's leftover check (global-setup.ts): anything the
 * tests left running is listed and fails the run.
 */
import path from 'node:path';
import type { Reporter, TestCase, TestModule } from 'vitest/node';
import { checkLeftovers, formatLeftovers, runState } from './global-setup.ts';

/** Why a skipped test was skipped, as far as vitest knows. */
function skipReason(t: TestCase): string {
  const r = t.result();
  if (r.state === 'skipped' && r.note) return r.note;
  if (t.module.state() === 'failed' && t.options.mode === 'run')
    return 'not run: its file failed before it (a hook or the import; the error is above)';
  if (t.options.mode === 'todo') return 'todo';
  if (t.options.mode === 'skip') return 'static skip (skip/skipIf/runIf), no reason given';
  if (r.state === 'pending') return 'not run (the run was cut short, or another test has .only)';
  return 'skipped, no reason given';
}

export function skippedLine(file: string, t: TestCase): string {
  return `skipped: ${file} > ${t.fullName}: ${skipReason(t)}`;
}

export default class SummaryReporter implements Reporter {
  async onTestRunEnd(
    testModules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<unknown>,
  ): Promise<void> {
    let passed = 0;
    let failed = unhandledErrors.length;
    const skipped: string[] = [];
    for (const m of testModules) {
      // A file that failed outside its tests (import, beforeAll/afterAll) counts as one failure:
      // its tests show as skipped, and the closing line must not read "0 failed".
      if (m.state() === 'failed' && ![...m.children.allTests()].some((t) => t.result().state === 'failed'))
        failed++;
      const file = path.relative(process.cwd(), m.moduleId);
      for (const t of m.children.allTests()) {
        const s = t.result().state;
        if (s === 'passed') passed++;
        else if (s === 'failed') failed++;
        else skipped.push(skippedLine(file, t));
      }
    }
    const list = skipped.length > 0 ? `\n${skipped.join('\n')}\n` : '';
    // The leftover check of the global setup counts as one more test: it fails when the run left anything.
    const st = runState();
    let leftovers = '';
    if (st) {
      const found = (st.reported = await checkLeftovers(st));
      if (found.length > 0) {
        failed++;
        process.exitCode = 1;
        leftovers = `\n${formatLeftovers(found)}\n`;
      }
    }
    process.stdout.write(
      `${list}${leftovers}\n${passed} passed, ${failed} failed, ${skipped.length} skipped\n`,
    );
  }
}
