/**
 * `bulwark audit verify --bundle DIR [--keys FILE]`: check an exported audit
 * bundle offline (no server, no token): file digests, the hash chain and the
 * signed checkpoints. Exit 0 when intact, 1 naming the first tampering.
 */
import fs from 'node:fs';
import { BundleError, verifyBundle } from '../../audit/bundle.ts';
import { CliError, EXIT } from '../exit-codes.ts';
import type { OutputFormat } from '../output.ts';
import type { Io } from './resources.ts';

export function cmdAuditVerifyBundle(
  io: Io,
  fmt: OutputFormat,
  dir: string | undefined,
  keysFile: string | undefined,
): number {
  if (!dir)
    throw new CliError('audit verify needs --bundle DIR (a directory written by audit export)', EXIT.usage);
  if (!fs.existsSync(dir)) throw new CliError(`--bundle ${dir}: no such directory`, EXIT.usage);
  let keys: string | undefined;
  if (keysFile) {
    try {
      keys = fs.readFileSync(keysFile, 'utf8');
    } catch (err) {
      throw new CliError(
        `--keys ${keysFile}: cannot read it (${(err as NodeJS.ErrnoException).code ?? ''}); give the PEM file of the operator's public keys`,
        EXIT.usage,
      );
    }
  }
  let r;
  try {
    r = verifyBundle(dir, keys);
  } catch (err) {
    if (err instanceof BundleError) throw new CliError(`--bundle ${dir}: ${err.message}`, EXIT.invalid);
    throw err;
  }
  if (fmt === 'json') {
    io.out(JSON.stringify(r, null, 2));
    return r.ok ? EXIT.ok : EXIT.error;
  }
  const head = `${r.entries} entries (last seq ${r.lastSeq}${r.manifest.tenant ? `, tenant ${r.manifest.tenant}: ${r.manifest.redacted} of others as hashes only` : ''}), ${r.checkpoints.valid} of ${r.checkpoints.total} checkpoints signed by ${r.keyIds.join(', ') || 'no key'}`;
  if (r.ok) {
    io.out(`intact: ${head}`);
    if (r.unconfirmed > 0)
      io.out(
        `  ${r.unconfirmed} entries after the latest checkpoint (seq ${r.checkpoints.latestSeq ?? 0}) are not covered by a signature yet`,
      );
  } else {
    io.out(`TAMPERED: ${r.problems[0]!.message}`);
    for (const p of r.problems.slice(1, 10)) io.out(`  also: ${p.message}`);
    if (r.problems.length > 10) io.out(`  ... ${r.problems.length - 10} more`);
    io.out(`  (${head})`);
  }
  if (r.keysFrom === 'bundle')
    io.err(
      "note: checked with the keys inside the bundle; pass --keys FILE with the operator's public keys to rule out a re-signed bundle",
    );
  return r.ok ? EXIT.ok : EXIT.error;
}
