/**
 * The HTTP API (Fastify). Every route carries a JSON Schema; @fastify/swagger
 * builds the OpenAPI document served at `/api/v1/openapi.json` from them.
 * All routes except health and the OpenAPI document need a bearer token.
 */
import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { PinoLogger } from './logger.ts';
import { registerApplyRoutes } from './api/apply-routes.ts';
import { registerConsoleRoutes } from './api/console-routes.ts';
import type { ApiDeps } from './api/deps.ts';
import { registerEventRoutes } from './api/event-routes.ts';
import { registerIncidentRoutes } from './api/incident-routes.ts';
import { actionSchemas, registerActionRoutes } from './api/action-routes.ts';
import { incidentSchemas } from './api/incident-schemas.ts';
import { registerMetricsRoutes } from './api/metrics-routes.ts';
import { registerResourceRoutes } from './api/resource-routes.ts';
import { sharedSchemas } from './api/schemas.ts';
import { bearerToken, verifyToken } from './auth.ts';
import { ApiError } from './errors.ts';

export const PUBLIC_PATHS = new Set(['/api/v1/healthz', '/api/v1/openapi.json']);

export interface ServerOptions {
  logger: PinoLogger;
  /** Largest request body. @default 4 MiB */
  bodyLimitBytes?: number;
  /** Extra routes (a later capability registers its own). */
  plugins?: ((app: FastifyInstance, deps: ApiDeps) => void)[];
  sseHeartbeatMs?: number;
}

export async function buildServer(deps: ApiDeps, opts: ServerOptions): Promise<FastifyInstance> {
  const app: FastifyInstance = Fastify({
    // pino's Logger is a FastifyBaseLogger; the cast only erases pino's extra generics.
    loggerInstance: opts.logger as FastifyBaseLogger,
    bodyLimit: opts.bodyLimitBytes ?? 4 * 1024 * 1024,
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: true },
    },
    // Request logging stays on (Fastify's default); naming the option, even as false,
    // printed FSTDEP023 on every start.
  });

  for (const s of [...sharedSchemas, ...incidentSchemas, ...actionSchemas]) app.addSchema(s);

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Bulwark control plane API',
        version: 'v1',
        description:
          'Declarative apps, sites and projects; instances; change stream. Errors always have the Error shape. ' +
          'Authenticate with `Authorization: Bearer <token>` (the token is printed once on first start).',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (json.$id as string) ?? `def-${i}` },
  });

  // YAML manifests arrive as text; the apply route parses them itself so it can report line numbers.
  app.addContentTypeParser(
    ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/plain'],
    { parseAs: 'string' },
    (_req, body, done) => done(null, body),
  );

  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0] ?? '';
    if (PUBLIC_PATHS.has(path) || !path.startsWith('/api/')) return;
    const token = bearerToken(req.headers.authorization);
    if (!token) {
      throw new ApiError(401, 'Unauthorized', 'missing bearer token', [
        {
          path: 'headers.authorization',
          message: 'absent',
          fix: 'send "Authorization: Bearer <token>" (bulwark CLI: --token, BULWARK_TOKEN or the config file)',
        },
      ]);
    }
    if (!(await verifyToken(deps.store, token))) {
      throw new ApiError(401, 'Unauthorized', 'invalid token', [
        {
          path: 'headers.authorization',
          message: 'unknown token',
          fix: 'use the token printed on first start',
        },
      ]);
    }
  });

  app.setErrorHandler((err, req, reply) => {
    if (err instanceof ApiError) return reply.status(err.statusCode).send(err.toBody());
    const e = err as {
      validation?: { instancePath: string; message?: string; params?: Record<string, unknown> }[];
      validationContext?: string;
      statusCode?: number;
      code?: string;
      message: string;
    };
    if (e.validation) {
      const where = e.validationContext ?? 'body';
      const details = e.validation.map((v) => {
        const extra = v.params?.additionalProperty ? ` '${String(v.params.additionalProperty)}'` : '';
        return {
          path: `${where}${v.instancePath.replace(/\//g, '.')}`,
          message: `${v.message ?? 'invalid'}${extra}`,
        };
      });
      return reply.status(400).send({ error: { code: 'BadRequest', message: e.message, details } });
    }
    if (e.statusCode && e.statusCode < 500) {
      return reply.status(e.statusCode).send({ error: { code: e.code ?? 'BadRequest', message: e.message } });
    }
    req.log.error({ err }, 'unhandled error');
    return reply
      .status(500)
      .send({ error: { code: 'Internal', message: 'internal error; see the control plane log' } });
  });

  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({
      error: {
        code: 'NotFound',
        message: `no route ${req.method} ${req.url.split('?')[0]}; see /api/v1/openapi.json`,
      },
    }),
  );

  app.get('/api/v1/healthz', {
    schema: {
      tags: ['system'],
      summary: 'Liveness of the control plane (no auth)',
      security: [],
      response: { 200: { type: 'object', properties: { status: { type: 'string' } } } },
    },
    handler: async () => ({ status: 'ok' }),
  });
  app.get('/api/v1/openapi.json', {
    schema: { tags: ['system'], summary: 'This OpenAPI document (no auth)', security: [], hide: false },
    handler: async () => app.swagger(),
  });
  app.get('/api/v1/status', {
    schema: {
      tags: ['system'],
      summary: 'Status of every component: store, change feed, sites (driver, data plane, reconciler)',
      response: { 200: { type: 'object', additionalProperties: true } },
    },
    handler: async () => deps.status(),
  });

  registerMetricsRoutes(app, deps);
  registerApplyRoutes(app, deps);
  registerResourceRoutes(app, deps);
  registerIncidentRoutes(app, deps);
  registerActionRoutes(app, deps);
  registerEventRoutes(
    app,
    deps,
    opts.sseHeartbeatMs !== undefined ? { heartbeatMs: opts.sseHeartbeatMs } : {},
  );
  // The web console (static files, no token: its data comes from /api/v1 with the user's token).
  registerConsoleRoutes(app);
  for (const p of opts.plugins ?? []) p(app, deps);
  return app;
}
