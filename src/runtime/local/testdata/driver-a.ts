/**
 * A control plane in a child process, for adoption tests: creates a
 * LocalDriver with file-backed records, ensures the given specs, prints
 * "READY <json statuses>" once all are ready (and those listed in `quarantine`
 * are quarantined with the given reason), then idles until killed.
 *
 *   node driver-a.ts '<json: { options, specs, quarantine? }>'
 */
import { LocalDriver, type LocalDriverOptions } from '../local-driver.ts';
import { FileInstanceRecords } from '../records.ts';
import type { InstanceSpec } from '../../driver.ts';
import { waitFor } from '../../../util/time.ts';

const cfg = JSON.parse(process.argv[2] ?? '{}') as {
  options: Omit<LocalDriverOptions, 'records'> & { recordsDir: string };
  specs: InstanceSpec[];
  /** Instance id -> quarantine reason. */
  quarantine?: Record<string, string>;
};
const driver = await LocalDriver.create({
  ...cfg.options,
  records: new FileInstanceRecords(cfg.options.recordsDir),
});
for (const s of cfg.specs) await driver.ensure(s);
await waitFor('all ready', () => cfg.specs.every((s) => driver.get(s.id)?.phase === 'ready'), {
  timeoutMs: 15_000,
});
for (const [id, reason] of Object.entries(cfg.quarantine ?? {})) await driver.quarantine(id, { reason });
console.log(`READY ${JSON.stringify(driver.list())}`);
setInterval(() => {}, 60_000);
