/**
 * Field paths in the form users read in manifests and error messages:
 * `spec.workloads[1].health.readiness.intervalMs`. Shared by the validator
 * and the diff so both name a field the same way.
 */
export type PathSegment = string | number;

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

/** Numbers render as `[n]`, plain keys as `.key`, other keys (e.g. `a.b`) as `["a.b"]`. */
export function formatPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (IDENTIFIER.test(s)) out += out === '' ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

/**
 * Split a JSON Pointer (ajv's `instancePath`) into segments, using the data to
 * tell array indexes from object keys that merely look numeric (env "1").
 */
export function pointerToSegments(pointer: string, data: unknown): PathSegment[] {
  if (pointer === '') return [];
  const raw = pointer
    .slice(1)
    .split('/')
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
  const out: PathSegment[] = [];
  let cur: unknown = data;
  for (const s of raw) {
    if (Array.isArray(cur) && /^[0-9]+$/.test(s)) {
      out.push(Number(s));
      cur = cur[Number(s)];
    } else {
      out.push(s);
      cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[s] : undefined;
    }
  }
  return out;
}
