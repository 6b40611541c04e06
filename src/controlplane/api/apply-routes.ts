/**
 * `POST /api/v1/apply`: create-or-update a batch of manifests, given as YAML
 * (multi-document) or as JSON `{ "resources": [...] }`; `?dryRun=true`
 * returns the plan (what would be created, updated, unchanged, and the spec
 * diff) without writing.
 */
import type { FastifyInstance } from 'fastify';
import { ManifestError, parseManifestsInSteps, validateResource } from '../../model/validate.ts';
import type { Resource } from '../../model/types.ts';
import { TimeSlice } from '../../util/time-slice.ts';
import { applyBatch } from '../apply.ts';
import { ApplyProgress } from '../apply-progress.ts';
import { ApiError } from '../errors.ts';
import { YAML_MEDIA_TYPES } from './content-types.ts';
import type { ApiDeps } from './deps.ts';
import { errorResponses } from './schemas.ts';
import { auditRecordsFor } from '../audit-record.ts';

/** Parsed in time slices (see TimeSlice): 1000 manifests are ~1 s of YAML and schema work. */
async function toResources(body: unknown, slice: TimeSlice): Promise<Resource[]> {
  try {
    if (typeof body === 'string') return await parseManifestsInSteps(body, 'request body', slice);
    if (body && typeof body === 'object' && Array.isArray((body as { resources?: unknown }).resources)) {
      const items = (body as { resources: unknown[] }).resources;
      // Validate through the same YAML path so JSON and YAML bodies give identical errors.
      return await parseManifestsInSteps(
        items.map((i) => JSON.stringify(i)).join('\n---\n'),
        'request body',
        slice,
      );
    }
  } catch (err) {
    if (err instanceof ManifestError) {
      throw new ApiError(422, 'Invalid', err.message, err.errors);
    }
    throw err;
  }
  throw new ApiError(400, 'BadRequest', 'body must be YAML manifests or JSON { "resources": [...] }', [
    {
      path: 'body',
      message: 'missing resources',
      fix: 'send Content-Type: application/yaml with manifests, or application/json with {"resources": [...]}',
    },
  ]);
}

const PROGRESS_RECORD = {
  type: 'object',
  required: ['id', 'dryRun', 'phase', 'startedAt', 'done', 'created', 'updated', 'unchanged'],
  properties: {
    id: { type: 'string' },
    dryRun: { type: 'boolean' },
    phase: { type: 'string', enum: ['parsing', 'validating', 'writing', 'done', 'failed'] },
    startedAt: { type: 'string' },
    total: { type: 'integer' },
    done: { type: 'integer' },
    created: { type: 'integer' },
    updated: { type: 'integer' },
    unchanged: { type: 'integer' },
    finishedAt: { type: 'string' },
    durationMs: { type: 'integer' },
    error: { type: 'string' },
  },
} as const;

/** At most this many resource names in the apply log line; the counts cover the rest. */
const LOGGED_NAMES = 20;

export function registerApplyRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const progress = new ApplyProgress();

  app.get('/api/v1/applies', {
    schema: {
      tags: ['apply'],
      summary: 'Applies running now (phase, resources done of total) and the last finished ones',
      response: {
        200: {
          type: 'object',
          required: ['running', 'finished'],
          properties: {
            running: { type: 'array', items: PROGRESS_RECORD },
            finished: { type: 'array', items: PROGRESS_RECORD },
          },
        },
        ...errorResponses,
      },
    },
    handler: async () => progress.list(),
  });

  app.post<{ Querystring: { dryRun?: boolean }; Body: unknown }>('/api/v1/apply', {
    schema: {
      tags: ['apply'],
      summary: 'Create or update manifests (idempotent); dryRun=true returns the plan only',
      description:
        'Body: YAML (application/yaml, several documents separated by ---) or JSON {"resources": [...]}. ' +
        'The whole batch is validated (schema, semantics, references) before anything is written.',
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: { dryRun: { type: 'boolean', default: false } },
      },
      // One schema per accepted media type: Fastify validates by the request's Content-Type and refuses
      // any other with 415 (api/content-types.ts), text/plain included (a browser's no-preflight type).
      body: {
        content: {
          'application/json': {
            schema: {
              type: 'object',
              required: ['resources'],
              properties: { resources: { type: 'array', items: { $ref: 'Resource#' } } },
            },
          },
          ...Object.fromEntries(
            YAML_MEDIA_TYPES.map((t) => [
              t,
              {
                schema: { type: 'string', description: 'YAML manifests, several documents separated by ---' },
              },
            ]),
          ),
        },
      },
      response: { 200: { $ref: 'ApplyResult#' }, ...errorResponses },
    },
    handler: async (req, reply) => {
      const dryRun = req.query.dryRun ?? false;
      const run = progress.start(dryRun);
      void reply.header('x-bulwark-apply-id', run.id);
      const slice = new TimeSlice();
      try {
        const resources = await toResources(req.body, slice);
        if (resources.length === 0) {
          throw new ApiError(400, 'BadRequest', 'no manifests in the body', [
            { path: 'body', message: 'empty', fix: 'send at least one Site, Project or App manifest' },
          ]);
        }
        run.phase('validating', resources.length);
        const results = await applyBatch(deps.store, resources, dryRun, {
          slice,
          audit: auditRecordsFor(req, deps.store),
          onProgress: (done, r) => {
            if (done === 1) run.phase('writing');
            run.item(done, r.action);
          },
        });
        if (!dryRun) deps.kick();
        const counts = { created: 0, updated: 0, unchanged: 0 };
        for (const r of results) counts[r.action]++;
        req.log.info(
          {
            apply: run.id,
            dryRun,
            ...counts,
            results: results
              .filter((r) => r.action !== 'unchanged')
              .slice(0, LOGGED_NAMES)
              .map((r) => `${r.kind}/${r.project ?? ''}/${r.name}:${r.action}`),
          },
          'apply',
        );
        run.done();
        return { dryRun, results };
      } catch (err) {
        run.failed(err instanceof Error ? err.message : String(err));
        throw err;
      }
    },
  });

  app.post<{ Body: unknown }>('/api/v1/validate', {
    schema: {
      tags: ['apply'],
      summary: 'Validate one resource object against the manifest schema without storing it',
      body: { type: 'object' },
      response: {
        200: { type: 'object', properties: { valid: { type: 'boolean' } } },
        ...errorResponses,
      },
    },
    handler: async (req) => {
      const res = validateResource(req.body);
      if (!res.valid) throw new ApiError(422, 'Invalid', `${res.errors.length} error(s)`, res.errors);
      return { valid: true };
    },
  });
}
