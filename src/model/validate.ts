/**
 * Manifest validation: JSON Schema (ajv) plus semantic rules, with every
 * error translated to `path: message; fix` and, for text input, located at
 * its YAML document and line.
 *
 * @example
 *   const resources = parseManifests(fs.readFileSync('bank.yaml', 'utf8'), 'bank.yaml'); // throws ManifestError
 *   const { valid, errors } = validateResource(JSON.parse(body));
 */
import { Ajv, type ValidateFunction } from 'ajv';
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Document } from 'yaml';
import type { Resource } from './types.ts';
import { formatKey, keyOf } from './types.ts';
import { bulwarkSchema, PLANNED_KEYWORD, PLANNED_VALUES_KEYWORD, SCHEMA_ID } from './schema.ts';
import { translateAjvErrors } from './schema-errors.ts';
import { semanticIssues } from './semantic.ts';
import { ManifestError, toIssue, type RawIssue, type ValidationIssue } from './issues.ts';
import type { PathSegment } from './paths.ts';

export { ManifestError, formatIssue, type ValidationIssue } from './issues.ts';

export type ValidationResult =
  { valid: true; resource: Resource; errors: [] } | { valid: false; errors: ValidationIssue[] };

const KINDS = ['Site', 'Project', 'App'] as const;

let validators: Record<(typeof KINDS)[number], ValidateFunction> | undefined;

/** Compiled once per process: compiling the schema costs far more than validating. */
function getValidators(): NonNullable<typeof validators> {
  if (!validators) {
    const ajv = new Ajv({
      allErrors: true,
      verbose: true,
      strict: true,
      strictTypes: false,
      strictRequired: false,
    });
    ajv.addKeyword(PLANNED_KEYWORD);
    ajv.addKeyword(PLANNED_VALUES_KEYWORD);
    ajv.addSchema(bulwarkSchema);
    const get = (k: string): ValidateFunction => {
      const v = ajv.getSchema(`${SCHEMA_ID}#/definitions/${k}`);
      if (!v) throw new Error(`schema definition ${k} missing`);
      return v;
    };
    validators = { Site: get('Site'), Project: get('Project'), App: get('App') };
  }
  return validators;
}

function rawIssues(obj: unknown): RawIssue[] {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    return [
      {
        segments: [],
        message: 'must be a mapping with apiVersion, kind, metadata and spec',
        fix: 'start the document with apiVersion: bulwark.io/v1 and kind: Site, Project or App',
      },
    ];
  }
  const kind = (obj as Record<string, unknown>).kind;
  if (!KINDS.includes(kind as (typeof KINDS)[number])) {
    return [
      {
        segments: ['kind'],
        message:
          kind === undefined
            ? 'is required'
            : `must be one of 'Site', 'Project', 'App' (got ${typeof kind === 'string' ? `'${kind}'` : JSON.stringify(kind)})`,
        fix: 'set kind to Site, Project or App',
      },
    ];
  }
  const validate = getValidators()[kind as (typeof KINDS)[number]];
  const schemaIssues = validate(obj) ? [] : translateAjvErrors(validate.errors ?? [], obj);
  return [...schemaIssues, ...semanticIssues(obj)];
}

/** Validate one resource object (already parsed). Never throws. */
export function validateResource(obj: unknown): ValidationResult {
  const issues = rawIssues(obj);
  if (issues.length === 0) return { valid: true, resource: obj as Resource, errors: [] };
  return { valid: false, errors: issues.map(toIssue) };
}

/** Like `validateResource` but throws a `ManifestError` listing every problem. */
export function assertValidResource(obj: unknown): Resource {
  const r = validateResource(obj);
  if (!r.valid) throw new ManifestError(r.errors);
  return r.resource;
}

/** Find the YAML node of `segments` (or its nearest existing ancestor) and return its 1-based line/column. */
function locate(
  doc: Document,
  segments: PathSegment[],
  atKey: boolean,
  lc: LineCounter,
): { line: number; column: number } | undefined {
  type Ranged = { range?: readonly number[] | null } | null | undefined;
  let node: unknown = doc.contents;
  let best = node as Ranged;
  for (const seg of segments) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      // The key's line is where the user typed the field; a block value starts on the next line.
      best = (atKey || !isScalar(pair.value) ? pair.key : pair.value) as Ranged;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
      if (!node) break;
      best = node as Ranged;
    } else break;
  }
  const offset = best?.range?.[0];
  if (offset === undefined) return undefined;
  const pos = lc.linePos(offset);
  return { line: pos.line, column: pos.col };
}

/**
 * Parse multi-document YAML (JSON is YAML too; a top-level list holds several
 * resources) and validate every resource. Returns the resources in file order;
 * throws a `ManifestError` with all problems of all documents otherwise.
 */
export function parseManifests(text: string, source?: string): Resource[] {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  const errors: ValidationIssue[] = [];
  const resources: Resource[] = [];
  const firstSeen = new Map<string, string>();
  const docList = Array.isArray(docs) ? docs : [];
  const base = (document: number, line?: number, column?: number): Partial<ValidationIssue> => ({
    ...(source ? { source } : {}),
    document,
    ...(line ? { line, column } : {}),
  });

  docList.forEach((doc, d) => {
    const document = d + 1;
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const pos = e.linePos?.[0];
        errors.push({
          path: '',
          message: `invalid YAML: ${e.message.split('\n')[0]}`,
          ...base(document, pos?.line, pos?.col),
        });
      }
      return;
    }
    // An empty document, e.g. after a trailing '---' or holding only comments.
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) return;
    const js: unknown = doc.toJS({ maxAliasCount: 100 });
    const items: { obj: unknown; prefix: PathSegment[] }[] = Array.isArray(js)
      ? js.map((obj, i) => ({ obj, prefix: [i] }))
      : [{ obj: js, prefix: [] }];
    for (const { obj, prefix } of items) {
      const issues = rawIssues(obj);
      const label = resourceLabel(obj);
      for (const r of issues) {
        const pos = locate(doc, [...prefix, ...r.segments], r.atKey ?? false, lc);
        errors.push({
          ...toIssue(r),
          ...base(document, pos?.line, pos?.column),
          ...(label ? { resource: label } : {}),
        });
      }
      if (issues.length > 0) continue;
      const resource = obj as Resource;
      const key = formatKey(keyOf(resource));
      const where = `document ${document}${prefix.length ? ` item ${String(prefix[0])}` : ''}`;
      const prev = firstSeen.get(key);
      if (prev !== undefined) {
        const pos = locate(doc, [...prefix, 'metadata', 'name'], false, lc);
        errors.push({
          path: 'metadata.name',
          message: `duplicate resource ${key} (first defined in ${prev})`,
          fix: 'remove one of them or give it another name',
          resource: key,
          ...base(document, pos?.line, pos?.column),
        });
        continue;
      }
      firstSeen.set(key, where);
      resources.push(resource);
    }
  });
  if (errors.length === 0 && resources.length === 0) {
    errors.push({
      path: '',
      message: 'no resources found',
      fix: 'add a document with apiVersion, kind, metadata and spec',
      ...(source ? { source } : {}),
    });
  }
  if (errors.length > 0) throw new ManifestError(errors);
  return resources;
}

/** `Kind/project/name` when the object has enough of an envelope to name it. */
function resourceLabel(obj: unknown): string | undefined {
  if (obj === null || typeof obj !== 'object') return undefined;
  const o = obj as { kind?: unknown; metadata?: { name?: unknown; project?: unknown } };
  if (typeof o.kind !== 'string' || typeof o.metadata?.name !== 'string') return undefined;
  return o.kind === 'App' && typeof o.metadata.project === 'string'
    ? `${o.kind}/${o.metadata.project}/${o.metadata.name}`
    : `${o.kind}/${o.metadata.name}`;
}
