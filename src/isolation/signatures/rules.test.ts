import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { BUILTIN_RULES } from './builtins.ts';
import { RuleValidationError, resolveRules, validateRules } from './rules.ts';
import { signaturesSchema } from './schema.ts';
import { CONDITION_KINDS } from './types.ts';
import type { Rule } from './types.ts';

// The options of the model's validator (src/model/validate.ts), so the fragment plugs in as is.
const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, strictRequired: false });
const schemaValid = ajv.compile(signaturesSchema);

const issuesOf = (input: unknown): string[] => {
  try {
    validateRules(input);
    return [];
  } catch (err) {
    if (err instanceof RuleValidationError) return err.issues;
    throw err;
  }
};

const rule = (when: unknown, over: Record<string, unknown> = {}) => ({
  name: 'r',
  when,
  severity: 'major',
  action: 'isolate',
  ...over,
});

describe('built-in library', () => {
  it('has the documented, stable names', () => {
    expect(BUILTIN_RULES.map((r) => r.name)).toEqual([
      'start-failure',
      'crash',
      'hang',
      'stopped',
      'http-5xx-burst',
      'connect-failures',
      'error-rate',
      'latency-spike',
      'probe-failures',
      'java-oom-log',
      'node-heap-oom',
      'memory-leak',
      'memory-leak-fast',
      'memory-near-limit',
      'cpu-throttled',
      'restart-loop',
    ]);
  });

  it('is documented rule by rule in docs/isolation-signatures.md', () => {
    const doc = readFileSync(new URL('../../../docs/isolation-signatures.md', import.meta.url), 'utf8');
    for (const r of BUILTIN_RULES) expect(doc, r.name).toMatch(new RegExp(`^\\| \`${r.name}\` +\\| \``, 'm'));
    for (const k of CONDITION_KINDS) expect(doc, k).toContain(`### \`${k}: `);
  });

  it('passes its own validation and the JSON Schema', () => {
    expect(validateRules(BUILTIN_RULES)).toHaveLength(BUILTIN_RULES.length);
    expect(schemaValid(BUILTIN_RULES), JSON.stringify(schemaValid.errors)).toBe(true);
  });
});

describe('validateRules', () => {
  it('accepts one example of every condition, and so does the schema', () => {
    const rules = [
      rule({ consecutive5xx: { count: 3, withinMs: 1000 } }, { name: 'a' }),
      rule({ connectFailures: { count: 3, withinMs: 1000 } }, { name: 'a2' }),
      rule({ errorRate: { above: 0.2, windowMs: 5000, minRequests: 20 } }, { name: 'b' }),
      rule(
        { latency: { percentile: 90, aboveMs: 300, forMs: 1000, windowMs: 500, minRequests: 3 } },
        { name: 'c' },
      ),
      rule({ noResponse: { forMs: 2000 } }, { name: 'd' }),
      rule({ probeFailures: { consecutive: 2 } }, { name: 'e' }),
      rule({ exited: { reasons: ['oom-killed'] } }, { name: 'f', action: 'restart' }),
      rule({ stopped: {} }, { name: 'g' }),
      rule({ logPattern: { regex: 'deadlock', flags: 'i', stream: 'stderr' } }, { name: 'h' }),
      rule({ memoryNearLimit: { aboveRatio: 0.95, forMs: 500 } }, { name: 'i' }),
      rule(
        {
          memoryTrend: {
            reachLimitWithinMs: 3000,
            aboveRatio: 0.5,
            windowMs: 2000,
            minSamples: 5,
            minR2: 0.9,
            minRiseRatio: 0.05,
            maxDipRatio: 0.01,
          },
        },
        { name: 'l' },
      ),
      rule(
        { cpuThrottled: { aboveRatio: 0.8, forMs: 10_000 } },
        { name: 'j', action: 'alert', severity: 'minor' },
      ),
      rule({ restartLoop: { restarts: 5, withinMs: 300_000 } }, { name: 'k', action: 'alert' }),
      { name: 'crash', enabled: false },
    ];
    expect(new Set(rules.map((r) => Object.keys((r as { when?: object }).when ?? { x: 1 })[0]))).toEqual(
      new Set([...CONDITION_KINDS, 'x']),
    );
    expect(issuesOf(rules)).toEqual([]);
    expect(schemaValid(rules), JSON.stringify(schemaValid.errors)).toBe(true);
  });

  it.each([
    [
      rule({ errorRate: { above: 1.5, windowMs: 1000, minRequests: 5 } }),
      'spec.isolation.signatures[0].when.errorRate.above: must be between 0 and 1',
    ],
    [
      rule({ consecutive5xx: { count: 0, withinMs: 1000 } }),
      '[0].when.consecutive5xx.count: must be an integer between 1 and 1000',
    ],
    [rule({ consecutive5xx: { count: 3 } }), '[0].when.consecutive5xx.withinMs: required'],
    [
      rule({ latency: { percentile: 95, aboveMs: 5, forMs: 1 } }),
      '[0].when.latency.percentile: must be one of 50, 90, 99',
    ],
    [rule({ latency: { percentile: 99, forMs: 1 } }), '[0].when.latency: set aboveBaselineFactor'],
    [rule({ logPattern: { regex: 'x', flags: 'g' } }), '"g" and "y" are stateful'],
    [rule({ exited: { reasons: ['boom'] } }), '[0].when.exited.reasons[0]: must be one of exited, signaled'],
    [
      rule({ stopped: { forMs: 1 } }),
      '[0].when.stopped.forMs: unknown field; this condition takes no fields',
    ],
    [
      rule({ noResponse: { forMs: 1000 }, stopped: {} }),
      '[0].when: must have exactly one condition (got noResponse, stopped)',
    ],
    [rule({ panics: {} }), '[0].when.panics: unknown condition; use one of consecutive5xx'],
    [rule({ memoryTrend: { aboveRatio: 0.6 } }), '[0].when.memoryTrend.reachLimitWithinMs: required'],
    [
      rule({ memoryTrend: { reachLimitWithinMs: 0, aboveRatio: 0.6 } }),
      '[0].when.memoryTrend.reachLimitWithinMs: must be > 0 milliseconds (got 0)',
    ],
    [
      rule({ memoryTrend: { reachLimitWithinMs: 4000, aboveRatio: 60 } }),
      '[0].when.memoryTrend.aboveRatio: must be between 0 and 1, a fraction such as 0.9 for 90% (got 60)',
    ],
    [
      rule({ memoryTrend: { reachLimitWithinMs: 4000, aboveRatio: 0.6, minSamples: 1 } }),
      '[0].when.memoryTrend.minSamples: must be an integer >= 2, a line needs two points (got 1)',
    ],
    [
      rule({ memoryTrend: { reachLimitWithinMs: 4000, aboveRatio: 0.6, windowMs: -1 } }),
      '[0].when.memoryTrend.windowMs: must be > 0 milliseconds (got -1)',
    ],
    [
      rule({ memoryTrend: { reachLimitWithinMs: 4000, aboveRatio: 0.6, windowMs: 3_600_000 } }),
      '[0].when.memoryTrend.windowMs: must be <= 600000 (10 minutes; each instance keeps 2 x windowMs of samples) (got 3600000)',
    ],
    [
      rule({ memoryTrend: { reachLimitWithinMs: 4000, aboveRatio: 0.6, forMs: 1000 } }),
      '[0].when.memoryTrend.forMs: unknown field; known fields: reachLimitWithinMs, aboveRatio, windowMs, minSamples, minR2, minRiseRatio, maxDipRatio',
    ],
    [
      rule({ memoryTrend: { reachLimitWithinMs: 4000, aboveRatio: 0.6, minR2: 1.5 } }),
      '[0].when.memoryTrend.minR2: must be between 0 and 1, a fraction such as 0.9 for 90% (got 1.5)',
    ],
    [
      rule({ memoryTrend: { reachLimitWithinMs: 4000, aboveRatio: 0.6, minRiseRatio: -0.1 } }),
      '[0].when.memoryTrend.minRiseRatio: must be between 0 and 1, a fraction such as 0.9 for 90% (got -0.1)',
    ],
    [
      rule({ memoryTrend: { reachLimitWithinMs: 4000, aboveRatio: 0.6, maxDipRatio: 'x' } }),
      '[0].when.memoryTrend.maxDipRatio: must be a number (got "x")',
    ],
    [rule({ stopped: {} }, { action: 'kill' }), '[0].action: must be one of isolate, restart, alert'],
    [
      rule({ stopped: {} }, { name: 'Bad_Name' }),
      "[0].name: must be 1..63 lowercase letters, digits and '-'",
    ],
    [rule({ stopped: {} }, { window: 1 }), '[0].window: unknown field'],
  ])('rejects %j with a located message', (r, message) => {
    const issues = issuesOf([r]);
    expect(issues.join('\n')).toContain(message);
    expect(schemaValid([r])).toBe(false);
  });

  it('rejects a regex that does not compile (beyond what the schema can check)', () => {
    const r = rule({ logPattern: { regex: '(' } });
    expect(issuesOf([r]).join()).toContain(
      '[0].when.logPattern.regex: not a valid JavaScript regular expression',
    );
  });

  it('rejects a memoryTrend window too short to hold minSamples memory samples (it would never fire)', () => {
    expect(
      issuesOf([rule({ memoryTrend: { reachLimitWithinMs: 4000, aboveRatio: 0.6, minSamples: 20 } })]),
    ).toEqual([
      'spec.isolation.signatures[0].when.memoryTrend: windowMs 1000 cannot hold minSamples 20 memory samples taken every ~100 ms, so the rule would never fire; set windowMs >= 1900 or lower minSamples',
    ]);
    expect(
      issuesOf([
        rule({ memoryTrend: { reachLimitWithinMs: 4000, aboveRatio: 0.6, windowMs: 1900, minSamples: 20 } }),
      ]),
    ).toEqual([]);
  });

  it('rejects duplicate names and a non-list', () => {
    expect(issuesOf([rule({ stopped: {} }), rule({ stopped: {} })]).join()).toContain(
      "duplicate rule name 'r'",
    );
    expect(issuesOf({})).toEqual(['spec.isolation.signatures: must be a list of rules']);
  });
});

describe('resolveRules', () => {
  it('returns the built-ins when the app has no rules', () => {
    expect(resolveRules().map((r) => r.name)).toEqual(BUILTIN_RULES.map((r) => r.name));
  });

  it('replaces a built-in by name in place, disables by name, and appends new rules', () => {
    const custom: Rule = {
      name: 'http-5xx-burst',
      when: { consecutive5xx: { count: 5, withinMs: 2000 } },
      severity: 'major',
      action: 'alert',
    };
    const extra: Rule = {
      name: 'deadlock-log',
      when: { logPattern: { regex: 'deadlock' } },
      severity: 'critical',
      action: 'isolate',
    };
    const resolved = resolveRules([custom, { name: 'cpu-throttled', enabled: false }, extra]);
    const names = resolved.map((r) => r.name);
    expect(names).not.toContain('cpu-throttled');
    expect(names.indexOf('http-5xx-burst')).toBe(BUILTIN_RULES.findIndex((r) => r.name === 'http-5xx-burst'));
    expect(resolved.find((r) => r.name === 'http-5xx-burst')).toBe(custom);
    expect(names[names.length - 1]).toBe('deadlock-log');
  });

  it('refuses to disable a rule that does not exist, so a typo cannot leave a built-in on', () => {
    expect(() => resolveRules([{ name: 'http-5xx-brust', enabled: false }])).toThrow(
      /'http-5xx-brust' is disabled but there is no such rule; built-ins are start-failure, crash, hang/,
    );
  });

  it('keeps a full rule written with enabled: false off without error', () => {
    const off: Rule = {
      name: 'later',
      when: { stopped: {} },
      severity: 'minor',
      action: 'alert',
      enabled: false,
    };
    expect(resolveRules([off]).map((r) => r.name)).not.toContain('later');
  });
});
