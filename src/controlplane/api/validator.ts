/**
 * Request validation with two Ajv instances: path parameters, query strings
 * and headers arrive as text, so they are coerced to the schema's types
 * (`?limit=5` is the integer 5); JSON bodies are typed already and are
 * checked as sent. Coercing bodies too (Fastify's default) accepted
 * `{"replicas": true}` as 1 and `{"replicas": null}` as 0: requests the
 * schema says are invalid.
 */
import { Ajv, type Options, type ValidateFunction } from 'ajv';

/** RFC 3339 date-time (the only string format the request schemas use). */
const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

const common: Options = {
  removeAdditional: false,
  useDefaults: true,
  // Every field's problem in one answer; inputs are bounded by the body limit.
  allErrors: true,
  // Schemas carry OpenAPI annotations (description, example) Ajv does not know.
  strict: false,
  addUsedSchema: false,
};

function newAjv(opts: Options, shared: readonly object[]): Ajv {
  const ajv = new Ajv({ ...common, ...opts });
  ajv.addFormat('date-time', { type: 'string', validate: (s) => DATE_TIME.test(s) && !isNaN(Date.parse(s)) });
  ajv.addFormat('binary', true);
  for (const s of shared) ajv.addSchema(s);
  return ajv;
}

/**
 * Fastify's `schemaController.compilersFactory.buildValidator`: called with
 * the schemas added by `addSchema` (shared `$ref` targets), returns the
 * compiler Fastify calls per route and part.
 */
export function buildValidator(
  externalSchemas: unknown,
): (route: { schema: unknown; httpPart?: string }) => ValidateFunction {
  const shared = Object.values((externalSchemas ?? {}) as Record<string, object>);
  const text = newAjv({ coerceTypes: 'array' }, shared);
  const body = newAjv({ coerceTypes: false }, shared);
  return ({ schema, httpPart }) => {
    const ajv = httpPart === 'body' ? body : text;
    const id = (schema as { $id?: string }).$id;
    const known = id ? ajv.getSchema(id) : undefined;
    return (known ?? ajv.compile(schema as object)) as ValidateFunction;
  };
}
