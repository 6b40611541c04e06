/**
 * The error answers a route can give by its shape alone, added to its
 * declared responses in one place (an `onRoute` hook) so the OpenAPI
 * document names every status a route can return, not only the ones its
 * handler throws:
 *   500  any route (an unhandled error)
 *   401, 403  every route that is not `config: { auth: 'public' }`
 *   400  a route with path, query, header or body input
 *   404, 414  a route with path parameters (the thing named may not exist; too long for the router)
 *   413, 415  a route whose method carries a body (too large, wrong Content-Type)
 * A route's own declaration of a status wins; hidden routes are not documented.
 * Public routes get `security: []` in the document.
 */
import type { FastifySchema, RouteOptions } from 'fastify';
import { routeAuthOf } from '../auth.ts';

/** Methods whose requests may carry a body (and so get the Content-Type and size checks). */
export const BODY_METHODS: ReadonlySet<string> = new Set([
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
  'QUERY',
]);

const ERROR = { $ref: 'Error#' } as const;

type Schema = FastifySchema & { hide?: boolean; response?: Record<string, unknown> };

export function methodsOf(route: Pick<RouteOptions, 'method'>): string[] {
  return (Array.isArray(route.method) ? route.method : [route.method]).map((m) => m.toUpperCase());
}

/** Status codes this route can answer whatever its handler does (see the module comment). */
export function standardErrorStatuses(route: Pick<RouteOptions, 'method' | 'config' | 'schema'>): number[] {
  const s = (route.schema ?? {}) as Schema;
  const withBody = methodsOf(route).some((m) => BODY_METHODS.has(m));
  const codes = [500];
  if (routeAuthOf(route.config) !== 'public') codes.push(401, 403);
  if (s.params || s.querystring || s.headers || s.body || withBody) codes.push(400);
  // A path parameter past the router's maxParamLength is a 414 before any route runs.
  if (s.params) codes.push(404, 414);
  if (withBody) codes.push(413, 415);
  return codes.sort((a, b) => a - b);
}

/** The `onRoute` hook: add the standard error responses (Error schema) the route does not declare itself. */
export function addStandardResponses(route: RouteOptions): void {
  const schema = route.schema as Schema | undefined;
  if (!schema || schema.hide) return;
  const response: Record<string, unknown> = { ...(schema.response ?? {}) };
  for (const code of standardErrorStatuses(route)) {
    if (!(String(code) in response)) response[code] = ERROR;
  }
  // The document's security follows the route's declaration, so it cannot say otherwise.
  const security = routeAuthOf(route.config) === 'public' ? { security: [] } : {};
  route.schema = { ...schema, ...security, response } as FastifySchema;
}
