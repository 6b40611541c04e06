/**
 * YAML syntax errors name the line to edit (not where the parser gave up)
 * and say how to fix it; one mistake is one issue.
 */
import { describe, expect, it } from 'vitest';
import type { ManifestError } from './issues.ts';
import { parseManifests } from './validate.ts';

const HEAD = 'apiVersion: bulwark.io/v1\nkind: Project\nmetadata:\n';

function issues(text: string): { line?: number; message: string; fix?: string }[] {
  try {
    parseManifests(text, 'f.yaml');
  } catch (err) {
    return (err as ManifestError).errors.map((e) => ({
      ...(e.line !== undefined ? { line: e.line } : {}),
      message: e.message,
      ...(e.fix !== undefined ? { fix: e.fix } : {}),
    }));
  }
  throw new Error('expected a ManifestError');
}

describe('YAML syntax errors', () => {
  it('a list item key indented one space short: that line, and the indent its siblings have', () => {
    const text =
      'apiVersion: bulwark.io/v1\nkind: App\nmetadata:\n  name: a\n  project: p\nspec:\n  workloads:\n' +
      '    - name: web\n      replicas: 1\n     run:\n        command: [x]\n';
    expect(issues(text)).toEqual([
      {
        line: 10,
        message: 'invalid YAML: Sequence item without - indicator',
        fix: "line 10 is indented 5 spaces, the key above it (line 9) 6: indent it to 6 spaces, or start a new list item with '- '",
      },
    ]);
  });

  it('an unclosed quote is the line that opens it, not the end of the text', () => {
    const [i] = issues(`${HEAD}  name: "a\nspec:\n  tenant: x\n`);
    expect(i).toMatchObject({
      line: 4,
      fix: 'close the double quote opened on line 4 (add " at the end of the value)',
    });
  });

  it('a line indented deeper than the key above it is that line, reported once', () => {
    const r = issues(`${HEAD}  name: a\n   tenant: b\nspec: {}\n`);
    expect(r).toHaveLength(1);
    expect(r[0]).toMatchObject({
      line: 5,
      fix: expect.stringMatching(
        /^line 5 is indented 3 spaces, deeper than the key 'name' above it \(2\): indent it to 2 spaces/,
      ) as unknown,
    });
  });

  it('a key without its colon, and a tab', () => {
    expect(issues(`${HEAD}  name a\n  x: 1\nspec: {}\n`)[0]).toMatchObject({
      line: 4,
      fix: "put ': ' after the key 'name' on line 4",
    });
    expect(issues(`${HEAD}\tname: a\nspec: {}\n`)[0]).toMatchObject({
      line: 4,
      fix: 'indent line 4 with spaces; YAML does not allow tabs there',
    });
  });

  it('every other syntax error still gets a fix', () => {
    for (const i of issues(`${HEAD}  name: [a\nspec: {}\n`)) expect(i.fix, i.message).toBeTruthy();
  });
});
