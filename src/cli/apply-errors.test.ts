/**
 * How the CLI tells a user what is wrong with their input, against a real
 * control plane HTTP server (in-process, on a loopback port) over a real
 * PGlite store: manifest errors as FILE:LINE with a code frame and the fix,
 * each once; flag values such as `--replicas -1` in Bulwark's words.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { runCli, startTestApi, type TestApi } from '../controlplane/api/testdata/test-api.ts';
import { codeFrame } from './commands/apply.ts';
import { EXIT } from './exit-codes.ts';
import { joinDashValues, main } from './main.ts';

const TOKEN = 'bwk_test_cli_apply_errors_0123456789';

let api: TestApi;
let dir: string;

beforeAll(async () => {
  api = await startTestApi({ token: TOKEN, prefix: 'bulwark-cli-apply-errors-', listen: true });
  dir = api.dir;
}, 60_000);

afterAll(async () => {
  await api?.close();
});

const cli = (...args: string[]): ReturnType<typeof runCli> => runCli(api.url, TOKEN, args);

const PROJECT =
  'apiVersion: bulwark.io/v1\nkind: Project\nmetadata:\n  name: shop\nspec:\n  tenant: retail\n';
const app = (replicas: string, indent = '      '): string =>
  'apiVersion: bulwark.io/v1\nkind: App\nmetadata:\n  name: web\n  project: shop\nspec:\n  workloads:\n' +
  `    - name: api\n      type: service\n${indent}replicas: ${replicas}\n      run:\n        command: [node, x.js]\n`;

function write(name: string, text: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
}

describe('bulwark apply: manifest errors', () => {
  it('a YAML syntax error in the second file is that file and line, with a code frame and a fix, once', async () => {
    const a = write('a-project.yaml', PROJECT);
    const b = write('b-app.yaml', app('2', '     '));
    const r = await cli('apply', '-f', a, '-f', b);
    expect(r.code).toBe(EXIT.invalid);
    expect(r.err).not.toContain('request body');
    // Line 10 of b-app.yaml is the mis-indented key (the joined text's line 18).
    expect(r.err).toContain(`${b}:10: invalid YAML`);
    expect(r.err).toMatch(/^> 10 \|      replicas: 2$/m);
    expect(r.err).toMatch(/^ {5}\| {6}\^$/m);
    expect(r.err).toMatch(/fix: line 10 is indented 5 spaces/);
    expect(r.err.match(/invalid YAML/g)).toHaveLength(1);
  });

  it('a validation error names the file and line of the field, printed once with its fix', async () => {
    const dirOf = fs.mkdtempSync(path.join(dir, 'manifests-'));
    fs.writeFileSync(path.join(dirOf, '1-project.yaml'), PROJECT);
    fs.writeFileSync(path.join(dirOf, '2-app.yaml'), app('-3'));
    const r = await cli('apply', '-f', dirOf);
    expect(r.code).toBe(EXIT.invalid);
    expect(r.err).not.toContain('request body');
    const where = `${path.join(dirOf, '2-app.yaml')}:10:`;
    expect(r.err).toContain(where);
    expect(r.err.split(where)).toHaveLength(2);
    expect(r.err).toMatch(/replicas/);
    expect(r.err).toMatch(/^ {2}fix: /m);
    // The problem is stated once: not again in a summary line, not again as the raw message.
    const problem = r.err
      .split('\n')
      .find((l) => l.startsWith(where))!
      .slice(where.length)
      .trim();
    expect(r.err.split(problem)).toHaveLength(2);
  });

  it('a file that is not there is a usage error naming it', async () => {
    const r = await cli('apply', '-f', path.join(dir, 'nope.yaml'));
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toContain('nope.yaml: no such file');
  });
});

describe('flag parse errors in Bulwark words', () => {
  it('--replicas -1 is the value -1, refused by the flag check with its range', async () => {
    const r = await cli('scale', 'shop/web', '--replicas', '-1');
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toContain('--replicas -1: must be an integer from 0 to 100');
    expect(r.err).not.toMatch(/ambiguous|ERR_PARSE_ARGS/);
  });

  it('an unknown flag, a missing value and a value given to a switch each say what to type', async () => {
    const unknown = await cli('get', 'apps', '--replica', '2');
    expect(unknown.code).toBe(EXIT.usage);
    expect(unknown.err).toMatch(/^error: unknown flag --replica; run 'bulwark help'/);
    const out: string[] = [];
    const missing = await main(['scale', 'shop/web', '--replicas'], {
      out: (s) => out.push(s),
      err: (s) => out.push(s),
    });
    expect(missing).toBe(EXIT.usage);
    expect(out.join('\n')).toMatch(/--replicas needs a value, e.g. --replicas VALUE/);
    const sw = await cli('apply', '-f', 'x.yaml', '--wait=yes');
    expect(sw.code).toBe(EXIT.usage);
    expect(sw.err).toMatch(/--wait is a switch and takes no value; write --wait alone/);
  });

  it('joins only negative numbers after flags that take a value', () => {
    expect(joinDashValues(['scale', 'a/b', '--replicas', '-1', '--wait'])).toEqual([
      'scale',
      'a/b',
      '--replicas=-1',
      '--wait',
    ]);
    expect(joinDashValues(['--wait', '-1'])).toEqual(['--wait', '-1']);
    expect(joinDashValues(['--replicas', '-f'])).toEqual(['--replicas', '-f']);
  });
});

describe('codeFrame', () => {
  it('shows the line with one either side and a caret under its text', () => {
    expect(codeFrame(['a: 1', '  b: 2', 'c: 3'], 2)).toEqual([
      '  1 | a: 1',
      '> 2 |   b: 2',
      '    |   ^',
      '  3 | c: 3',
    ]);
    expect(codeFrame(['only'], 1)).toEqual(['> 1 | only', '    | ^']);
  });
});
