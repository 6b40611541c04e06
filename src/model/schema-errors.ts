/**
 * Turns ajv's errors (compiled with `verbose: true`, so each error carries its
 * schema node and data) into messages a person can act on: the field path,
 * what is allowed, and a fix hint.
 */
import type { ErrorObject } from 'ajv';
import type { RawIssue } from './issues.ts';
import { pointerToSegments, type PathSegment } from './paths.ts';
import {
  ABSOLUTE_PATH_PATTERN,
  DNS_LABEL_PATTERN,
  ENV_NAME_PATTERN,
  LABEL_KEY_PATTERN,
  PLANNED_KEYWORD,
  PLANNED_VALUES_KEYWORD,
} from './schema.ts';
import { MEMORY_PATTERN } from './defaults.ts';

type SchemaNode = Record<string, unknown>;

const show = (v: unknown): string => (typeof v === 'string' ? `'${v}'` : JSON.stringify(v));

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  object: 'a mapping (object)',
  array: 'a list (array)',
};

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

/** A DNS label close to what the user wrote, for the fix hint. */
function toDnsLabel(v: string): string {
  return v
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '');
}

function editDistance(a: string, b: string): number {
  const d: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

/** Properties a user may actually set here (planned and forbidden fields are not offered). */
function allowedProperties(node: SchemaNode | undefined): string[] {
  const props = (node?.properties ?? {}) as Record<string, SchemaNode>;
  return Object.keys(props).filter((k) => props[k]?.not === undefined);
}

function explainPattern(pattern: string, value: unknown): { message: string; fix?: string } {
  const got = `(got ${show(value)})`;
  switch (pattern) {
    case DNS_LABEL_PATTERN: {
      const suggestion = typeof value === 'string' ? toDnsLabel(value) : '';
      return {
        message: `must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit ${got}`,
        ...(suggestion ? { fix: `use e.g. '${suggestion}'` } : {}),
      };
    }
    case MEMORY_PATTERN:
      return {
        message: `must be a memory quantity: bytes with an optional unit Ki, Mi, Gi, Ti, k, M, G, T ${got}`,
        fix: "write e.g. '128Mi', '1Gi', '512M' or 134217728",
      };
    case ENV_NAME_PATTERN:
      return {
        message: `must be an environment variable name: letters, digits and '_', not starting with a digit ${got}`,
      };
    case LABEL_KEY_PATTERN:
      return {
        message: `must be a label key: letters, digits, '-', '_', '.', '/', starting and ending with a letter or digit ${got}`,
      };
    case ABSOLUTE_PATH_PATTERN:
      return {
        message: `must be an absolute path on the control-plane host ${got}`,
        fix: 'write the full path, e.g. /etc/bulwark/dc1.kubeconfig',
      };
    case '^/':
      return {
        message: `must start with '/' ${got}`,
        fix: typeof value === 'string' ? `use '/${value}'` : undefined,
      };
    default:
      return { message: `must match ${pattern} ${got}` };
  }
}

function translateOne(e: ErrorObject, root: unknown): RawIssue | undefined {
  const segments: PathSegment[] = pointerToSegments(e.instancePath, root);
  const parent = e.parentSchema as SchemaNode | undefined;
  const p = e.params as Record<string, unknown>;
  // Errors inside `propertyNames` are about a key, not a value.
  const propertyName = (e as ErrorObject & { propertyName?: string }).propertyName;
  if (e.keyword === 'propertyNames') return undefined; // a summary of the key's own error
  if (propertyName !== undefined) {
    const explained =
      e.keyword === 'pattern'
        ? explainPattern(String(p.pattern), propertyName)
        : { message: e.message ?? 'is invalid' };
    return {
      segments: [...segments, propertyName],
      atKey: true,
      message: `invalid key: ${explained.message}`,
      ...(explained.fix ? { fix: explained.fix } : {}),
    };
  }
  switch (e.keyword) {
    case 'additionalProperties': {
      const field = String(p.additionalProperty);
      const allowed = allowedProperties(parent);
      const near = allowed.find((a) => editDistance(a.toLowerCase(), field.toLowerCase()) <= 2);
      return {
        segments: [...segments, field],
        atKey: true,
        message: `unknown field '${field}' (allowed: ${allowed.join(', ')})`,
        fix: near ? `did you mean '${near}'?` : `remove '${field}'`,
      };
    }
    case 'required': {
      const field = String(p.missingProperty);
      const desc = ((parent?.properties ?? {}) as Record<string, SchemaNode>)[field]?.description;
      const firstSentence = typeof desc === 'string' ? desc.split(/(?<=\.) /)[0] : undefined;
      return {
        segments: [...segments, field],
        message: 'is required',
        fix: firstSentence ? `add '${field}' (${firstSentence.replace(/\.$/, '')})` : `add '${field}'`,
      };
    }
    case 'type':
      return {
        segments,
        message: `must be ${TYPE_WORDS[String(p.type)] ?? String(p.type)} (got ${typeName(e.data)})`,
      };
    case 'enum': {
      const plannedValues = (parent?.[PLANNED_VALUES_KEYWORD] ?? {}) as Record<string, string>;
      const capability = typeof e.data === 'string' ? plannedValues[e.data] : undefined;
      if (capability)
        return { segments, message: `${show(e.data)} is not supported yet (planned: ${capability})` };
      const allowed = (p.allowedValues as unknown[]).map(show).join(', ');
      return { segments, message: `must be one of ${allowed} (got ${show(e.data)})` };
    }
    case 'const':
      return {
        segments,
        message: `must be ${show(p.allowedValue)} (got ${show(e.data)})`,
        fix: `set it to ${show(p.allowedValue)}`,
      };
    case 'pattern': {
      const { message, fix } = explainPattern(String(p.pattern), e.data);
      return { segments, message, ...(fix ? { fix } : {}) };
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return {
        segments,
        message: `must be ${String(p.comparison)} ${String(p.limit)}`,
        fix: `got ${show(e.data)}; use a value ${String(p.comparison)} ${String(p.limit)}`,
      };
    case 'minLength':
      return {
        segments,
        message: p.limit === 1 ? 'must not be empty' : `must be at least ${String(p.limit)} characters`,
      };
    case 'maxLength':
      return {
        segments,
        message: `must be at most ${String(p.limit)} characters (got ${String((e.data as string).length)})`,
      };
    case 'minItems':
      return { segments, message: `must have at least ${String(p.limit)} item${p.limit === 1 ? '' : 's'}` };
    case 'oneOf': {
      // Only probes use oneOf: exactly one action among http, tcp, exec.
      const actions = ['http', 'tcp', 'exec'];
      const present = actions.filter((a) => e.data !== null && typeof e.data === 'object' && a in e.data);
      return present.length === 0
        ? {
            segments,
            message: 'must set one of http, tcp or exec',
            fix: 'add e.g. http: { path: /healthz, port: http }',
          }
        : {
            segments,
            message: `must set only one of http, tcp or exec (found ${present.join(' and ')})`,
            fix: `keep one of ${present.join(', ')}`,
          };
    }
    case 'not': {
      const capability = parent?.[PLANNED_KEYWORD];
      if (typeof capability === 'string') {
        return {
          segments,
          atKey: true,
          message: `not supported yet (planned: ${capability})`,
          fix: `remove '${String(segments.at(-1))}'`,
        };
      }
      const desc = typeof parent?.description === 'string' ? parent.description.replace(/\.$/, '') : '';
      return {
        segments,
        atKey: true,
        message: `must not be set${desc ? ` (${desc})` : ''}`,
        fix: `remove '${String(segments.at(-1))}'`,
      };
    }
    case 'if':
      return undefined; // the error of the `then` branch says what is wrong
    default:
      return { segments, message: e.message ?? `is invalid (${e.keyword})` };
  }
}

/** Translate ajv errors for `root`; drops the noise of branches inside oneOf. */
export function translateAjvErrors(errors: readonly ErrorObject[], root: unknown): RawIssue[] {
  const oneOfPaths = errors.filter((e) => e.keyword === 'oneOf').map((e) => `${e.schemaPath}/`);
  // An empty string also fails the pattern; "must not be empty" says it better.
  const emptyAt = new Set(
    errors.filter((e) => e.keyword === 'minLength' && e.data === '').map((e) => e.instancePath),
  );
  const out: RawIssue[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    if (oneOfPaths.some((p) => e.schemaPath.startsWith(p))) continue;
    if (e.keyword === 'pattern' && emptyAt.has(e.instancePath)) continue;
    const issue = translateOne(e, root);
    if (!issue) continue;
    const key = `${issue.segments.join('\u0000')}|${issue.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(issue);
  }
  return out;
}
