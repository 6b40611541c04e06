/**
 * Strict request content types. A route takes the media types its body
 * schema names (`body.content`), otherwise JSON only; any other
 * Content-Type is a 415 naming the accepted ones, before the body is read.
 *
 * This is also the CSRF guard: a browser sends a cross-site request without
 * a preflight only with `text/plain`, `application/x-www-form-urlencoded` or
 * `multipart/form-data`, and no route accepts those, so no state changes
 * from such a request even if it somehow carried a credential.
 */
import type { FastifyRequest } from 'fastify';
import { ApiError } from '../errors.ts';
import { BODY_METHODS } from './standard-responses.ts';

/** Media types the apply route takes YAML manifests as (it parses them itself, for line numbers). */
export const YAML_MEDIA_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml'] as const;

/** `text/plain; charset=utf-8` -> `text/plain`. */
export function mediaTypeOf(header: string | undefined): string | undefined {
  const t = header?.split(';')[0]?.trim().toLowerCase();
  return t ? t : undefined;
}

/** Media types a route accepts for its body. */
export function acceptedMediaTypes(schema: unknown): string[] {
  const content = (schema as { body?: { content?: Record<string, unknown> } } | undefined)?.body?.content;
  return content ? Object.keys(content).map((k) => k.toLowerCase()) : ['application/json'];
}

function hasBody(req: FastifyRequest): boolean {
  const len = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0');
}

/**
 * preParsing hook. Runs after authentication (onRequest), so an
 * unauthenticated caller learns nothing about a route's body; unmatched
 * requests (404) are left alone.
 */
export async function enforceContentType(req: FastifyRequest): Promise<void> {
  if (!BODY_METHODS.has(req.method) || !req.routeOptions.url) return;
  const type = mediaTypeOf(req.headers['content-type']);
  if (type === undefined && !hasBody(req)) return;
  const accepted = acceptedMediaTypes(req.routeOptions.schema);
  if (type !== undefined && accepted.includes(type)) return;
  const route = `${req.method} ${req.routeOptions.url}`;
  throw new ApiError(
    415,
    'UnsupportedMediaType',
    type === undefined
      ? `${route} needs a Content-Type for its body; accepted: ${accepted.join(', ')}`
      : `Content-Type '${type}' is not accepted by ${route}; accepted: ${accepted.join(', ')}`,
    [
      {
        path: 'headers.content-type',
        message: type === undefined ? 'absent' : `'${type}' is not accepted`,
        fix: `send Content-Type: ${accepted[0] ?? 'application/json'}${accepted.length > 1 ? ` (or ${accepted.slice(1).join(', ')})` : ''}`,
      },
    ],
  );
}
