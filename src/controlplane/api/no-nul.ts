/**
 * No NUL character in any request input. PostgreSQL cannot store U+0000 in
 * text, so one that reaches the store is a 500 (`invalid byte sequence`);
 * here it is a 400 naming the field. Route schemas already refuse control
 * characters in ids (`idString`); this catches every other string: free
 * text in JSON bodies (a revocation reason), query values without a pattern.
 * YAML bodies (a string) are left to the manifest parser, which reports lines.
 */
import type { FastifyRequest } from 'fastify';
import { badRequest } from '../errors.ts';

/** Dotted path of the first string holding a NUL, or undefined. */
export function findNul(value: unknown, where: string, depth = 0): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? where : undefined;
  // JSON nests no deeper than this in any request the API takes; deeper is refused by the schemas.
  if (value === null || typeof value !== 'object' || depth > 64) return undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const hit = findNul(value[i], `${where}[${i}]`, depth + 1);
      if (hit) return hit;
    }
    return undefined;
  }
  for (const [k, v] of Object.entries(value)) {
    if (k.includes('\u0000')) return `${where}.${k.replace(/\u0000/g, '\\0')}`;
    const hit = findNul(v, `${where}.${k}`, depth + 1);
    if (hit) return hit;
  }
  return undefined;
}

/** preValidation hook (after parsing, before the schemas). */
export async function rejectNul(req: FastifyRequest): Promise<void> {
  const hit =
    findNul(req.params, 'params') ??
    findNul(req.query, 'querystring') ??
    (typeof req.body === 'string' ? undefined : findNul(req.body, 'body'));
  if (hit) {
    throw badRequest(`${hit} contains a NUL character`, [
      { path: hit, message: 'contains U+0000', fix: 'remove the NUL character (\\u0000) from the value' },
    ]);
  }
}
