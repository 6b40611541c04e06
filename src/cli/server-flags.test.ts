/**
 * `bulwark server --gateway-cpus` and `--control-plane-cpus`: parsed into CPU numbers, and refused with a
 * usage exit code and a message naming the flag and the fix before anything
 * starts. Rendering and the pinning itself: src/dataplane/haproxy/config.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { EXIT } from './exit-codes.ts';
import { cpuCount } from '../util/cpus.ts';
import { cpusFlag, main } from './main.ts';

async function run(args: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const code = await main(args, { out: () => undefined, err: (s) => (err += s) });
  return { code, err };
}

const cpus = cpuCount();

describe('bulwark server --gateway-cpus', () => {
  it('reads single CPUs, lists and ranges (as on a 4-CPU machine, whatever this one has)', () => {
    expect(cpusFlag('1', 'gateway-cpus', 4)).toEqual([1]);
    expect(cpusFlag('1,2', 'gateway-cpus', 4)).toEqual([1, 2]);
    expect(cpusFlag('1-2', 'gateway-cpus', 4)).toEqual([1, 2]);
    expect(() => cpusFlag('0-3', 'gateway-cpus', 4)).toThrow(/that is every CPU \(4\)/);
  });

  it('takes one CPU of this machine and leaves the rest to the instances', () => {
    expect(cpusFlag(String(cpus - 1))).toEqual([cpus - 1]);
    expect(() => cpusFlag(`0-${cpus - 1}`)).toThrow(/that is every CPU \(\d+\): leave at least one/);
  });

  it('refuses what is not a CPU of this machine, naming the flag and an example', async () => {
    for (const [v, msg] of [
      ['abc', /--gateway-cpus abc: 'abc' is not a CPU number or range; give CPU numbers such as 1/],
      ['3-1', /range '3-1' runs backwards/],
      [String(cpus + 7), new RegExp(`this machine has CPUs 0-${cpus - 1}, not ${cpus + 7}`)],
      ['0,0', /a CPU is listed twice/],
    ] as const) {
      const r = await run(['server', '--gateway-cpus', v]);
      expect(r.code, v).toBe(EXIT.usage);
      expect(r.err, v).toMatch(msg);
    }
  });

  it('refuses a --control-plane-cpus value naming that flag, and a plan with no CPU left for the instances', async () => {
    let r = await run(['server', '--control-plane-cpus', 'x1']);
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/--control-plane-cpus x1: 'x1' is not a CPU number or range/);
    r = await run(['server', '--gateway-cpus', String(cpus - 1), '--control-plane-cpus', `0-${cpus - 2}`]);
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/--gateway-cpus\/--control-plane-cpus: .*leave at least one to the instances/);
  });
});
