/**
 * Validation of user-written signature rules (clear errors naming the field
 * and the fix) and merging them over the built-in library.
 */
import { MAX_STREAK_SAMPLES } from '../signals/window.ts';
import { BUILTIN_RULES } from './builtins.ts';
import { CONDITION_KINDS } from './types.ts';
import type { Rule, RuleInput } from './types.ts';

export const RULE_NAME_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
const NAME_RE = new RegExp(RULE_NAME_PATTERN);
const SEVERITIES = ['critical', 'major', 'minor'];
const ACTIONS = ['isolate', 'restart', 'alert'];
const EXIT_REASONS = ['exited', 'signaled', 'oom-killed', 'liveness-failed', 'start-failed'];
const STREAMS = ['stdout', 'stderr', 'both'];
const PERCENTILES = [50, 90, 99];
const REGEX_FLAGS = /^[imsu]*$/;
/** How often memory is sampled (src/isolation/sources/resources.ts default), for `memoryTrend` window checks. */
const MEMORY_SAMPLE_INTERVAL_MS = 100;
const MAX_TREND_WINDOW_MS = 600_000;

/** One problem in a rule list, located like `spec.isolation.signatures[2].when.errorRate.above`. */
export class RuleValidationError extends Error {
  readonly issues: string[];
  constructor(issues: string[]) {
    super(`invalid isolation signatures:\n- ${issues.join('\n- ')}`);
    this.name = 'RuleValidationError';
    this.issues = issues;
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Field checks for each condition: [field, kind, required, extra]. */
type FieldKind = 'posInt' | 'streak' | 'nonNegMs' | 'posMs' | 'ratio' | 'posNumber';
const CONDITION_FIELDS: Record<string, Record<string, { kind: FieldKind | 'custom'; required: boolean }>> = {
  consecutive5xx: { count: { kind: 'streak', required: true }, withinMs: { kind: 'posMs', required: true } },
  connectFailures: { count: { kind: 'streak', required: true }, withinMs: { kind: 'posMs', required: true } },
  errorRate: {
    above: { kind: 'ratio', required: true },
    windowMs: { kind: 'posMs', required: true },
    minRequests: { kind: 'posInt', required: true },
  },
  latency: {
    percentile: { kind: 'custom', required: true },
    aboveBaselineFactor: { kind: 'posNumber', required: false },
    aboveMs: { kind: 'posNumber', required: false },
    forMs: { kind: 'nonNegMs', required: true },
    windowMs: { kind: 'posMs', required: false },
    minRequests: { kind: 'posInt', required: false },
  },
  noResponse: { forMs: { kind: 'posMs', required: true } },
  probeFailures: { consecutive: { kind: 'posInt', required: true } },
  exited: { reasons: { kind: 'custom', required: false } },
  stopped: {},
  logPattern: {
    regex: { kind: 'custom', required: true },
    flags: { kind: 'custom', required: false },
    stream: { kind: 'custom', required: false },
  },
  memoryNearLimit: {
    aboveRatio: { kind: 'ratio', required: true },
    forMs: { kind: 'nonNegMs', required: true },
  },
  memoryTrend: {
    reachLimitWithinMs: { kind: 'posMs', required: true },
    aboveRatio: { kind: 'ratio', required: true },
    windowMs: { kind: 'posMs', required: false },
    minSamples: { kind: 'custom', required: false },
    minR2: { kind: 'ratio', required: false },
    minRiseRatio: { kind: 'ratio', required: false },
    maxDipRatio: { kind: 'ratio', required: false },
  },
  cpuThrottled: {
    aboveRatio: { kind: 'ratio', required: true },
    forMs: { kind: 'nonNegMs', required: true },
  },
  restartLoop: { restarts: { kind: 'posInt', required: true }, withinMs: { kind: 'posMs', required: true } },
};

function checkNumber(kind: FieldKind, v: unknown, at: string, issues: string[]): void {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    issues.push(`${at}: must be a number (got ${JSON.stringify(v)})`);
    return;
  }
  switch (kind) {
    case 'posInt':
      if (!Number.isInteger(v) || v < 1) issues.push(`${at}: must be an integer >= 1 (got ${v})`);
      break;
    case 'streak':
      if (!Number.isInteger(v) || v < 1 || v > MAX_STREAK_SAMPLES) {
        issues.push(`${at}: must be an integer between 1 and ${MAX_STREAK_SAMPLES} (got ${v})`);
      }
      break;
    case 'posMs':
      if (v <= 0) issues.push(`${at}: must be > 0 milliseconds (got ${v})`);
      break;
    case 'nonNegMs':
      if (v < 0) issues.push(`${at}: must be >= 0 milliseconds (got ${v})`);
      break;
    case 'ratio':
      if (v < 0 || v > 1)
        issues.push(`${at}: must be between 0 and 1, a fraction such as 0.9 for 90% (got ${v})`);
      break;
    case 'posNumber':
      if (v <= 0) issues.push(`${at}: must be > 0 (got ${v})`);
      break;
  }
}

function checkCustom(kind: string, field: string, v: unknown, at: string, issues: string[]): void {
  const oneOf = (allowed: unknown[]): void => {
    if (!allowed.includes(v))
      issues.push(
        `${at}: must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')} (got ${JSON.stringify(v)})`,
      );
  };
  if (kind === 'latency' && field === 'percentile') oneOf(PERCENTILES);
  else if (kind === 'logPattern' && field === 'stream') oneOf(STREAMS);
  else if (kind === 'logPattern' && field === 'flags') {
    if (typeof v !== 'string' || !REGEX_FLAGS.test(v)) {
      issues.push(
        `${at}: must be a string of RegExp flags among "imsu" ("g" and "y" are stateful and not allowed) (got ${JSON.stringify(v)})`,
      );
    }
  } else if (kind === 'logPattern' && field === 'regex') {
    if (typeof v !== 'string' || v === '')
      issues.push(`${at}: must be a non-empty regular expression string`);
  } else if (kind === 'memoryTrend' && field === 'minSamples') {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 2) {
      issues.push(`${at}: must be an integer >= 2, a line needs two points (got ${JSON.stringify(v)})`);
    }
  } else if (kind === 'exited' && field === 'reasons') {
    if (!Array.isArray(v) || v.length === 0) {
      issues.push(`${at}: must be a non-empty list of ${EXIT_REASONS.join(', ')}; omit it to match any exit`);
    } else {
      v.forEach((r, i) => {
        if (!EXIT_REASONS.includes(r as string)) {
          issues.push(`${at}[${i}]: must be one of ${EXIT_REASONS.join(', ')} (got ${JSON.stringify(r)})`);
        }
      });
    }
  }
}

/**
 * A window too short for `minSamples` at the memory sampling interval never
 * fires, silently: say so when the rule is applied.
 */
function checkTrendWindow(body: Obj, at: string, issues: string[]): void {
  const windowMs = body.windowMs ?? 1000;
  const minSamples = body.minSamples ?? 3;
  if (typeof windowMs !== 'number' || typeof minSamples !== 'number' || !Number.isInteger(minSamples)) return;
  if (windowMs <= 0 || minSamples < 2) return; // already reported
  if (windowMs > MAX_TREND_WINDOW_MS) {
    issues.push(
      `${at}.windowMs: must be <= ${MAX_TREND_WINDOW_MS} (10 minutes; each instance keeps 2 x windowMs of samples) (got ${windowMs})`,
    );
  }
  const needMs = (minSamples - 1) * MEMORY_SAMPLE_INTERVAL_MS;
  if (windowMs < needMs) {
    issues.push(
      `${at}: windowMs ${windowMs} cannot hold minSamples ${minSamples} memory samples taken every ~${MEMORY_SAMPLE_INTERVAL_MS} ms, so the rule would never fire; set windowMs >= ${needMs} or lower minSamples`,
    );
  }
}

function validateCondition(when: unknown, at: string, issues: string[]): void {
  if (!isObj(when)) {
    issues.push(`${at}: must be an object with exactly one condition: ${CONDITION_KINDS.join(', ')}`);
    return;
  }
  const keys = Object.keys(when);
  if (keys.length !== 1) {
    issues.push(
      `${at}: must have exactly one condition (got ${keys.length === 0 ? 'none' : keys.join(', ')}); write one rule per condition`,
    );
    return;
  }
  const kind = keys[0]!;
  const fields = CONDITION_FIELDS[kind];
  if (!fields) {
    issues.push(`${at}.${kind}: unknown condition; use one of ${CONDITION_KINDS.join(', ')}`);
    return;
  }
  const body = when[kind];
  if (!isObj(body)) {
    issues.push(`${at}.${kind}: must be an object (use {} when it has no fields)`);
    return;
  }
  for (const k of Object.keys(body)) {
    if (!(k in fields)) {
      const known = Object.keys(fields);
      issues.push(
        `${at}.${kind}.${k}: unknown field; ${known.length ? `known fields: ${known.join(', ')}` : 'this condition takes no fields'}`,
      );
    }
  }
  for (const [f, spec] of Object.entries(fields)) {
    const v = body[f];
    if (v === undefined) {
      if (spec.required) issues.push(`${at}.${kind}.${f}: required`);
      continue;
    }
    if (spec.kind === 'custom') checkCustom(kind, f, v, `${at}.${kind}.${f}`, issues);
    else checkNumber(spec.kind, v, `${at}.${kind}.${f}`, issues);
  }
  if (kind === 'latency' && body.aboveBaselineFactor === undefined && body.aboveMs === undefined) {
    issues.push(`${at}.latency: set aboveBaselineFactor (x own baseline), aboveMs (absolute), or both`);
  }
  if (kind === 'memoryTrend') checkTrendWindow(body, `${at}.memoryTrend`, issues);
  if (kind === 'logPattern' && typeof body.regex === 'string' && body.regex !== '') {
    try {
      new RegExp(
        body.regex,
        typeof body.flags === 'string' && REGEX_FLAGS.test(body.flags) ? body.flags : '',
      );
    } catch (err) {
      issues.push(
        `${at}.logPattern.regex: not a valid JavaScript regular expression: ${(err as Error).message}`,
      );
    }
  }
}

/**
 * Validate a user rule list (`spec.isolation.signatures`). Throws a
 * `RuleValidationError` listing every problem with its location.
 */
export function validateRules(input: unknown, path = 'spec.isolation.signatures'): RuleInput[] {
  const issues: string[] = [];
  if (!Array.isArray(input)) throw new RuleValidationError([`${path}: must be a list of rules`]);
  const seen = new Set<string>();
  input.forEach((r, i) => {
    const at = `${path}[${i}]`;
    if (!isObj(r)) {
      issues.push(`${at}: must be an object { name, when, severity, action } or { name, enabled: false }`);
      return;
    }
    if (typeof r.name !== 'string' || !NAME_RE.test(r.name) || r.name.length > 63) {
      issues.push(
        `${at}.name: must be 1..63 lowercase letters, digits and '-' (got ${JSON.stringify(r.name)})`,
      );
    } else if (seen.has(r.name)) {
      issues.push(`${at}.name: duplicate rule name '${r.name}'; each name may appear once`);
    } else {
      seen.add(r.name);
    }
    const allowed = ['name', 'description', 'when', 'severity', 'action', 'enabled'];
    for (const k of Object.keys(r)) {
      if (!allowed.includes(k)) issues.push(`${at}.${k}: unknown field; known fields: ${allowed.join(', ')}`);
    }
    if (r.enabled !== undefined && typeof r.enabled !== 'boolean') {
      issues.push(`${at}.enabled: must be true or false`);
    }
    if (r.description !== undefined && typeof r.description !== 'string')
      issues.push(`${at}.description: must be a string`);
    // `{ name, enabled: false }` alone disables a rule (typically a built-in).
    const disableOnly =
      r.enabled === false && r.when === undefined && r.severity === undefined && r.action === undefined;
    if (disableOnly) return;
    validateCondition(r.when, `${at}.when`, issues);
    if (!SEVERITIES.includes(r.severity as string)) {
      issues.push(
        `${at}.severity: must be one of ${SEVERITIES.join(', ')} (got ${JSON.stringify(r.severity)})`,
      );
    }
    if (!ACTIONS.includes(r.action as string)) {
      issues.push(`${at}.action: must be one of ${ACTIONS.join(', ')} (got ${JSON.stringify(r.action)})`);
    }
  });
  if (issues.length > 0) throw new RuleValidationError(issues);
  return input as RuleInput[];
}

/**
 * The effective rule set of an app: built-ins, with user rules replacing
 * built-ins of the same name (or adding new ones, in order after them), and
 * `enabled: false` removing a rule. Disabling an unknown name is an error, so
 * a typo does not silently leave a built-in active.
 */
export function resolveRules(
  user: readonly RuleInput[] = [],
  builtins: readonly Rule[] = BUILTIN_RULES,
): Rule[] {
  const byName = new Map<string, Rule | undefined>();
  for (const b of builtins) byName.set(b.name, b);
  const issues: string[] = [];
  for (const r of user) {
    if ('when' in r && r.enabled !== false) {
      byName.set(r.name, r);
    } else if (!byName.has(r.name) && !('when' in r)) {
      issues.push(
        `spec.isolation.signatures: '${r.name}' is disabled but there is no such rule; built-ins are ${builtins.map((b) => b.name).join(', ')}`,
      );
    } else {
      byName.set(r.name, undefined);
    }
  }
  if (issues.length > 0) throw new RuleValidationError(issues);
  return [...byName.values()].filter((r): r is Rule => r !== undefined);
}
