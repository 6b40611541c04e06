/**
 * Node agents that run outside the control plane (`bulwark agent` on a
 * Kubernetes node or another host of a site):
 *   GET  /api/v1/observability/agents/inventory?site=   what runs on the site (to attribute flows)
 *   POST /api/v1/observability/agents/reports           one interval of flows + the agent's status
 *   GET  /api/v1/observability/agents?site=             every node agent that reported, and its state
 * The first two accept an `agent` token (bulwark tokens create --scope agent):
 * that is all a node agent calls, so a token stolen from a node can post
 * flows and read which instance has which IP, nothing else. The list is admin.
 * Reports are validated whole (observability/agent/report.ts): a bad one is a
 * 400 naming each field and the fix, and nothing of it is ingested.
 */
import type { FastifyInstance } from 'fastify';
import type { ObservabilityApi } from '../../observability/api.ts';
import { AgentReportError, validateAgentReport } from '../../observability/agent/report.ts';
import { ApiError, badRequest } from '../errors.ts';
import { errorResponses, idString } from './schemas.ts';
import { mapObservabilityError } from './topology-routes.ts';

const unavailable = (): ApiError =>
  new ApiError(503, 'Unavailable', 'observability is not running in this control plane');

const flowSchema = {
  type: 'object',
  description:
    'One flow client -> server:port as the node saw it in the interval (addresses, not yet attributed)',
  properties: {
    client: { type: 'string' },
    server: { type: 'string' },
    port: { type: 'integer' },
    opened: { type: 'integer' },
    accepted: { type: 'integer' },
    closedClient: { type: 'integer' },
    closedServer: { type: 'integer' },
    lifetimeMsSum: { type: 'integer' },
    failed: { type: 'integer' },
    bytesToServer: { type: 'integer' },
    bytesToClient: { type: 'integer' },
    retransmits: { type: 'integer' },
    rttUs: { type: 'number' },
    resets: { type: 'integer' },
    clientPids: { type: 'array', items: { type: 'integer' } },
    established: { type: 'integer' },
  },
} as const;

export function registerAgentRoutes(app: FastifyInstance, obs: () => ObservabilityApi | undefined): void {
  app.get<{ Querystring: { site: string } }>('/api/v1/observability/agents/inventory', {
    config: { auth: { scope: 'agent' } },
    schema: {
      tags: ['observability'],
      summary:
        "A site's instances (id, app, IP, ports) and gateway binds, for a node agent to attribute flows",
      querystring: {
        type: 'object',
        additionalProperties: false,
        required: ['site'],
        properties: { site: { ...idString, maxLength: 63 } },
      },
      response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses },
    },
    handler: async (req) => {
      const o = obs();
      if (!o) throw unavailable();
      try {
        return o.agentInventory(req.query.site);
      } catch (err) {
        return mapObservabilityError(err);
      }
    },
  });

  app.post<{ Body: unknown }>('/api/v1/observability/agents/reports', {
    // A busy node's interval can hold thousands of flows.
    bodyLimit: 16 * 1024 * 1024,
    config: { auth: { scope: 'agent' } },
    schema: {
      tags: ['observability'],
      summary:
        "A node agent's report: its status and one interval of raw flows, attributed by the control plane",
      body: {
        type: 'object',
        required: ['site', 'node', 'status'],
        properties: {
          site: { type: 'string' },
          node: { type: 'string' },
          status: {
            type: 'object',
            properties: {
              state: { type: 'string', enum: ['stopped', 'starting', 'running', 'unavailable', 'failed'] },
              reason: { type: 'string' },
              intervals: { type: 'integer' },
              restarts: { type: 'integer' },
              probes: { type: 'integer' },
              attachMs: { type: 'integer' },
            },
          },
          interval: {
            type: 'object',
            properties: {
              at: { type: 'string', format: 'date-time' },
              intervalMs: { type: 'integer' },
              flows: { type: 'array', items: flowSchema },
            },
          },
        },
      },
      response: {
        200: {
          type: 'object',
          properties: { site: { type: 'string' }, node: { type: 'string' }, flows: { type: 'integer' } },
        },
        ...errorResponses,
      },
    },
    handler: async (req) => {
      const o = obs();
      if (!o) throw unavailable();
      let report;
      try {
        report = validateAgentReport(req.body);
      } catch (err) {
        if (err instanceof AgentReportError) throw badRequest(err.message, err.issues);
        throw err;
      }
      try {
        return o.agentReport(report);
      } catch (err) {
        return mapObservabilityError(err);
      }
    },
  });

  app.get<{ Querystring: { site?: string } }>('/api/v1/observability/agents', {
    schema: {
      tags: ['observability'],
      summary: 'Node agents that reported to this control plane, per site and node, with their state',
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: { site: { ...idString, maxLength: 63 } },
      },
      response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses },
    },
    handler: async (req) => {
      const o = obs();
      if (!o) throw unavailable();
      return { items: o.nodeAgents(req.query.site) };
    },
  });
}
