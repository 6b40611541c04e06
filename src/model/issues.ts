/**
 * The one error shape of manifest validation: a field path, what is wrong and
 * how to fix it, plus where it is in the source text when there is one.
 */
import type { PathSegment } from './paths.ts';
import { formatPath } from './paths.ts';

export interface ValidationIssue {
  /** Dotted/indexed field path, e.g. `spec.workloads[1].health.readiness.intervalMs`; '' is the whole resource. */
  path: string;
  message: string;
  fix?: string;
  /** File name (or other label) given to `parseManifests`. */
  source?: string;
  /** 1-based index of the YAML document in the source text. */
  document?: number;
  /** 1-based line and column of the field in the source text. */
  line?: number;
  column?: number;
  /** `Kind/project/name` of the resource, when known. */
  resource?: string;
}

/** Internal: an issue still carrying raw segments so it can be located in YAML. */
export interface RawIssue {
  segments: PathSegment[];
  message: string;
  fix?: string;
  /** Point at the key of the last segment (unknown fields) rather than its value. */
  atKey?: boolean;
}

export function toIssue(r: RawIssue): ValidationIssue {
  const out: ValidationIssue = { path: formatPath(r.segments), message: r.message };
  if (r.fix) out.fix = r.fix;
  return out;
}

/** One line per issue: `bank.yaml:14 (document 2, App/bank/gateway) spec.x: message; fix: ...`. */
export function formatIssue(i: ValidationIssue): string {
  const where: string[] = [];
  if (i.source) where.push(i.line ? `${i.source}:${i.line}` : i.source);
  else if (i.line) where.push(`line ${i.line}`);
  const ctx = [i.document ? `document ${i.document}` : '', i.resource ?? ''].filter(Boolean).join(', ');
  const head = [where.join(''), ctx ? `(${ctx})` : ''].filter(Boolean).join(' ');
  const body = `${i.path || '<resource>'}: ${i.message}${i.fix ? `; fix: ${i.fix}` : ''}`;
  return head ? `${head} ${body}` : body;
}

/** Thrown by `parseManifests` with every problem found, not just the first. */
export class ManifestError extends Error {
  readonly errors: ValidationIssue[];
  constructor(errors: ValidationIssue[]) {
    const n = errors.length;
    super(
      `${n} manifest error${n === 1 ? '' : 's'}:\n${errors.map((e) => `  - ${formatIssue(e)}`).join('\n')}`,
    );
    this.name = 'ManifestError';
    this.errors = errors;
  }
}
