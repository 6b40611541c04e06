/**
 * `POST /api/v1/apply`: create-or-update a batch of manifests, given as YAML
 * (multi-document) or as JSON `{ "resources": [...] }`; `?dryRun=true`
 * returns the plan (what would be created, updated, unchanged, and the spec
 * diff) without writing.
 */
import type { FastifyInstance } from 'fastify';
import { ManifestError, parseManifests, validateResource } from '../../model/validate.ts';
import type { Resource } from '../../model/types.ts';
import { applyBatch } from '../apply.ts';
import { ApiError } from '../errors.ts';
import { YAML_MEDIA_TYPES } from './content-types.ts';
import type { ApiDeps } from './deps.ts';
import { errorResponses } from './schemas.ts';

function toResources(body: unknown): Resource[] {
  try {
    if (typeof body === 'string') return parseManifests(body, 'request body');
    if (body && typeof body === 'object' && Array.isArray((body as { resources?: unknown }).resources)) {
      const items = (body as { resources: unknown[] }).resources;
      // Validate through the same YAML path so JSON and YAML bodies give identical errors.
      return parseManifests(items.map((i) => JSON.stringify(i)).join('\n---\n'), 'request body');
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

export function registerApplyRoutes(app: FastifyInstance, deps: ApiDeps): void {
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
    handler: async (req) => {
      const resources = toResources(req.body);
      if (resources.length === 0) {
        throw new ApiError(400, 'BadRequest', 'no manifests in the body', [
          { path: 'body', message: 'empty', fix: 'send at least one Site, Project or App manifest' },
        ]);
      }
      const dryRun = req.query.dryRun ?? false;
      const results = await applyBatch(deps.store, resources, dryRun);
      if (!dryRun) deps.kick();
      req.log.info(
        { dryRun, results: results.map((r) => `${r.kind}/${r.project ?? ''}/${r.name}:${r.action}`) },
        'apply',
      );
      return { dryRun, results };
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
