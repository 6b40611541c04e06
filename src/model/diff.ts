/**
 * Structural diff of two resources' specs, for dry-run plans:
 *
 *   ~ spec.workloads[0].replicas: 2 -> 5
 *   + spec.workloads[0].env.LOG_LEVEL: "debug"
 *   - spec.placement: {"sites":[{"name":"local"}]}
 *
 * Lists of objects that all carry a unique `name` (workloads, ports, sites)
 * are matched by name, so removing the first workload reads as one removal and
 * not as every later workload changing. Other lists are compared whole.
 */
import type { Resource } from './types.ts';
import { formatPath, type PathSegment } from './paths.ts';

export interface DiffEntry {
  op: 'add' | 'remove' | 'change';
  path: string;
  from?: unknown;
  to?: unknown;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

function namedList(v: unknown[]): Map<string, number> | undefined {
  const byName = new Map<string, number>();
  for (const [i, it] of v.entries()) {
    if (!isObj(it) || typeof it.name !== 'string' || byName.has(it.name)) return undefined;
    byName.set(it.name, i);
  }
  return byName;
}

function walk(a: unknown, b: unknown, at: PathSegment[], out: DiffEntry[]): void {
  if (a === undefined && b === undefined) return;
  if (a === undefined) return void out.push({ op: 'add', path: formatPath(at), to: b });
  if (b === undefined) return void out.push({ op: 'remove', path: formatPath(at), from: a });
  if (isObj(a) && isObj(b)) {
    const keys = [...Object.keys(a), ...Object.keys(b).filter((k) => !(k in a))];
    for (const k of keys) walk(a[k], b[k], [...at, k], out);
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    const na = namedList(a);
    const nb = namedList(b);
    if (na && nb && a.length > 0 && b.length > 0) {
      // Removals first (at their old index), then changes and additions (at their new index).
      for (const [name, i] of na)
        if (!nb.has(name)) out.push({ op: 'remove', path: formatPath([...at, i]), from: a[i] });
      for (const [name, j] of nb) walk(na.has(name) ? a[na.get(name)!] : undefined, b[j], [...at, j], out);
      return;
    }
    if (JSON.stringify(a) !== JSON.stringify(b))
      out.push({ op: 'change', path: formatPath(at), from: a, to: b });
    return;
  }
  if (!Object.is(a, b)) out.push({ op: 'change', path: formatPath(at), from: a, to: b });
}

/** Diff any two JSON values; paths start with `prefix` (e.g. `['spec']`). */
export function diffValues(before: unknown, after: unknown, prefix: PathSegment[] = []): DiffEntry[] {
  const out: DiffEntry[] = [];
  walk(before, after, prefix, out);
  return out;
}

/**
 * Diff the specs of two versions of a resource; `undefined` means it does not
 * exist (a create shows one `add spec`, a delete one `remove spec`).
 */
export function diffResources(before: Resource | undefined, after: Resource | undefined): DiffEntry[] {
  return diffValues(before?.spec, after?.spec, ['spec']);
}

const show = (v: unknown): string => JSON.stringify(v) ?? 'undefined';

/** One line per entry: `+ path: to`, `- path: from`, `~ path: from -> to`. */
export function renderDiff(entries: readonly DiffEntry[]): string {
  return entries
    .map((e) => {
      if (e.op === 'add') return `+ ${e.path}: ${show(e.to)}`;
      if (e.op === 'remove') return `- ${e.path}: ${show(e.from)}`;
      return `~ ${e.path}: ${show(e.from)} -> ${show(e.to)}`;
    })
    .join('\n');
}
