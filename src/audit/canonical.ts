/**
 * Canonical JSON (RFC 8785 in spirit): object keys sorted by code unit,
 * no whitespace, `undefined` members dropped. Two equal records always give
 * the same bytes, whichever code built them, so their hashes agree.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value))
      throw new TypeError(`canonicalJson: ${value} has no JSON form; record it as a string`);
    if (typeof value === 'bigint')
      throw new TypeError('canonicalJson: a bigint has no JSON form; record it as a string');
    return JSON.stringify(value) ?? 'null';
  }
  if (Array.isArray(value))
    return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  const keys = Object.keys(value).sort();
  const parts: string[] = [];
  for (const k of keys) {
    const v = (value as Record<string, unknown>)[k];
    if (v === undefined || typeof v === 'function') continue;
    parts.push(`${JSON.stringify(k)}:${canonicalJson(v)}`);
  }
  return `{${parts.join(',')}}`;
}
