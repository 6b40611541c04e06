/**
 * Incidents (read from the store), their evidence bundles (read from disk)
 * and the operator's quarantine decisions (through `deps.isolation`).
 */
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { packBundle } from '../../isolation/evidence/retention.ts';
import type { Incident, IncidentQuery, IncidentState } from '../../model/incidents.ts';
import { DEFAULT_INCIDENT_LIMIT, INCIDENT_STATES, MAX_INCIDENT_LIMIT } from '../../store/store.ts';
import { ApiError, notFound, type ErrorDetail } from '../errors.ts';
import type { ApiDeps, IsolationApi } from './deps.ts';
import { errorResponses, idString } from './schemas.ts';

const withUnavailable = { ...errorResponses, 503: { $ref: 'Error#' } } as const;

const idParam = (what: string) =>
  ({
    type: 'object',
    required: ['id'],
    properties: {
      id: {
        type: 'string',
        minLength: 1,
        maxLength: 253,
        pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$',
        description: what,
      },
    },
  }) as const;

const filterName = idString;

/** How to fix each query field; appended to validation errors so the caller knows what is accepted. */
const QUERY_FIXES: Record<string, string> = {
  limit: `an integer from 1 to ${MAX_INCIDENT_LIMIT} (default ${DEFAULT_INCIDENT_LIMIT})`,
  state: `one of: ${INCIDENT_STATES.join(', ')}`,
  project: 'a project name',
  app: 'an app name',
  instance: 'an instance id',
  id: 'letters, digits, ".", "_" and "-"',
};

/**
 * Turn Fastify's schema validation failure into the API's error shape with a
 * fix per field. Routes opt in with `attachValidation` so the generic error
 * handler's terser message does not apply to them.
 */
export function rejectInvalid(req: FastifyRequest, fixes: Record<string, string> = QUERY_FIXES): void {
  const err = req.validationError as
    | (Error & {
        validation?: { instancePath: string; message?: string; params?: Record<string, unknown> }[];
        validationContext?: string;
      })
    | undefined;
  if (!err) return;
  const where = err.validationContext ?? 'querystring';
  const details: ErrorDetail[] = (err.validation ?? []).map((v) => {
    const field =
      v.instancePath.replace(/^\//, '').replace(/\//g, '.') || String(v.params?.additionalProperty ?? '');
    const fix = fixes[field] ?? (v.params?.additionalProperty ? 'remove it' : undefined);
    const extra = v.params?.additionalProperty ? ` '${String(v.params.additionalProperty)}'` : '';
    return {
      path: field ? `${where}.${field}` : where,
      message: `${v.message ?? 'invalid'}${extra}`,
      ...(fix ? { fix } : {}),
    };
  });
  const fields = details.map((d) => d.path).join(', ');
  throw new ApiError(400, 'BadRequest', `invalid ${fields || where}`, details);
}

function isolationOr503(deps: ApiDeps): IsolationApi {
  if (!deps.isolation) {
    throw new ApiError(503, 'Unavailable', 'fault isolation is not running in this control plane', [
      {
        path: 'isolation',
        message: 'not enabled',
        fix: 'start the control plane with fault isolation enabled, then retry',
      },
    ]);
  }
  return deps.isolation;
}

/** Map the isolation seam's documented failures onto HTTP statuses. */
function mapIsolationError(err: unknown): never {
  if (err instanceof ApiError) throw err;
  const code = (err as { code?: unknown }).code;
  const message = (err as Error).message;
  if (code === 'NotFound') throw new ApiError(404, 'NotFound', message);
  if (code === 'Conflict') throw new ApiError(409, 'Conflict', message);
  throw err;
}

export function registerIncidentRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { store } = deps;

  async function incidentOr404(id: string): Promise<Incident> {
    const inc = await store.getIncident(id);
    if (!inc) throw notFound(`incident '${id}'`);
    return inc;
  }

  /** The bundle directory of an incident whose evidence has been collected, else 404. */
  async function evidenceDirOr404(inc: Incident): Promise<{ dir: string; manifest: unknown }> {
    const missing = (why: string) =>
      new ApiError(404, 'NotFound', `evidence not collected yet for incident '${inc.id}' (${why})`, [
        {
          path: 'evidenceDir',
          message: why,
          fix: `collection runs after isolation; retry shortly, or check the incident timeline (bulwark incident ${inc.id})`,
        },
      ]);
    if (!inc.evidenceDir) throw missing('the incident has no evidence directory');
    const dir = path.resolve(inc.evidenceDir);
    let text: string;
    try {
      text = await readFile(path.join(dir, 'manifest.json'), 'utf8');
    } catch {
      throw missing(`no manifest.json in ${dir}`);
    }
    return { dir, manifest: JSON.parse(text) as unknown };
  }

  // Concurrent downloads of one bundle share a single tar run: packBundle
  // writes a fixed temporary name, so two runs at once would collide.
  const packing = new Map<string, Promise<string>>();
  function packOnce(dir: string): Promise<string> {
    let p = packing.get(dir);
    if (!p) {
      p = packBundle(dir).finally(() => packing.delete(dir));
      packing.set(dir, p);
    }
    return p;
  }

  app.get<{
    Querystring: { project?: string; app?: string; state?: IncidentState; instance?: string; limit?: number };
  }>('/api/v1/incidents', {
    attachValidation: true,
    schema: {
      tags: ['incidents'],
      summary: 'Incidents, newest first, filtered by project, app, state and instance',
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          project: filterName,
          app: filterName,
          state: { type: 'string', enum: [...INCIDENT_STATES] },
          instance: { ...filterName, description: 'Instance id' },
          limit: {
            type: 'integer',
            minimum: 1,
            maximum: MAX_INCIDENT_LIMIT,
            default: DEFAULT_INCIDENT_LIMIT,
          },
        },
      },
      response: { 200: { $ref: 'IncidentList#' }, ...errorResponses },
    },
    handler: async (req) => {
      rejectInvalid(req);
      const q = req.query;
      const query: IncidentQuery = { limit: q.limit ?? DEFAULT_INCIDENT_LIMIT };
      if (q.project) query.project = q.project;
      if (q.app) query.app = q.app;
      if (q.state) query.state = q.state;
      if (q.instance) query.instanceId = q.instance;
      return { items: await store.listIncidents(query) };
    },
  });

  app.get<{ Params: { id: string } }>('/api/v1/incidents/:id', {
    attachValidation: true,
    schema: {
      tags: ['incidents'],
      summary: 'One incident with its timeline',
      params: idParam('Incident id'),
      response: { 200: { $ref: 'Incident#' }, ...errorResponses },
    },
    handler: async (req) => {
      rejectInvalid(req);
      return incidentOr404(req.params.id);
    },
  });

  app.get<{ Params: { id: string } }>('/api/v1/incidents/:id/evidence', {
    attachValidation: true,
    schema: {
      tags: ['incidents'],
      summary: "The incident's evidence manifest: every part with its status and files",
      params: idParam('Incident id'),
      response: { 200: { $ref: 'EvidenceManifest#' }, ...errorResponses },
    },
    handler: async (req) => {
      rejectInvalid(req);
      return (await evidenceDirOr404(await incidentOr404(req.params.id))).manifest;
    },
  });

  app.get<{ Params: { id: string } }>('/api/v1/incidents/:id/evidence.tar.gz', {
    attachValidation: true,
    schema: {
      tags: ['incidents'],
      summary: "The incident's evidence bundle as a gzipped tar (entries under the bundle directory name)",
      params: idParam('Incident id'),
      response: {
        200: {
          description: 'The bundle',
          content: { 'application/gzip': { schema: { type: 'string', format: 'binary' } } },
        },
        ...errorResponses,
      },
    },
    handler: async (req, reply) => {
      rejectInvalid(req);
      const inc = await incidentOr404(req.params.id);
      const { dir } = await evidenceDirOr404(inc);
      const archive = await packOnce(dir);
      return reply
        .type('application/gzip')
        .header('content-disposition', `attachment; filename="${inc.id}-evidence.tar.gz"`)
        .send(createReadStream(archive));
    },
  });

  for (const [verb, summary, call] of [
    [
      'release',
      'Return a quarantined instance to traffic and resolve its incident',
      (iso: IsolationApi, id: string) => iso.release(id),
    ],
    [
      'delete',
      'Stop and remove a quarantined instance (evidence is kept) and resolve its incident',
      (iso: IsolationApi, id: string) => iso.deleteQuarantined(id),
    ],
  ] as const) {
    app.post<{ Params: { id: string } }>(`/api/v1/instances/:id/quarantine/${verb}`, {
      attachValidation: true,
      schema: {
        tags: ['instances', 'incidents'],
        summary,
        params: idParam('Instance id'),
        response: { 200: { $ref: 'Incident#' }, ...withUnavailable },
      },
      handler: async (req) => {
        rejectInvalid(req);
        const isolation = isolationOr503(deps);
        return await call(isolation, req.params.id).catch(mapIsolationError);
      },
    });
  }
}
