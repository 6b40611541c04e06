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
import {
  Composer,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  Parser,
  visit,
  type Alias,
  type Document,
} from 'yaml';
import type { TimeSlice } from '../util/time-slice.ts';
import { badStrings, encodingProblem, MANIFEST_LIMITS, TEXT_LIMITS, textProblem } from './input-limits.ts';
import type { Resource } from './types.ts';
import { formatKey, keyOf } from './types.ts';
import { bulwarkSchema, PLANNED_KEYWORD, PLANNED_VALUES_KEYWORD, SCHEMA_ID } from './schema.ts';
import { translateAjvErrors } from './schema-errors.ts';
import { semanticIssues } from './semantic.ts';
import { ManifestError, toIssue, type RawIssue, type ValidationIssue } from './issues.ts';
import type { PathSegment } from './paths.ts';
import { yamlSyntaxHint } from './yaml-hints.ts';

export { ManifestError, formatIssue, type ValidationIssue } from './issues.ts';
export { MANIFEST_LIMITS, TEXT_LIMITS } from './input-limits.ts';

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

/** Thrown instead of `ManifestError` when the input is over a limit (the API answers 413). */
export class ManifestLimitError extends ManifestError {
  readonly limit: string;
  constructor(limit: string, issue: ValidationIssue) {
    super([issue]);
    this.name = 'ManifestLimitError';
    this.limit = limit;
  }
}

export interface ParseOptions {
  /** @default MANIFEST_LIMITS.maxResources */
  maxResources?: number;
}

/**
 * The documents of `text`, with `undefined` after every parser token so a
 * stepwise caller can give way inside one big document too (yaml's own
 * `Composer.compose` loop, unrolled).
 */
function* documentsOf(text: string, lc: LineCounter): Generator<Document.Parsed | undefined> {
  const parser = new Parser(lc.addNewLine);
  // Duplicate keys are found by `structureProblem` (linear); yaml's own check is quadratic.
  const composer = new Composer({ uniqueKeys: false });
  for (const token of parser.parse(text)) {
    yield* composer.next(token);
    yield undefined;
  }
  yield* composer.end();
}

/**
 * The per-document work of `parseManifests`, so the synchronous parse and the
 * stepwise one (`parseManifestsInSteps`) are the same code.
 */
class ManifestCollector {
  readonly errors: ValidationIssue[] = [];
  readonly resources: Resource[] = [];
  private readonly firstSeen = new Map<string, string>();
  private readonly lc = new LineCounter();
  private readonly text: string;
  private readonly source: string | undefined;
  private readonly maxResources: number;
  private readonly maxDocuments: number;
  private count = 0;

  constructor(text: string, source: string | undefined, opts: ParseOptions) {
    this.text = text;
    this.source = source;
    this.maxResources = opts.maxResources ?? MANIFEST_LIMITS.maxResources;
    // Room for empty and comment-only documents (a trailing '---').
    this.maxDocuments = 2 * this.maxResources;
  }

  /** Checks of the whole text; the documents to `add`, or undefined when the text is not worth parsing. */
  start(): Generator<Document.Parsed | undefined> | undefined {
    const problem = encodingProblem(this.text) ?? textProblem(this.text);
    if (!problem) return documentsOf(this.text, this.lc);
    // Lines are counted by the parser; here the text was never parsed.
    const line = this.text.slice(0, problem.offset).split('\n').length;
    if ('limit' in problem && problem.limit === 'maxLines') {
      throw new ManifestLimitError(problem.limit, {
        path: '',
        message: problem.message,
        fix: `split the manifests into several applies of at most ${TEXT_LIMITS.maxLines} lines each`,
        ...this.base(0, line),
      });
    }
    this.errors.push({
      path: '',
      message: 'limit' in problem ? problem.message : `the text ${problem.message}`,
      fix:
        'limit' in problem
          ? 'flatten the document; no Bulwark manifest nests that deep'
          : 'save the manifests as UTF-8 (without NUL bytes) and send them again',
      ...this.base(0, line),
    });
    return undefined;
  }

  private base(document: number, line?: number, column?: number): Partial<ValidationIssue> {
    return {
      ...(this.source ? { source: this.source } : {}),
      ...(document > 0 ? { document } : {}),
      ...(line ? { line, ...(column ? { column } : {}) } : {}),
    };
  }

  private at(document: number, offset: number | undefined): Partial<ValidationIssue> {
    if (offset === undefined) return this.base(document);
    const pos = this.lc.linePos(offset);
    return this.base(document, pos.line, pos.col);
  }

  add(doc: Document.Parsed, document: number): void {
    if (document > this.maxDocuments) {
      throw new ManifestLimitError('maxDocuments', {
        path: '',
        message: `more than ${this.maxDocuments} YAML documents in one request (the limit is ${this.maxDocuments})`,
        fix: `split the manifests into several applies of at most ${this.maxResources} resources each (Sites and Projects first)`,
        ...this.at(document, doc.range[0]),
      });
    }
    if (doc.errors.length > 0) {
      // One mistake makes yaml report a cascade of errors after it (the next lines no longer
      // parse as intended): the first says what to fix, the rest are its consequences.
      for (const e of doc.errors.slice(0, 1)) {
        const first = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
        // yaml catches its own stack overflow on hostile nesting; say what it means.
        const overflow = /call stack/i.test(first);
        // Where the mistake is (yaml reports where it gave up) and how to fix it.
        const hint = overflow ? undefined : yamlSyntaxHint(this.text, e.code, first, e.pos[0]);
        const where = this.at(document, hint?.offset ?? e.pos[0]);
        this.errors.push({
          path: '',
          message: overflow
            ? `nesting is deeper than ${MANIFEST_LIMITS.maxDepth} levels`
            : `invalid YAML: ${first}`,
          ...(overflow
            ? { fix: 'flatten the document; no Bulwark manifest nests that deep' }
            : hint
              ? { fix: hint.fix }
              : {}),
          ...where,
        });
      }
      return;
    }
    // An empty document, e.g. after a trailing '---' or holding only comments.
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) return;
    // Count before converting, so an over-limit batch is refused without parsing all of it.
    this.count += isSeq(doc.contents) ? doc.contents.items.length : 1;
    if (this.count > this.maxResources) {
      throw new ManifestLimitError('maxResources', {
        path: '',
        message: `more than ${this.maxResources} resources in one request (the limit is ${this.maxResources})`,
        fix: `split the manifests into several applies of at most ${this.maxResources} resources each (Sites and Projects first)`,
        ...this.at(document, doc.contents.range[0]),
      });
    }
    const structure = structureProblem(doc.contents, MANIFEST_LIMITS.maxDepth);
    if (structure) {
      const { offset, ...issue } = structure;
      this.errors.push({ path: '', ...issue, ...this.at(document, offset) });
      return;
    }
    let js: unknown;
    try {
      js = doc.toJS({ maxAliasCount: MANIFEST_LIMITS.maxAliasCount });
    } catch (err) {
      // yaml throws a ReferenceError for an alias without an anchor and for an alias bomb.
      const alias = firstAlias(doc);
      const unresolved = /unresolved alias/i.test((err as Error).message);
      this.errors.push({
        path: '',
        message: unresolved
          ? `alias *${alias?.source ?? '?'} has no anchor (&${alias?.source ?? '?'}) before it`
          : `aliases expand to more than ${MANIFEST_LIMITS.maxAliasCount} nodes (an alias bomb?)`,
        fix: unresolved
          ? 'define the anchor before the alias, or write the value out'
          : 'write the repeated values out instead of nesting aliases',
        ...this.at(document, alias?.range?.[0]),
      });
      return;
    }
    const items: { obj: unknown; prefix: PathSegment[] }[] = Array.isArray(js)
      ? js.map((obj, i) => ({ obj, prefix: [i] }))
      : [{ obj: js, prefix: [] }];
    for (const { obj, prefix } of items) this.addResource(doc, document, obj, prefix);
  }

  private addResource(doc: Document.Parsed, document: number, obj: unknown, prefix: PathSegment[]): void {
    const strings = badStrings(obj);
    const issues = strings.length > 0 ? strings : rawIssues(obj);
    const label = resourceLabel(obj);
    for (const r of issues) {
      const pos = locate(doc, [...prefix, ...r.segments], r.atKey ?? false, this.lc);
      this.errors.push({
        ...toIssue(r),
        ...this.base(document, pos?.line, pos?.column),
        ...(label ? { resource: label } : {}),
      });
    }
    if (issues.length > 0) return;
    const resource = obj as Resource;
    const key = formatKey(keyOf(resource));
    const where = `document ${document}${prefix.length ? ` item ${String(prefix[0])}` : ''}`;
    const prev = this.firstSeen.get(key);
    if (prev !== undefined) {
      const pos = locate(doc, [...prefix, 'metadata', 'name'], false, this.lc);
      this.errors.push({
        path: 'metadata.name',
        message: `duplicate resource ${key} (first defined in ${prev})`,
        fix: 'remove one of them or give it another name',
        resource: key,
        ...this.base(document, pos?.line, pos?.column),
      });
      return;
    }
    this.firstSeen.set(key, where);
    this.resources.push(resource);
  }

  finish(): Resource[] {
    if (this.errors.length === 0 && this.resources.length === 0) {
      this.errors.push({
        path: '',
        message: 'no resources found',
        fix: 'add a document with apiVersion, kind, metadata and spec',
        ...(this.source ? { source: this.source } : {}),
      });
    }
    if (this.errors.length > 0) throw new ManifestError(this.errors);
    return this.resources;
  }
}

/**
 * The first node nested deeper than `max` collections, or the first repeated
 * key of a mapping, in one pass with an explicit stack (no recursion). The
 * duplicate check is here rather than yaml's `uniqueKeys`, which compares
 * every key with every earlier one: quadratic, minutes for one mapping of
 * 100,000 keys.
 */
function structureProblem(
  root: unknown,
  max: number,
): { offset: number; message: string; fix: string } | undefined {
  const stack: { node: unknown; depth: number }[] = [{ node: root, depth: 1 }];
  while (stack.length > 0) {
    const { node, depth } = stack.pop() as { node: unknown; depth: number };
    if (!isMap(node) && !isSeq(node)) continue;
    if (depth > max) {
      return {
        offset: (node as { range?: readonly number[] }).range?.[0] ?? 0,
        message: `nesting is deeper than ${max} levels`,
        fix: 'flatten the document; no Bulwark manifest nests that deep',
      };
    }
    const keys = new Set<string>();
    for (const item of node.items as unknown[]) {
      if (!isPair(item)) {
        stack.push({ node: item, depth: depth + 1 });
        continue;
      }
      if (isScalar(item.key)) {
        const k = String(item.key.value);
        if (keys.has(k)) {
          return {
            offset: item.key.range?.[0] ?? 0,
            message: `invalid YAML: Map keys must be unique (key '${k}' is repeated)`,
            fix: 'remove one of the two entries',
          };
        }
        keys.add(k);
      }
      stack.push({ node: item.key, depth: depth + 1 }, { node: item.value, depth: depth + 1 });
    }
  }
  return undefined;
}

function firstAlias(doc: Document.Parsed): Alias | undefined {
  let found: Alias | undefined;
  let unresolved: Alias | undefined;
  visit(doc, {
    Alias(_, node) {
      found ??= node;
      if (!unresolved && node.resolve(doc) === undefined) unresolved = node;
    },
  });
  return unresolved ?? found;
}

/**
 * Parse multi-document YAML (JSON is YAML too; a top-level list holds several
 * resources) and validate every resource. Returns the resources in file order;
 * throws a `ManifestError` with all problems of all documents otherwise, and a
 * `ManifestLimitError` as soon as the input is over `MANIFEST_LIMITS`.
 */
export function parseManifests(text: string, source?: string, opts: ParseOptions = {}): Resource[] {
  const c = new ManifestCollector(text, source, opts);
  let d = 0;
  for (const doc of c.start() ?? []) if (doc) c.add(doc, ++d);
  return c.finish();
}

/**
 * `parseManifests` in bounded steps: it yields to the event loop whenever
 * `slice` says its time is up, so a big batch never holds the control
 * plane's thread for more than one slice (health and reads keep answering).
 */
export async function parseManifestsInSteps(
  text: string,
  source: string | undefined,
  slice: TimeSlice,
  opts: ParseOptions = {},
): Promise<Resource[]> {
  const c = new ManifestCollector(text, source, opts);
  let d = 0;
  for (const doc of c.start() ?? []) {
    if (doc) c.add(doc, ++d);
    await slice.yieldIfDue();
  }
  return c.finish();
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
