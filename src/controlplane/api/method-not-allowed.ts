/**
 * 405 Method Not Allowed with an `Allow` header for a known path asked with
 * a method it does not have (Fastify answers those 404 by itself). Every
 * route's path is recorded as it is registered; `seal()` then adds one
 * hidden route per path for the other methods. The answers are public: they
 * only say which methods exist, which the OpenAPI document says too.
 */
import type { FastifyInstance } from 'fastify';
import { methodsOf } from './standard-responses.ts';

export interface MethodTable {
  /** Register the 405 routes; call once, after every other route. */
  seal(): void;
}

export function methodNotAllowed(app: FastifyInstance): MethodTable {
  const byUrl = new Map<string, Set<string>>();
  let sealed = false;
  app.addHook('onRoute', (route) => {
    if (sealed) return;
    const set = byUrl.get(route.url) ?? new Set<string>();
    for (const m of methodsOf(route)) set.add(m);
    byUrl.set(route.url, set);
  });
  return {
    seal() {
      sealed = true;
      const all = app.supportedMethods.map((m) => m.toUpperCase());
      for (const [url, have] of byUrl) {
        const allow = [...have].sort().join(', ');
        const missing = all.filter((m) => !have.has(m));
        if (missing.length === 0) continue;
        app.route({
          method: missing,
          url,
          config: { auth: 'public' },
          schema: { hide: true },
          // Answered before the body is read: a 405 does not depend on what was sent.
          onRequest: async (req, reply) =>
            reply
              .status(405)
              .header('allow', allow)
              .send({
                error: {
                  code: 'MethodNotAllowed',
                  message: `${req.method} is not allowed on ${url}; allowed: ${allow}`,
                  details: [
                    { path: 'method', message: `${req.method} not allowed`, fix: `use one of: ${allow}` },
                  ],
                },
              }),
          handler: async (_req, reply) => reply,
        });
      }
    },
  };
}
