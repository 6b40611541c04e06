/**
 * `GET /metrics` for Prometheus: the control plane's own metrics followed by
 * the isolation controller's. It needs a token like every route that does not
 * declare itself public: the series name projects, apps and sites, and
 * incident counts, which no unauthenticated local user or network peer
 * should read. Prometheus sends one with `authorization: { credentials_file }`.
 */
import type { FastifyInstance } from 'fastify';
import { createControlPlaneMetrics, type ControlPlaneMetrics } from '../metrics/control-plane.ts';
import { joinExpositions, PROMETHEUS_CONTENT_TYPE } from '../../util/metrics/registry.ts';
import type { ApiDeps } from './deps.ts';

export const METRICS_PATH = '/metrics';

export function registerMetricsRoutes(
  app: FastifyInstance,
  deps: ApiDeps,
  metrics: ControlPlaneMetrics = createControlPlaneMetrics(deps),
): ControlPlaneMetrics {
  app.addHook('onResponse', async (req, reply) => {
    // The route pattern, not the URL: ids in paths would make a series per instance.
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.observeRequest(req.method, route, reply.statusCode, reply.elapsedTime / 1000);
  });

  app.get(METRICS_PATH, {
    schema: {
      tags: ['system'],
      summary: 'Prometheus metrics of the control plane and fault isolation (text format 0.0.4)',
      response: {
        200: {
          description: 'Prometheus text exposition format 0.0.4',
          content: { 'text/plain': { schema: { type: 'string' } } },
        },
      },
    },
    handler: async (req, reply) => {
      let isolation: string | undefined;
      try {
        isolation = deps.isolation?.metrics();
      } catch (err) {
        // A broken isolation exporter must not hide the control plane's own metrics.
        req.log.warn({ err }, 'isolation metrics failed; serving the control plane metrics only');
      }
      let observability: string | undefined;
      try {
        observability = deps.observability?.metrics();
      } catch (err) {
        req.log.warn({ err }, 'observability metrics failed; serving the others');
      }
      return reply
        .type(PROMETHEUS_CONTENT_TYPE)
        .send(joinExpositions(metrics.render(), isolation, observability));
    },
  });
  return metrics;
}
