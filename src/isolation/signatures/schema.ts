/**
 * JSON Schema (draft-07) fragment for `spec.isolation.signatures`, for the
 * model owner to plug into the App schema (src/model/schema.ts). It mirrors
 * `validateRules` in rules.ts, which additionally checks what a schema cannot
 * say well (the regex compiles, duplicate names, a latency threshold is set,
 * a memoryTrend window holds its minSamples)
 * and gives located, fix-naming messages.
 */
import { MAX_STREAK_SAMPLES } from '../signals/window.ts';
import { CONDITION_KINDS } from './types.ts';
import { RULE_NAME_PATTERN } from './rules.ts';

type Json = Record<string, unknown>;

const object = (description: string, properties: Record<string, Json>, required: string[] = []): Json => ({
  type: 'object',
  description,
  additionalProperties: false,
  properties,
  ...(required.length > 0 ? { required } : {}),
});

const posInt = (description: string): Json => ({ type: 'integer', minimum: 1, description });
const posMs = (description: string): Json => ({ type: 'number', exclusiveMinimum: 0, description });
const nonNegMs = (description: string): Json => ({ type: 'number', minimum: 0, description });
const ratio = (description: string): Json => ({ type: 'number', minimum: 0, maximum: 1, description });

/** A latency condition needs a relative or an absolute threshold (or both). */
const withThreshold = (schema: Json): Json => ({
  ...schema,
  anyOf: [{ required: ['aboveBaselineFactor'] }, { required: ['aboveMs'] }],
});

/** One schema per condition, keyed by its condition name. */
const CONDITIONS: Record<(typeof CONDITION_KINDS)[number], Json> = {
  consecutive5xx: object(
    'N server-fault answers in a row as logged by the gateway (5xx, aborted, timed-out or invalid responses), all within withinMs. Connection failures streak apart (connectFailures).',
    {
      count: { ...posInt('How many in a row.'), maximum: MAX_STREAK_SAMPLES },
      withinMs: posMs('First to last within this many ms.'),
    },
    ['count', 'withinMs'],
  ),
  connectFailures: object(
    'N connection failures in a row as logged by the gateway (refused or timed-out connects), all within withinMs.',
    {
      count: { ...posInt('How many in a row.'), maximum: MAX_STREAK_SAMPLES },
      withinMs: posMs('First to last within this many ms.'),
    },
    ['count', 'withinMs'],
  ),
  errorRate: object(
    'Fraction of server-fault requests among the requests that ended in the last windowMs.',
    {
      above: ratio('Fires when the fraction is above this (0..1).'),
      windowMs: posMs('Window length in ms.'),
      minRequests: posInt('Requests needed in the window before the rate counts.'),
    },
    ['above', 'windowMs', 'minRequests'],
  ),
  latency: withThreshold(
    object(
      "A latency percentile over the last windowMs stays above aboveBaselineFactor x the instance's own baseline and/or aboveMs for forMs.",
      {
        percentile: { enum: [50, 90, 99], description: 'Which percentile.' },
        aboveBaselineFactor: {
          type: 'number',
          exclusiveMinimum: 0,
          description: 'Multiple of own baseline.',
        },
        aboveMs: {
          type: 'number',
          exclusiveMinimum: 0,
          description: 'Absolute threshold (a floor with a factor).',
        },
        forMs: nonNegMs('How long it must hold.'),
        windowMs: posMs('Window the percentile is computed over. Default 1000.'),
        minRequests: posInt('Requests needed in the window. Default 5.'),
      },
      ['percentile', 'forMs'],
    ),
  ),
  noResponse: object(
    'No successful response (request < 500 or ok probe) for forMs while probes failed or requests waited or timed out.',
    { forMs: posMs('How long without an answer.') },
    ['forMs'],
  ),
  probeFailures: object(
    'Active probes failed N times in a row.',
    { consecutive: posInt('How many in a row.') },
    ['consecutive'],
  ),
  exited: object('The process exited.', {
    reasons: {
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: { enum: ['exited', 'signaled', 'oom-killed', 'liveness-failed', 'start-failed'] },
      description: 'Only these exit reasons; omit for any.',
    },
  }),
  stopped: object('The process is stopped (state T, e.g. SIGSTOP).', {}),
  logPattern: object(
    'A stdout/stderr event (a line, or a whole stack trace joined with newlines) matches a regular expression.',
    {
      regex: { type: 'string', minLength: 1, description: 'JavaScript regular expression source.' },
      flags: { type: 'string', pattern: '^[imsu]*$', description: 'RegExp flags among i, m, s, u.' },
      stream: { enum: ['stdout', 'stderr', 'both'], description: "Which stream. Default 'both'." },
    },
    ['regex'],
  ),
  memoryNearLimit: object(
    'Memory usage above aboveRatio of the cgroup limit for forMs.',
    { aboveRatio: ratio('Fraction of the limit (0..1).'), forMs: nonNegMs('How long it must hold.') },
    ['aboveRatio', 'forMs'],
  ),
  memoryTrend: object(
    'Memory usage above aboveRatio of the cgroup limit and, fitted over the samples of the last windowMs, growing fast enough to reach the limit within reachLimitWithinMs.',
    {
      reachLimitWithinMs: posMs('Projected time to the limit at the fitted growth rate.'),
      aboveRatio: ratio('Usage must also be above this fraction of the limit (0..1).'),
      windowMs: {
        ...posMs('Samples of this many ms are fitted (at most 10 minutes). Default 1000.'),
        maximum: 600_000,
      },
      minSamples: {
        type: 'integer',
        minimum: 2,
        description: 'Samples needed in the window (at least 2). Default 3.',
      },
      minR2: ratio(
        'Goodness of fit (R², 0..1) the fitted line must reach: steady growth, not a step. Default: not checked.',
      ),
      minRiseRatio: ratio(
        'The fitted rise across the window must be at least this fraction of the limit (0..1). Default: not checked.',
      ),
      maxDipRatio: ratio(
        'No sample of the window may lie more than this fraction of the limit (0..1) below an earlier one: growth must be sustained. Default: not checked.',
      ),
    },
    ['reachLimitWithinMs', 'aboveRatio'],
  ),
  cpuThrottled: object(
    'Fraction of CPU periods throttled above aboveRatio for forMs.',
    { aboveRatio: ratio('Fraction of periods (0..1).'), forMs: nonNegMs('How long it must hold.') },
    ['aboveRatio', 'forMs'],
  ),
  restartLoop: object(
    'At least N restarts within withinMs.',
    { restarts: posInt('How many restarts.'), withinMs: posMs('Within this many ms.') },
    ['restarts', 'withinMs'],
  ),
};

const name = {
  type: 'string',
  minLength: 1,
  maxLength: 63,
  pattern: RULE_NAME_PATTERN,
  description: 'Rule name; the same name as a built-in replaces it.',
};

/** Schema of one condition: an object with exactly one of the condition keys. */
export const conditionSchema: Json = {
  description: 'Exactly one condition.',
  oneOf: CONDITION_KINDS.map((k) => object(`Condition ${k}.`, { [k]: CONDITIONS[k] }, [k])),
};

/** Schema of one entry of `spec.isolation.signatures`. */
export const signatureRuleSchema: Json = {
  description:
    'A fault signature, or { name, enabled: false } to disable a built-in. Built-ins: see docs/isolation-signatures.md.',
  oneOf: [
    object(
      'A full rule.',
      {
        name,
        description: { type: 'string', description: 'What the rule catches and why.' },
        when: conditionSchema,
        severity: { enum: ['critical', 'major', 'minor'] },
        action: { enum: ['isolate', 'restart', 'alert'] },
        enabled: { type: 'boolean', description: 'false keeps the rule written but off. Default true.' },
      },
      ['name', 'when', 'severity', 'action'],
    ),
    object('Disable a rule (typically a built-in) by name.', { name, enabled: { const: false } }, [
      'name',
      'enabled',
    ]),
  ],
};

/** Schema of `spec.isolation.signatures`. */
export const signaturesSchema: Json = {
  type: 'array',
  description:
    'Per-app fault signatures, merged over the built-in library by name. See docs/isolation-signatures.md.',
  items: signatureRuleSchema,
};
