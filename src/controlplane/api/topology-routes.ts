/**
 * Topology API (contract: /work/notes/contracts.md):
 *   GET /api/v1/topology?project=&site=&window=60s   live graph over a window
 *   GET /api/v1/topology/history?minutes=60          one point per interval (coarser past 5 min)
 *   GET /api/v1/observability/agent                  eBPF agent status per site (why it is not running)
 * The `event: topology` frames of /api/v1/events come from `deps.observability.onTopology`.
 */
import type { FastifyInstance } from 'fastify';
import { ObservabilityNotFoundError, type ObservabilityApi } from '../../observability/api.ts';
import { MAX_WINDOW_SECONDS } from '../../observability/topology/service.ts';
import { ApiError, badRequest } from '../errors.ts';
import { errorResponses, idString } from './schemas.ts';

const unavailable = (): ApiError =>
  new ApiError(503, 'Unavailable', 'observability is not running in this control plane');

/** `60`, `60s`, `5m`, `1h` -> seconds in 1..3600, or a 400 naming the field and the fix. */
export function parseWindow(raw: string | undefined, field = 'window', def = 60): number {
  if (raw === undefined || raw === '') return def;
  const m = /^(\d+)(s|m|h)?$/.exec(raw.trim());
  const n = m ? Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > MAX_WINDOW_SECONDS) {
    throw badRequest(`invalid ${field} '${raw}'`, [
      {
        path: `querystring.${field}`,
        message: `must be a duration from 1s to ${MAX_WINDOW_SECONDS / 60}m`,
        fix: `use seconds or minutes, e.g. ${field}=60s or ${field}=5m`,
      },
    ]);
  }
  return n;
}

export function mapObservabilityError(err: unknown): never {
  if (err instanceof ObservabilityNotFoundError) throw new ApiError(404, 'NotFound', err.message);
  throw err;
}

export function registerTopologyRoutes(app: FastifyInstance, obs: () => ObservabilityApi | undefined): void {
  app.get<{ Querystring: { project?: string; site?: string; window?: string } }>('/api/v1/topology', {
    schema: {
      tags: ['observability'],
      summary:
        'Live topology: apps, instances, external endpoints and L7/L4 edges with rate, errors, latency',
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          project: { ...idString, maxLength: 63 },
          site: { ...idString, maxLength: 63 },
          window: { type: 'string', description: 'Duration, e.g. 60s or 5m (1s..60m). Default 60s.' },
        },
      },
      response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses },
    },
    handler: async (req) => {
      const o = obs();
      if (!o) throw unavailable();
      const windowSeconds = parseWindow(req.query.window);
      try {
        return o.topology({
          windowSeconds,
          ...(req.query.project ? { project: req.query.project } : {}),
          ...(req.query.site ? { site: req.query.site } : {}),
        });
      } catch (err) {
        return mapObservabilityError(err);
      }
    },
  });

  app.get<{ Querystring: { minutes?: number; site?: string } }>('/api/v1/topology/history', {
    schema: {
      tags: ['observability'],
      summary:
        'Topology history of the last hour at most: nodes, edges, request rate and error rate per point',
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          minutes: { type: 'integer', minimum: 1, maximum: 60, default: 60 },
          site: { ...idString, maxLength: 63 },
        },
      },
      response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses },
    },
    handler: async (req) => {
      const o = obs();
      if (!o) throw unavailable();
      try {
        return {
          points: o.history({
            minutes: req.query.minutes ?? 60,
            ...(req.query.site ? { site: req.query.site } : {}),
          }),
        };
      } catch (err) {
        return mapObservabilityError(err);
      }
    },
  });

  app.get('/api/v1/observability/agent', {
    schema: {
      tags: ['observability'],
      summary: 'Status of the eBPF node agent per site: running, or why it cannot run',
      response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses },
    },
    handler: async () => {
      const o = obs();
      if (!o) throw unavailable();
      return { sites: o.agent() };
    },
  });
}
