/**
 * Fault-layer localisation and on-demand profiling:
 *   GET  /api/v1/projects/:project/apps/:name/diagnosis?window=60s
 *   POST /api/v1/instances/:id/profile  { durationSeconds }  (waits for the profile)
 *   GET  /api/v1/profiles · /api/v1/profiles/:id · /api/v1/profiles/:id/cpuprofile|folded
 */
import { createReadStream } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { ObservabilityApi } from '../../observability/api.ts';
import { MAX_PROFILE_SECONDS, ProfileBusyError, ProfileTargetError } from '../../observability/profile.ts';
import { ApiError, badRequest } from '../errors.ts';
import type { ApiDeps } from './deps.ts';
import { errorResponses, idString, nameParam } from './schemas.ts';
import { parseWindow } from './topology-routes.ts';

const unavailable = (): ApiError =>
  new ApiError(503, 'Unavailable', 'observability is not running in this control plane');

const PROFILE_ID = '^prof-[0-9TZ]+-[0-9a-f]{6}$';

export function registerDiagnoseRoutes(
  app: FastifyInstance,
  deps: ApiDeps,
  obs: () => ObservabilityApi | undefined,
): void {
  app.get<{ Params: { project: string; name: string }; Querystring: { window?: string } }>(
    '/api/v1/projects/:project/apps/:name/diagnosis',
    {
      schema: {
        tags: ['observability'],
        summary:
          'Which layer is at fault (network, container, code) and on which instance, with the evidence',
        params: {
          type: 'object',
          properties: { project: nameParam, name: nameParam },
          required: ['project', 'name'],
        },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            window: { type: 'string', description: 'Evidence window, e.g. 60s or 5m. Default 60s.' },
          },
        },
        response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses },
      },
      handler: async (req) => {
        const o = obs();
        if (!o) throw unavailable();
        const windowSeconds = parseWindow(req.query.window);
        const { project, name } = req.params;
        const found = await deps.store.get({ kind: 'App', project, name });
        if (!found) {
          throw new ApiError(
            404,
            'NotFound',
            `app ${project}/${name} not found (list them: bulwark get apps)`,
          );
        }
        return o.diagnose({ project, app: name, windowSeconds });
      },
    },
  );

  app.post<{ Params: { id: string }; Body: { durationSeconds?: number } | undefined }>(
    '/api/v1/instances/:id/profile',
    {
      schema: {
        tags: ['observability'],
        summary:
          'CPU profile and heap statistics of a running Node.js instance without restarting it (audited)',
        params: { type: 'object', properties: { id: { ...idString, maxLength: 200 } }, required: ['id'] },
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { durationSeconds: { type: 'integer', minimum: 1, maximum: MAX_PROFILE_SECONDS } },
        },
        response: { 201: { type: 'object', additionalProperties: true }, ...errorResponses },
      },
      handler: async (req, reply) => {
        const o = obs();
        if (!o) throw unavailable();
        const d = req.body?.durationSeconds ?? 10;
        if (!Number.isInteger(d) || d < 1 || d > MAX_PROFILE_SECONDS) {
          throw badRequest(`invalid durationSeconds ${String(d)}`, [
            {
              path: 'body.durationSeconds',
              message: `must be an integer from 1 to ${MAX_PROFILE_SECONDS}`,
              fix: 'e.g. {"durationSeconds": 10}',
            },
          ]);
        }
        try {
          // The auth hook set the principal (this route needs an admin token); the audit log names it.
          const p = req.principal;
          if (!p)
            throw new ApiError(
              401,
              'Unauthorized',
              'profiling needs an authenticated caller for its audit log',
            );
          const rec = await o.profile({
            instanceId: req.params.id,
            durationSeconds: d,
            caller: { tokenId: p.id, tokenName: p.name },
          });
          return reply.status(201).send(rec);
        } catch (err) {
          if (err instanceof ProfileBusyError) throw new ApiError(409, 'Conflict', err.message);
          if (err instanceof ProfileTargetError) {
            if (err.code === 'not-found') throw new ApiError(404, 'NotFound', err.message);
            if (err.code === 'invalid-option') throw badRequest(err.message);
            throw new ApiError(422, 'Unprocessable', `${err.code}: ${err.message}`);
          }
          throw err;
        }
      },
    },
  );

  app.get('/api/v1/profiles', {
    schema: {
      tags: ['observability'],
      summary: 'Profiles taken, newest first',
      response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses },
    },
    handler: async () => {
      const o = obs();
      if (!o) throw unavailable();
      return { items: await o.profiles() };
    },
  });

  app.get<{ Params: { id: string } }>('/api/v1/profiles/:id', {
    schema: {
      tags: ['observability'],
      summary: 'One profile record',
      params: {
        type: 'object',
        properties: { id: { type: 'string', pattern: PROFILE_ID } },
        required: ['id'],
      },
      response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses },
    },
    handler: async (req) => {
      const o = obs();
      if (!o) throw unavailable();
      const rec = await o.getProfile(req.params.id);
      if (!rec)
        throw new ApiError(
          404,
          'NotFound',
          `profile ${req.params.id} not found (list: GET /api/v1/profiles)`,
        );
      return rec;
    },
  });

  app.get<{ Params: { id: string; kind: 'cpuprofile' | 'folded' } }>('/api/v1/profiles/:id/:kind', {
    schema: {
      tags: ['observability'],
      summary: 'A profile file: the .cpuprofile (Chrome DevTools) or folded stacks (flame graphs)',
      params: {
        type: 'object',
        properties: {
          id: { type: 'string', pattern: PROFILE_ID },
          kind: { type: 'string', enum: ['cpuprofile', 'folded'] },
        },
        required: ['id', 'kind'],
      },
    },
    handler: async (req, reply) => {
      const o = obs();
      if (!o) throw unavailable();
      const file = await o.profileFile(req.params.id, req.params.kind);
      if (!file)
        throw new ApiError(404, 'NotFound', `profile ${req.params.id} has no ${req.params.kind} file`);
      return reply
        .type(req.params.kind === 'cpuprofile' ? 'application/json' : 'text/plain; charset=utf-8')
        .send(createReadStream(file));
    },
  });
}
