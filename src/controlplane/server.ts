/**
 * The HTTP API (Fastify). Every route carries a JSON Schema; @fastify/swagger
 * builds the OpenAPI document served at `/api/v1/openapi.json` from them.
 *
 * Authentication is decided on the matched route, never on the URL string
 * (the router decodes `%61pi` to `api`; a prefix check on the raw URL did
 * not): each route says `config: { auth: 'public' | { scope } }` and one
 * that says nothing needs an admin token. A request that matches no route
 * needs a token too, so an unauthenticated caller gets 401 for everything
 * except the public routes and the 405 answers (see docs/security.md).
 */
import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import type { PinoLogger } from '../util/logger.ts';
import { registerApplyRoutes } from './api/apply-routes.ts';
import { registerConsoleRoutes } from './api/console-routes.ts';
import { enforceContentType, YAML_MEDIA_TYPES } from './api/content-types.ts';
import type { ApiDeps } from './api/deps.ts';
import { registerEventRoutes } from './api/event-routes.ts';
import { registerIncidentRoutes } from './api/incident-routes.ts';
import { actionSchemas, registerActionRoutes } from './api/action-routes.ts';
import { incidentSchemas } from './api/incident-schemas.ts';
import { methodNotAllowed } from './api/method-not-allowed.ts';
import { rejectNul } from './api/no-nul.ts';
import { registerMetricsRoutes } from './api/metrics-routes.ts';
import { registerResourceRoutes } from './api/resource-routes.ts';
import { sharedSchemas } from './api/schemas.ts';
import { addStandardResponses } from './api/standard-responses.ts';
import { buildValidator } from './api/validator.ts';
import { authorize, routeAuthOf } from './auth.ts';
import { ApiError } from './errors.ts';

export interface ServerOptions {
  logger: PinoLogger;
  /** Largest request body. @default 4 MiB */
  bodyLimitBytes?: number;
  /** Extra routes (a later capability registers its own); registered synchronously, before the 405 answers. */
  plugins?: ((app: FastifyInstance, deps: ApiDeps) => void)[];
  sseHeartbeatMs?: number;
  /** Serve HTTPS with this PEM pair (control-plane.ts loads and checks it). */
  tls?: { cert: string; key: string };
}

/** Fastify's own client errors, by code, in the API's words. */
const FASTIFY_ERRORS: Record<string, { code: string; fix?: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'PayloadTooLarge', fix: 'send a smaller body (split the batch)' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    code: 'UnsupportedMediaType',
    fix: 'send Content-Type: application/json',
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'BadRequest', fix: 'send a JSON body, or no Content-Type header' },
  FST_ERR_CTP_INVALID_JSON_BODY: { code: 'BadRequest', fix: 'send valid JSON' },
  FST_ERR_BAD_URL: { code: 'BadRequest', fix: 'percent-encode the path correctly' },
};

export async function buildServer(deps: ApiDeps, opts: ServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    // pino's Logger is a FastifyBaseLogger; the cast only erases pino's extra generics.
    loggerInstance: opts.logger as FastifyBaseLogger,
    bodyLimit: opts.bodyLimitBytes ?? 4 * 1024 * 1024,
    // Longer than any parameter's maxLength, so an over-long id reaches validation (400 naming the
    // field) instead of the router's bare 414.
    routerOptions: { maxParamLength: 1024 },
    // Errors the router raises before any route or hook (a malformed percent-encoding, a path
    // parameter past maxParamLength) get the Error shape too.
    frameworkErrors: (err, _req, reply) => {
      const status = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 414 : 400;
      const known = FASTIFY_ERRORS[err.code];
      // (Typed for any route generic; this reply belongs to no route.)
      void (reply as FastifyReply).status(status).send({
        error: {
          code: status === 414 ? 'UriTooLong' : 'BadRequest',
          message: err.message,
          details: [{ path: 'url', message: err.message, fix: known?.fix ?? 'shorten the path parameter' }],
        },
      });
    },
    // Text inputs coerced to their types, JSON bodies checked as sent (see api/validator.ts).
    // (Fastify's type for the factory describes a bare Ajv compile; at run time it is called with the
    // route part, which is the point here.)
    schemaController: { compilersFactory: { buildValidator: buildValidator as never } },
    ...(opts.tls ? { https: { cert: opts.tls.cert, key: opts.tls.key } } : {}),
    // Request logging stays on (Fastify's default); naming the option, even as false,
    // printed FSTDEP023 on every start.
    // The cast: with `https` Fastify is typed FastifyInstance<https.Server>; the routes do not care.
  }) as unknown as FastifyInstance;

  for (const s of [...sharedSchemas, ...incidentSchemas, ...actionSchemas]) app.addSchema(s);

  // Both before swagger so the document sees the added responses, and before any route.
  app.addHook('onRoute', addStandardResponses);
  const methods = methodNotAllowed(app);

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
  // text/plain is not among them (Fastify's default parser for it is removed): it is a type a
  // browser sends cross-site without a preflight (see api/content-types.ts).
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser([...YAML_MEDIA_TYPES], { parseAs: 'string' }, (_req, body, done) =>
    done(null, body),
  );

  // The matched route's declaration decides; unmatched requests (404) get the default (admin).
  app.addHook('onRequest', async (req) => {
    req.principal = await authorize(
      deps.store,
      req.headers.authorization,
      routeAuthOf(req.routeOptions.config),
    );
  });
  app.addHook('preParsing', enforceContentType);
  app.addHook('preValidation', rejectNul);

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
      const known = e.code ? FASTIFY_ERRORS[e.code] : undefined;
      return reply.status(e.statusCode).send({
        error: {
          code: known?.code ?? 'BadRequest',
          message: e.message,
          ...(known?.fix ? { details: [{ path: 'request', message: e.message, fix: known.fix }] } : {}),
        },
      });
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
    config: { auth: 'public' },
    schema: {
      tags: ['system'],
      summary: 'Liveness of the control plane (no auth)',
      security: [],
      response: { 200: { type: 'object', properties: { status: { type: 'string' } } } },
    },
    handler: async () => ({ status: 'ok' }),
  });
  app.get('/api/v1/openapi.json', {
    config: { auth: 'public' },
    schema: {
      tags: ['system'],
      summary: 'This OpenAPI document (no auth)',
      security: [],
      response: { 200: { type: 'object', additionalProperties: true } },
    },
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
  methods.seal();
  return app;
}
