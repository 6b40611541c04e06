/**
 * Limits on manifest input, and the checks no JSON Schema can express: how
 * deep a document nests, and strings the store cannot hold (PostgreSQL text
 * and jsonb refuse a NUL character; jsonb refuses a lone UTF-16 surrogate).
 * Each check walks with an explicit stack, so hostile nesting can never
 * overflow the call stack the way a recursive walk (or JSON.stringify) does.
 */
import type { PathSegment } from './paths.ts';
import type { RawIssue } from './issues.ts';

export const MANIFEST_LIMITS = {
  /**
   * Resources (documents, or items of a top-level list) in one parse, i.e. one
   * apply. A bigger batch is refused before it is parsed further: split it.
   * @default 1000
   */
  maxResources: 1000,
  /**
   * Nesting of mappings and lists in one document; the deepest real manifest
   * (an App's probe or signature settings) nests 7.
   * @default 32
   */
  maxDepth: 32,
  /** Alias expansions per document (yaml's `maxAliasCount`): anchors for reuse yes, alias bombs no. @default 50 */
  maxAliasCount: 50,
  /** Problems reported per document before the rest are summarised. @default 20 */
  maxIssuesPerDocument: 20,
} as const;

/** The path of the first value nested deeper than `maxDepth` collections, or undefined. */
export function tooDeep(
  value: unknown,
  maxDepth: number = MANIFEST_LIMITS.maxDepth,
): PathSegment[] | undefined {
  const stack: { v: unknown; path: PathSegment[] }[] = [{ v: value, path: [] }];
  while (stack.length > 0) {
    const { v, path } = stack.pop() as { v: unknown; path: PathSegment[] };
    if (v === null || typeof v !== 'object') continue;
    if (path.length >= maxDepth) return path;
    if (Array.isArray(v)) v.forEach((item, i) => stack.push({ v: item, path: [...path, i] }));
    else for (const [k, item] of Object.entries(v)) stack.push({ v: item, path: [...path, k] });
  }
  return undefined;
}

function stringProblem(s: string): string | undefined {
  if (s.includes('\0')) return 'contains a NUL character (\\0), which no field accepts';
  if (!s.isWellFormed()) return 'contains a lone UTF-16 surrogate (not valid Unicode)';
  return undefined;
}

/**
 * Every string (value or key) the store could not hold, as issues naming the
 * field; at most `max`. Call only on values that passed `tooDeep`.
 */
export function badStrings(value: unknown, max: number = MANIFEST_LIMITS.maxIssuesPerDocument): RawIssue[] {
  const out: RawIssue[] = [];
  const stack: { v: unknown; path: PathSegment[] }[] = [{ v: value, path: [] }];
  while (stack.length > 0 && out.length < max) {
    const { v, path } = stack.pop() as { v: unknown; path: PathSegment[] };
    if (typeof v === 'string') {
      const p = stringProblem(v);
      if (p) out.push({ segments: path, message: p, fix: 'remove the character or escape sequence' });
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ v: v[i], path: [...path, i] });
    } else if (v !== null && typeof v === 'object') {
      const entries = Object.entries(v);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [k, item] = entries[i] as [string, unknown];
        const p = stringProblem(k);
        if (p) {
          out.push({ segments: [...path, k], message: `the key ${p}`, fix: 'rename the key', atKey: true });
        } else stack.push({ v: item, path: [...path, k] });
      }
    }
  }
  return out;
}

/**
 * Text that is not UTF-8 shows up after decoding as U+FFFD (invalid bytes)
 * or NUL (UTF-16 text read as UTF-8): the offset of the first one, if any.
 */
export function encodingProblem(text: string): { offset: number; message: string } | undefined {
  const nul = text.indexOf('\0');
  const bad = text.indexOf('\uFFFD');
  if (nul < 0 && bad < 0) return undefined;
  const offset = nul < 0 ? bad : bad < 0 ? nul : Math.min(nul, bad);
  return {
    offset,
    message:
      text.charCodeAt(offset) === 0
        ? 'contains a NUL byte: manifests are UTF-8 text (a UTF-16 file?)'
        : 'is not valid UTF-8 (a byte sequence that decodes to U+FFFD; a Latin-1 or UTF-16 file?)',
  };
}

/** Limits checked on the raw text, before the YAML parser (which is slow on some shapes) sees it. */
export const TEXT_LIMITS = {
  /** Lines in one request; ~30 per resource leaves room for comments. @default 100000 */
  maxLines: 100_000,
  /**
   * Flow (`[`, `{`) or compact block (`- - -`) nesting the pre-scan lets through to the parser;
   * the exact limit (`MANIFEST_LIMITS.maxDepth`) is checked on the parsed document.
   * @default 64
   */
  maxRawDepth: 64,
} as const;

const TOKEN_START = new Set([' ', '\t', '\n', '\r', '[', '{', ',', ':']);

/**
 * One linear pass over the text bounding what makes the YAML parser slow or
 * recursive: line count, flow nesting and compact block nesting. It follows
 * quotes and comments only as far as needed not to count brackets inside
 * them; it can over-count (a plain scalar with many unclosed `[`), never
 * under-count what the parser would nest.
 */
export function textProblem(
  text: string,
): { offset: number; limit: keyof typeof TEXT_LIMITS; message: string } | undefined {
  let lines = 1;
  let flow = 0;
  let quote: '"' | "'" | undefined;
  let lineStart = true;
  let compact = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '\n') {
      if (++lines > TEXT_LIMITS.maxLines) {
        return {
          offset: i,
          limit: 'maxLines',
          message: `more than ${TEXT_LIMITS.maxLines} lines in one request (the limit)`,
        };
      }
      // Outside flow collections a quote never spans a line as far as nesting is concerned.
      if (flow === 0) quote = undefined;
      lineStart = true;
      compact = 0;
      continue;
    }
    if (quote === '"') {
      if (c === '\\') i++;
      else if (c === '"') quote = undefined;
      continue;
    }
    if (quote === "'") {
      if (c === "'" && text[i + 1] === "'") i++;
      else if (c === "'") quote = undefined;
      continue;
    }
    const prev = i === 0 ? '\n' : (text[i - 1] as string);
    if (lineStart && flow === 0) {
      if (c === ' ' || c === '\t') continue;
      // `- - - x` or `? ? x`: each indicator opens a collection on the same line.
      if ((c === '-' || c === '?') && (text[i + 1] === ' ' || text[i + 1] === '\t')) {
        if (++compact > TEXT_LIMITS.maxRawDepth) {
          return {
            offset: i,
            limit: 'maxRawDepth',
            message: `nesting is deeper than ${MANIFEST_LIMITS.maxDepth} levels`,
          };
        }
        i++;
        continue;
      }
      lineStart = false;
    }
    if (c === '#' && TOKEN_START.has(prev)) {
      const end = text.indexOf('\n', i);
      if (end < 0) break;
      i = end - 1;
    } else if ((c === '"' || c === "'") && TOKEN_START.has(prev)) {
      quote = c;
    } else if ((c === '[' || c === '{') && (flow > 0 || TOKEN_START.has(prev))) {
      if (++flow > TEXT_LIMITS.maxRawDepth) {
        return {
          offset: i,
          limit: 'maxRawDepth',
          message: `nesting is deeper than ${MANIFEST_LIMITS.maxDepth} levels`,
        };
      }
    } else if ((c === ']' || c === '}') && flow > 0) {
      flow--;
    }
  }
  return undefined;
}
