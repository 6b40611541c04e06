/**
 * Hostile manifests: every one is a `ManifestError` naming the document and
 * line (never a ReferenceError, RangeError or a hang), and an over-limit
 * batch is a `ManifestLimitError` found before the rest is parsed.
 */
import { describe, expect, it } from 'vitest';
import { TimeSlice } from '../util/time-slice.ts';
import { badStrings, encodingProblem, MANIFEST_LIMITS, tooDeep } from './input-limits.ts';
import { ManifestError, ManifestLimitError, parseManifests, parseManifestsInSteps } from './validate.ts';

const project = (name: string, tenant = 'retail'): string =>
  `apiVersion: bulwark.io/v1\nkind: Project\nmetadata: { name: ${name} }\nspec: { tenant: ${tenant} }\n`;

function caught(fn: () => unknown): ManifestError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ManifestError);
    return err as ManifestError;
  }
  throw new Error('expected a ManifestError');
}

describe('hostile YAML', () => {
  it('an alias without an anchor names the alias, the document and the line', () => {
    const err = caught(() => parseManifests(`${project('a')}---\n${project('b')}extra: *nope\n`, 'x.yaml'));
    expect(err.errors).toHaveLength(1);
    expect(err.errors[0]).toMatchObject({ document: 2, line: 10, source: 'x.yaml' });
    expect(err.errors[0]?.message).toBe('alias *nope has no anchor (&nope) before it');
  });

  it('a billion-laughs document is refused quickly, at the first alias', () => {
    const levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++) {
      const prev = String.fromCharCode(96 + i);
      const name = String.fromCharCode(97 + i);
      levels.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    const t0 = performance.now();
    const err = caught(() => parseManifests(levels.join('\n')));
    expect(performance.now() - t0).toBeLessThan(500);
    expect(err.errors[0]?.message).toMatch(/aliases expand to more than 50 nodes/);
    expect(err.errors[0]).toMatchObject({ document: 1, line: 2 });
  });

  it('a few aliases for reuse are still fine', () => {
    const text = `apiVersion: bulwark.io/v1\nkind: Project\nmetadata: { name: a }\nspec: &s { tenant: retail }\n---\napiVersion: bulwark.io/v1\nkind: Project\nmetadata: { name: b }\nspec: { tenant: retail }\n`;
    expect(parseManifests(text).map((r) => r.metadata.name)).toEqual(['a', 'b']);
  });

  it.each([
    [
      'block mappings',
      Array.from({ length: 40 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n') + ' 1\n',
      33,
    ],
    ['flow lists', `${'['.repeat(40)}1${']'.repeat(40)}\n`, 1],
  ])('nesting past the limit (%s) names the line of the first level too deep', (_, text, line) => {
    const err = caught(() => parseManifests(text));
    expect(err.errors[0]?.message).toBe(`nesting is deeper than ${MANIFEST_LIMITS.maxDepth} levels`);
    expect(err.errors[0]).toMatchObject({ document: 1, line });
  });

  it('nesting that overflows the YAML parser itself is the same nesting error, not a crash', () => {
    const err = caught(() => parseManifests(`${'['.repeat(100_000)}${']'.repeat(100_000)}`));
    expect(err.errors[0]?.message).toBe(`nesting is deeper than ${MANIFEST_LIMITS.maxDepth} levels`);
    expect(err.errors[0]?.fix).toMatch(/flatten/);
  });

  it('a NUL in a quoted value names the field (the store could not hold it)', () => {
    const text = `apiVersion: bulwark.io/v1\nkind: App\nmetadata: { name: a, project: p }\nspec:\n  workloads:\n    - name: w\n      type: service\n      run: { command: [node, "x\\0y"] }\n`;
    const err = caught(() => parseManifests(text));
    expect(err.errors).toHaveLength(1);
    expect(err.errors[0]).toMatchObject({ path: 'spec.workloads[0].run.command[1]', line: 8 });
    expect(err.errors[0]?.message).toMatch(/NUL character/);
  });

  it('a lone surrogate from a JSON escape names the key it is in', () => {
    const err = caught(() =>
      parseManifests(
        JSON.stringify({
          apiVersion: 'bulwark.io/v1',
          kind: 'Project',
          metadata: { name: 'a' },
          spec: {},
        }).replace('"spec":{}', '"spec":{"\\ud800":"x"}'),
      ),
    );
    expect(err.errors[0]).toMatchObject({ message: expect.stringMatching(/the key .*surrogate/) });
  });

  it('text that is not UTF-8 (U+FFFD after decoding, UTF-16 NULs) is refused with its line', () => {
    const latin1 = Buffer.from(`${project('a')}# caf\xe9\n`, 'latin1').toString('utf8');
    const e1 = caught(() => parseManifests(latin1, 'x.yaml'));
    expect(e1.errors[0]).toMatchObject({ line: 5, source: 'x.yaml' });
    expect(e1.errors[0]?.message).toMatch(/not valid UTF-8/);
    const utf16 = Buffer.from(`\ufeff${project('a')}`, 'utf16le').toString('utf8');
    const e2 = caught(() => parseManifests(utf16));
    expect(e2.errors[0]?.message).toMatch(/not valid UTF-8|NUL byte/);
    expect(e2.errors[0]?.fix).toMatch(/UTF-8/);
  });

  it('a UTF-8 byte order mark is accepted', () => {
    expect(parseManifests(`\ufeff${project('a')}`)).toHaveLength(1);
  });
});

describe('per-request limits', () => {
  const many = (n: number): string => Array.from({ length: n }, (_, i) => project(`p${i}`)).join('---\n');

  it('exactly the limit of resources is accepted', () => {
    expect(parseManifests(many(5), undefined, { maxResources: 5 })).toHaveLength(5);
  });

  it('one resource over the limit is a ManifestLimitError naming the limit and how to split', () => {
    let err: unknown;
    try {
      parseManifests(many(6), undefined, { maxResources: 5 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ManifestLimitError);
    const e = err as ManifestLimitError;
    expect(e.limit).toBe('maxResources');
    expect(e.errors[0]?.message).toBe('more than 5 resources in one request (the limit is 5)');
    expect(e.errors[0]?.fix).toMatch(/split the manifests into several applies of at most 5/);
    expect(e.errors[0]).toMatchObject({ document: 6 });
  });

  it('the items of a top-level list count too, before any of them is converted', () => {
    const list = JSON.stringify(Array.from({ length: 6 }, () => ({ kind: 'Project' })));
    expect(() => parseManifests(list, undefined, { maxResources: 5 })).toThrow(ManifestLimitError);
  });

  it('the stepwise parse gives the same resources and errors and yields during a big batch', async () => {
    const text = many(MANIFEST_LIMITS.maxResources);
    const slice = new TimeSlice(1);
    const steps = await parseManifestsInSteps(text, 'x.yaml', slice);
    expect(steps).toEqual(parseManifests(text, 'x.yaml'));
    expect(slice.yielded).toBeGreaterThan(0);
    const bad = `${project('a')}---\n${project('b', 'Not-A-Label')}`;
    await expect(parseManifestsInSteps(bad, 'x.yaml', new TimeSlice())).rejects.toMatchObject({
      errors: caught(() => parseManifests(bad, 'x.yaml')).errors,
    });
  });
});

describe('input-limits helpers', () => {
  it('tooDeep gives the path of the first too-deep value, without recursion', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 200_000; i++) deep = { a: deep };
    expect(tooDeep(deep, 3)).toEqual(['a', 'a', 'a']);
    expect(tooDeep({ a: [{ b: 1 }] }, 3)).toBeUndefined();
    expect(tooDeep({ a: [{ b: {} }] }, 3)).toEqual(['a', 0, 'b']);
  });

  it('badStrings reports values and keys in document order, at most max', () => {
    const issues = badStrings({ a: 'x\0', b: ['ok', 'y\0'], ['c\0']: 1 });
    expect(issues.map((i) => i.segments)).toEqual(expect.arrayContaining([['a'], ['b', 1], ['c\0']]));
    expect(issues).toHaveLength(3);
    expect(badStrings({ a: Array(50).fill('\0') }, 3)).toHaveLength(3);
  });

  it('encodingProblem finds the first bad character', () => {
    expect(encodingProblem('fine: ü')).toBeUndefined();
    expect(encodingProblem('ab\uFFFDc\0')).toMatchObject({ offset: 2 });
    expect(encodingProblem('a\0b\uFFFD')).toMatchObject({ offset: 1, message: expect.stringMatching(/NUL/) });
  });
});
