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

/** Manifest text from files, and where each line of it came from (the API counts lines of the joined text). */
export interface ManifestSources {
  yaml: string;
  /** The file (or `stdin`), its own 1-based line number and that file's lines, for a line of `yaml`. */
  locate: (line: number) => { file: string; line: number; lines: string[] } | undefined;
}

export function readManifestSources(files: string[]): ManifestSources {
  if (files.length === 0)
    throw new CliError('missing -f FILE (a YAML manifest, a directory of them, or - for stdin)', EXIT.usage);
  const parts: { file: string; text: string }[] = [];
  for (const f of files) {
    if (f === '-') {
      parts.push({ file: 'stdin', text: fs.readFileSync(0, 'utf8') });
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
    for (const p of paths) parts.push({ file: p, text: fs.readFileSync(p, 'utf8') });
  }
  // Joined with '\n---\n': each file starts one line (the '---') after the previous one's last.
  const spans: { file: string; first: number; lines: string[] }[] = [];
  let first = 1;
  for (const p of parts) {
    const lines = p.text.split('\n');
    spans.push({ file: p.file, first, lines });
    first += lines.length + 1;
  }
  return {
    yaml: parts.map((p) => p.text).join('\n---\n'),
    locate: (line) => {
      const s = spans.findLast((x) => x.first <= line);
      if (!s || line - s.first >= s.lines.length) return undefined;
      return { file: s.file, line: line - s.first + 1, lines: s.lines };
    },
  };
}

export function readManifestFiles(files: string[]): string {
  return readManifestSources(files).yaml;
}

/** The line, one either side, and a caret under where its text starts. */
export function codeFrame(lines: string[], line: number): string[] {
  const width = String(Math.min(lines.length, line + 1)).length;
  const out: string[] = [];
  for (let n = Math.max(1, line - 1); n <= Math.min(lines.length, line + 1); n++) {
    const text = (lines[n - 1] ?? '').replace(/\t/g, '→');
    out.push(`${n === line ? '>' : ' '} ${String(n).padStart(width)} | ${text}`);
    if (n === line) out.push(`  ${' '.repeat(width)} | ${' '.repeat(/^\s*/.exec(text)![0].length)}^`);
  }
  return out;
}

/**
 * An API error about the manifests, told in the user's terms: each problem
 * once, as FILE:LINE with a code frame and its fix (the API only knows the
 * joined text as 'request body').
 */
export function manifestErrorMessage(err: CliError, src: ManifestSources): string {
  const api = err.api;
  if (!api || api.details.length === 0 || !api.details.some((d) => d.line !== undefined)) return err.message;
  const files = [...new Set(api.details.map((d) => (d.line ? src.locate(d.line)?.file : undefined)))].filter(
    (f): f is string => f !== undefined,
  );
  const lines = [
    `${api.summary || `${api.details.length} problem(s)`}${files.length ? ` in ${files.join(', ')}` : ''} (${api.status}${api.code ? ` ${api.code}` : ''})`,
  ];
  for (const d of api.details) {
    const at = d.line ? src.locate(d.line) : undefined;
    const where = at ? `${at.file}:${at.line}` : d.line ? `line ${d.line}` : '';
    lines.push(`${where}${where ? ': ' : ''}${d.path ? `${d.path}: ` : ''}${d.message}`);
    if (at) lines.push(...codeFrame(at.lines, at.line));
    // The API's fix counts lines of the joined text too: say them as lines of this file.
    if (d.fix)
      lines.push(
        `  fix: ${d.fix.replace(/\bline (\d+)\b/g, (m, n: string) => {
          const other = src.locate(Number(n));
          return other && other.file === at?.file ? `line ${other.line}` : m;
        })}`,
      );
  }
  return lines.join('\n');
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
  const src = readManifestSources(files);
  let res: ApplyResponse;
  try {
    res = await api.request<ApplyResponse>('POST', `/api/v1/apply?dryRun=${opts.dryRun}`, { yaml: src.yaml });
  } catch (err) {
    if (err instanceof CliError && err.api) throw new CliError(manifestErrorMessage(err, src), err.exitCode);
    throw err;
  }
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
