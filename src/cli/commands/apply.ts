/** `bulwark apply -f FILE...`: send manifests, print the plan or the result, optionally wait until ready. */
import fs from 'node:fs';
import path from 'node:path';
import type { ApiClient } from '../client.ts';
import { CliError, EXIT } from '../exit-codes.ts';
import { render, table, type OutputFormat } from '../output.ts';
import type { Io } from './resources.ts';
import { waitForApps } from './wait.ts';

export interface ApplyResponse {
  dryRun: boolean;
  results: {
    kind: string;
    project?: string;
    name: string;
    action: string;
    generation?: number;
    changes: { op: string; path: string; from?: unknown; to?: unknown }[];
  }[];
}

export function readManifestFiles(files: string[]): string {
  if (files.length === 0)
    throw new CliError('missing -f FILE (a YAML manifest, a directory of them, or - for stdin)', EXIT.usage);
  const docs: string[] = [];
  for (const f of files) {
    if (f === '-') {
      docs.push(fs.readFileSync(0, 'utf8'));
      continue;
    }
    if (!fs.existsSync(f)) throw new CliError(`-f ${f}: no such file`, EXIT.usage);
    const paths = fs.statSync(f).isDirectory()
      ? fs
          .readdirSync(f)
          .filter((n) => /\.(ya?ml|json)$/.test(n))
          .sort()
          .map((n) => path.join(f, n))
      : [f];
    for (const p of paths) docs.push(fs.readFileSync(p, 'utf8'));
  }
  return docs.join('\n---\n');
}

/** A changed value as diffs print it (`∅` for absent). */
export const fmtValue = (v: unknown): string => (v === undefined ? '∅' : JSON.stringify(v));

export async function cmdApply(
  api: ApiClient,
  io: Io,
  fmt: OutputFormat,
  files: string[],
  opts: { dryRun: boolean; wait: boolean; timeoutMs: number },
): Promise<void> {
  const yaml = readManifestFiles(files);
  const res = await api.request<ApplyResponse>('POST', `/api/v1/apply?dryRun=${opts.dryRun}`, { yaml });
  io.out(
    render(fmt, res, () => {
      const rows = res.results.map((r) => [
        r.kind,
        r.project ? `${r.project}/${r.name}` : r.name,
        opts.dryRun ? `would be ${r.action}` : r.action,
        r.generation,
      ]);
      const lines = [table(['KIND', 'NAME', 'ACTION', 'GEN'], rows)];
      for (const r of res.results) {
        if (r.changes.length === 0 || r.action === 'created') continue;
        lines.push(`${r.kind} ${r.project ? `${r.project}/` : ''}${r.name}:`);
        for (const c of r.changes) {
          const sign = c.op === 'add' ? '+' : c.op === 'remove' ? '-' : '~';
          lines.push(
            `  ${sign} ${c.path}: ${c.op === 'add' ? fmtValue(c.to) : c.op === 'remove' ? fmtValue(c.from) : `${fmtValue(c.from)} -> ${fmtValue(c.to)}`}`,
          );
        }
      }
      return lines.join('\n');
    }),
  );
  if (opts.wait && !opts.dryRun) {
    const apps = res.results
      .filter((r) => r.kind === 'App' && r.project)
      .map((r) => ({ project: r.project as string, name: r.name, generation: r.generation ?? 0 }));
    await waitForApps(api, io, apps, opts.timeoutMs);
    io.err(`all ${apps.length} app(s) ready`);
  }
}
