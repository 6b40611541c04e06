/**
 * Read, delete and scale routes for Sites, Projects and Apps, plus instances
 * and their logs.
 */
import type { FastifyInstance } from 'fastify';
import type { AppResource, Kind, ResourceKey } from '../../model/types.ts';
import { ApiError, notFound } from '../errors.ts';
import { allInstances, findInstance, type ApiDeps } from './deps.ts';
import { errorResponses, idString, nameParam } from './schemas.ts';
import { auditRecordsFor } from '../audit-record.ts';

const ok = (ref: string) => ({ 200: { $ref: `${ref}#` }, ...errorResponses });

export function registerResourceRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { store } = deps;

  async function getOr404(key: ResourceKey) {
    const r = await store.get(key);
    if (!r)
      throw notFound(key.project ? `${key.kind} '${key.project}/${key.name}'` : `${key.kind} '${key.name}'`);
    return r;
  }

  for (const [kind, plural] of [
    ['Site', 'sites'],
    ['Project', 'projects'],
  ] as [Kind, string][]) {
    app.get(`/api/v1/${plural}`, {
      schema: { tags: [plural], summary: `List ${plural}`, response: ok('ResourceList') },
      handler: async () => ({ items: await store.list(kind) }),
    });
    app.get<{ Params: { name: string } }>(`/api/v1/${plural}/:name`, {
      schema: {
        tags: [plural],
        summary: `Get one ${kind}`,
        params: { type: 'object', properties: { name: nameParam }, required: ['name'] },
        response: ok('Resource'),
      },
      handler: async (req) => getOr404({ kind, project: '', name: req.params.name }),
    });
    app.delete<{ Params: { name: string } }>(`/api/v1/${plural}/:name`, {
      schema: {
        tags: [plural],
        summary: `Delete one ${kind} (refused while apps use it)`,
        params: { type: 'object', properties: { name: nameParam }, required: ['name'] },
        response: ok('Resource'),
      },
      handler: async (req) => {
        const name = req.params.name;
        await getOr404({ kind, project: '', name });
        const apps = (await store.list('App')) as AppResource[];
        const users =
          kind === 'Project'
            ? apps.filter((a) => a.metadata.project === name)
            : apps.filter((a) => (a.spec.placement?.sites ?? []).some((s) => s.name === name));
        if (users.length > 0) {
          throw new ApiError(
            409,
            'Conflict',
            `${kind} '${name}' is used by ${users.length} app(s): ${users
              .map((a) => `${a.metadata.project}/${a.metadata.name}`)
              .join(', ')}`,
            [{ path: 'metadata.name', message: 'still referenced', fix: 'delete or move those apps first' }],
          );
        }
        const key = { kind, project: '', name };
        const deleted = await store.delete(key, {
          audit: await auditRecordsFor(req, store)('delete', key, undefined),
        });
        deps.kick();
        if (!deleted) throw notFound(`${kind} '${name}'`);
        return deleted;
      },
    });
  }

  app.get<{ Querystring: { project?: string } }>('/api/v1/apps', {
    schema: {
      tags: ['apps'],
      summary: 'List apps, optionally of one project',
      querystring: { type: 'object', properties: { project: nameParam }, additionalProperties: false },
      response: ok('ResourceList'),
    },
    handler: async (req) => ({
      items: await store.list('App', req.query.project ? { project: req.query.project } : {}),
    }),
  });

  const appParams = {
    type: 'object',
    properties: { project: nameParam, name: nameParam },
    required: ['project', 'name'],
  } as const;

  app.get<{ Params: { project: string; name: string } }>('/api/v1/projects/:project/apps/:name', {
    schema: {
      tags: ['apps'],
      summary: 'Get one app with its status',
      params: appParams,
      response: ok('Resource'),
    },
    handler: async (req) => getOr404({ kind: 'App', project: req.params.project, name: req.params.name }),
  });

  app.delete<{ Params: { project: string; name: string } }>('/api/v1/projects/:project/apps/:name', {
    schema: {
      tags: ['apps'],
      summary: 'Delete an app; its instances leave traffic, then stop',
      params: appParams,
      response: ok('Resource'),
    },
    handler: async (req) => {
      const key = { kind: 'App' as const, project: req.params.project, name: req.params.name };
      const deleted = await store.delete(key, {
        audit: await auditRecordsFor(req, store)('delete', key, undefined),
      });
      if (!deleted) throw notFound(`App '${req.params.project}/${req.params.name}'`);
      deps.kick();
      return deleted;
    },
  });

  app.post<{ Params: { project: string; name: string }; Body: { workload?: string; replicas: number } }>(
    '/api/v1/projects/:project/apps/:name/scale',
    {
      schema: {
        tags: ['apps'],
        summary: "Set a workload's replica count (a spec change, recorded like any apply)",
        params: appParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['replicas'],
          properties: {
            workload: { ...nameParam, description: 'Defaults to the only workload when the app has one.' },
            replicas: { type: 'integer', minimum: 0, maximum: 100 },
          },
        },
        response: ok('Resource'),
      },
      handler: async (req) => {
        const key = { kind: 'App' as const, project: req.params.project, name: req.params.name };
        const current = (await getOr404(key)) as AppResource;
        const names = current.spec.workloads.map((w) => w.name);
        const wanted = req.body.workload ?? (names.length === 1 ? names[0] : undefined);
        if (!wanted) {
          throw new ApiError(400, 'BadRequest', 'this app has several workloads; say which one to scale', [
            {
              path: 'workload',
              message: 'required when the app has more than one workload',
              fix: `one of: ${names.join(', ')}`,
            },
          ]);
        }
        if (!names.includes(wanted)) {
          throw new ApiError(
            404,
            'NotFound',
            `workload '${wanted}' not found in app '${key.project}/${key.name}'`,
            [{ path: 'workload', message: 'unknown workload', fix: `one of: ${names.join(', ')}` }],
          );
        }
        const next: AppResource = {
          ...current,
          spec: {
            ...current.spec,
            workloads: current.spec.workloads.map((w) =>
              w.name === wanted ? { ...w, replicas: req.body.replicas } : w,
            ),
          },
        };
        delete next.status;
        const res = await store.apply(next, {
          expectedResourceVersion: current.metadata.resourceVersion ?? 0,
          audit: await auditRecordsFor(req, store)('scale', key, [
            { path: `spec.workloads[${wanted}].replicas`, to: req.body.replicas },
          ]),
        });
        deps.kick();
        return res.resource;
      },
    },
  );

  app.get<{ Params: { project: string; name: string } }>('/api/v1/projects/:project/apps/:name/instances', {
    schema: {
      tags: ['apps'],
      summary: "The app's instances as the runtime reports them now",
      params: appParams,
      response: {
        200: { type: 'object', properties: { items: { type: 'array', items: { $ref: 'Instance#' } } } },
        ...errorResponses,
      },
    },
    handler: async (req) => {
      await getOr404({ kind: 'App', project: req.params.project, name: req.params.name });
      return {
        items: allInstances(deps)
          .filter((i) => i.project === req.params.project && i.app === req.params.name)
          .sort((a, b) => a.id.localeCompare(b.id)),
      };
    },
  });

  app.get<{ Params: { id: string }; Querystring: { tail?: number; stream?: 'stdout' | 'stderr' | 'both' } }>(
    '/api/v1/instances/:id/logs',
    {
      schema: {
        tags: ['instances'],
        summary: "Last lines of an instance's stdout/stderr",
        params: { type: 'object', properties: { id: { ...idString, maxLength: 300 } }, required: ['id'] },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            tail: { type: 'integer', minimum: 1, maximum: 10000, default: 100 },
            stream: { type: 'string', enum: ['stdout', 'stderr', 'both'], default: 'both' },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: { id: { type: 'string' }, lines: { type: 'array', items: { type: 'string' } } },
          },
          ...errorResponses,
        },
      },
      handler: async (req) => {
        const found = findInstance(deps, req.params.id);
        if (!found) throw notFound(`instance '${req.params.id}'`);
        const lines = await found.site.driver.logs(req.params.id, {
          tail: req.query.tail ?? 100,
          stream: req.query.stream ?? 'both',
        });
        return { id: req.params.id, lines };
      },
    },
  );

  app.get('/api/v1/instances', {
    schema: {
      tags: ['instances'],
      summary: 'All instances on all sites',
      response: {
        200: { type: 'object', properties: { items: { type: 'array', items: { $ref: 'Instance#' } } } },
        ...errorResponses,
      },
    },
    handler: async () => ({ items: allInstances(deps).sort((a, b) => a.id.localeCompare(b.id)) }),
  });
}
