/**
 * Deterministic JSON: object keys sorted at every depth, so two values that
 * differ only in key order serialise identically. Array order is kept (it is
 * meaningful). `undefined` members are dropped, as JSON.stringify does.
 * Used to compare desired and actual state, and (strict) for the bytes the
 * audit trail hashes, where a value JSON cannot carry must not silently
 * become `null`.
 */
export function canonicalJson(value: unknown, opts: { strict?: boolean } = {}): string {
  return JSON.stringify(sortKeys(value, opts.strict ?? false)) ?? 'null';
}

function sortKeys(value: unknown, strict: boolean): unknown {
  if (strict) {
    if (typeof value === 'number' && !Number.isFinite(value))
      throw new TypeError(`canonicalJson: ${value} has no JSON form; record it as a string`);
    if (typeof value === 'bigint')
      throw new TypeError('canonicalJson: a bigint has no JSON form; record it as a string');
  }
  if (Array.isArray(value)) return value.map((v) => sortKeys(v, strict));
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort())
      out[k] = sortKeys((value as Record<string, unknown>)[k], strict);
    return out;
  }
  return value;
}

export function sameJson(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}
