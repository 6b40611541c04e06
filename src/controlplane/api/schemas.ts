/**
 * JSON Schemas of the HTTP API's shapes. Fastify uses them to validate
 * requests and @fastify/swagger turns them into the served OpenAPI document,
 * so the document cannot drift from the routes. Response schemas are kept
 * open (`additionalProperties: true`) where the payload is a resource: the
 * manifest schema in `schemas/bulwark.schema.json` is the strict one.
 */

export const errorSchema = {
  $id: 'Error',
  type: 'object',
  description: 'Every 4xx/5xx answer has this shape.',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: {
          type: 'string',
          description: 'Machine-readable code, e.g. Invalid, NotFound, Conflict, Unauthorized.',
        },
        message: { type: 'string' },
        details: {
          type: 'array',
          items: {
            type: 'object',
            required: ['path', 'message'],
            properties: {
              path: { type: 'string', description: 'Offending field, e.g. spec.workloads[1].replicas' },
              message: { type: 'string' },
              fix: { type: 'string' },
              line: { type: 'integer', description: '1-based line in the submitted YAML' },
            },
          },
        },
      },
    },
  },
} as const;

export const resourceSchema = {
  $id: 'Resource',
  type: 'object',
  description: 'A Site, Project or App in the common envelope (see schemas/bulwark.schema.json).',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  additionalProperties: true,
  properties: {
    apiVersion: { type: 'string', const: 'bulwark.io/v1' },
    kind: { type: 'string', enum: ['Site', 'Project', 'App'] },
    metadata: { type: 'object', additionalProperties: true },
    spec: { type: 'object', additionalProperties: true },
    status: { type: 'object', additionalProperties: true },
  },
} as const;

export const resourceListSchema = {
  $id: 'ResourceList',
  type: 'object',
  required: ['items'],
  properties: { items: { type: 'array', items: { $ref: 'Resource#' } } },
} as const;

export const instanceSchema = {
  $id: 'Instance',
  type: 'object',
  description: 'One running (or restarting) instance as the runtime driver reports it.',
  additionalProperties: true,
  required: ['id', 'site', 'project', 'app', 'workload', 'phase', 'ready', 'restarts'],
  properties: {
    id: { type: 'string' },
    site: { type: 'string' },
    project: { type: 'string' },
    app: { type: 'string' },
    workload: { type: 'string' },
    ordinal: { type: 'integer' },
    phase: { type: 'string' },
    ready: { type: 'boolean' },
    pid: { type: 'integer' },
    ip: { type: 'string' },
    ports: { type: 'object', additionalProperties: { type: 'integer' } },
    restarts: { type: 'integer' },
    lastExit: { type: 'object', additionalProperties: true },
  },
} as const;

export const applyResultSchema = {
  $id: 'ApplyResult',
  type: 'object',
  required: ['dryRun', 'results'],
  properties: {
    dryRun: { type: 'boolean' },
    results: {
      type: 'array',
      items: {
        type: 'object',
        required: ['kind', 'name', 'action', 'changes'],
        properties: {
          kind: { type: 'string' },
          project: { type: 'string' },
          name: { type: 'string' },
          action: { type: 'string', enum: ['created', 'updated', 'unchanged'] },
          generation: { type: 'integer' },
          changes: {
            type: 'array',
            description: 'Spec differences from the stored version (dry-run plan / what changed).',
            items: {
              type: 'object',
              required: ['op', 'path'],
              properties: {
                op: { type: 'string', enum: ['add', 'remove', 'change'] },
                path: { type: 'string' },
                from: {},
                to: {},
              },
            },
          },
        },
      },
    },
  },
} as const;

export const sharedSchemas = [
  errorSchema,
  resourceSchema,
  resourceListSchema,
  instanceSchema,
  applyResultSchema,
];

export const errorResponses = {
  400: { $ref: 'Error#' },
  401: { $ref: 'Error#' },
  404: { $ref: 'Error#' },
  409: { $ref: 'Error#' },
  422: { $ref: 'Error#' },
  500: { $ref: 'Error#' },
} as const;

/**
 * An identifier in a path or a query (instance, incident, site or app name):
 * letters, digits, '.', '_' and '-'. No stored id has anything else, and a
 * control character (a NUL above all, which PostgreSQL cannot hold in text)
 * is refused here with a 400 instead of failing in the store.
 */
export const idString = {
  type: 'string',
  minLength: 1,
  maxLength: 253,
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$',
} as const;

export const nameParam = {
  type: 'string',
  pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
  maxLength: 63,
  description: 'DNS label',
} as const;
