/**
 * `GET /api/v1/actions`: what the platform did on its own, newest first
 * (failovers, failbacks and rebalancing across sites with their per-site
 * scalings; isolations, quarantines, replacements and restarts).
 */
import type { FastifyInstance } from 'fastify';
import { actionFeed } from '../actions/feed.ts';
import { DEFAULT_ACTION_LIMIT, MAX_ACTION_LIMIT, type ActionQuery } from '../../model/actions.ts';
import type { ApiDeps } from './deps.ts';
import { rejectInvalid } from './incident-routes.ts';
import { errorResponses, idString } from './schemas.ts';

const filterName = idString;

const FIXES: Record<string, string> = {
  limit: `an integer from 1 to ${MAX_ACTION_LIMIT} (default ${DEFAULT_ACTION_LIMIT})`,
  project: 'a project name',
  app: 'an app name',
};

export const actionSchemas = [
  {
    $id: 'ActionList',
    type: 'object',
    required: ['items'],
    properties: {
      items: {
        type: 'array',
        items: {
          type: 'object',
          required: ['id', 'at', 'kind', 'project', 'app', 'summary'],
          properties: {
            id: { type: 'string' },
            at: { type: 'string', format: 'date-time' },
            kind: {
              type: 'string',
              enum: ['failover', 'failback', 'rebalance', 'isolated', 'quarantined', 'replaced', 'restarted'],
            },
            project: { type: 'string' },
            app: { type: 'string' },
            summary: { type: 'string' },
            changes: {
              type: 'array',
              description: 'Per-site replica changes of a placement action',
              items: {
                type: 'object',
                required: ['workload', 'site', 'from', 'to'],
                properties: {
                  workload: { type: 'string' },
                  site: { type: 'string' },
                  from: { type: 'integer' },
                  to: { type: 'integer' },
                },
              },
            },
            incidentId: { type: 'string' },
            instanceId: { type: 'string' },
          },
        },
      },
    },
  },
] as const;

export function registerActionRoutes(app: FastifyInstance, deps: ApiDeps): void {
  app.get<{ Querystring: { project?: string; app?: string; limit?: number } }>('/api/v1/actions', {
    attachValidation: true,
    schema: {
      tags: ['actions'],
      summary:
        'Automatic actions (failovers, failbacks, rebalancing, isolations, replacements), newest first',
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          project: filterName,
          app: filterName,
          limit: { type: 'integer', minimum: 1, maximum: MAX_ACTION_LIMIT, default: DEFAULT_ACTION_LIMIT },
        },
      },
      response: { 200: { $ref: 'ActionList#' }, ...errorResponses },
    },
    handler: async (req) => {
      rejectInvalid(req, FIXES);
      const q = req.query;
      const limit = q.limit ?? DEFAULT_ACTION_LIMIT;
      const filter: ActionQuery = {
        ...(q.project ? { project: q.project } : {}),
        ...(q.app ? { app: q.app } : {}),
      };
      // Each incident gives up to four entries: `limit` incidents always cover `limit` entries.
      const [actions, incidents] = await Promise.all([
        deps.store.listActions({ ...filter, limit }),
        deps.store.listIncidents({ ...filter, limit }),
      ]);
      return { items: actionFeed(actions, incidents, limit) };
    },
  });
}
