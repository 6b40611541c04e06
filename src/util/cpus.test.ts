/** Process CPU affinity through taskset, on real processes. */
import { execFileSync, spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { affinityOf, parseCpuList, setAffinity } from './cpus.ts';
import { waitFor } from './time.ts';

const kids: ReturnType<typeof spawn>[] = [];
afterEach(() => {
  for (const k of kids.splice(0)) k.kill('SIGKILL');
});

describe('cpus', () => {
  it('reads the kernel list format', () => {
    expect(parseCpuList('0-2,5\n')).toEqual([0, 1, 2, 5]);
    expect(parseCpuList('3')).toEqual([3]);
    expect(() => parseCpuList('0-x')).toThrow(/'0-x' is not a CPU number or range/);
    expect(() => parseCpuList('1,')).toThrow(/'' is not a CPU number or range/);
    expect(() => parseCpuList('3-1')).toThrow(/range '3-1' runs backwards/);
  });

  it('pins a running process and its later children to the CPUs given', async () => {
    const last = os.cpus().length - 1;
    // A shell that starts a sleep after it was pinned: the child inherits the mask.
    const sh = spawn('/bin/sh', ['-c', 'read x; sleep 30 & echo $!; wait'], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    kids.push(sh);
    await waitFor('shell started', () => sh.pid !== undefined && affinityOf(sh.pid).length > 0);
    expect(affinityOf(sh.pid!)).toEqual(affinityOf('self'));
    setAffinity(sh.pid!, [last]);
    expect(affinityOf(sh.pid!)).toEqual([last]);
    let out = '';
    sh.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    sh.stdin!.write('go\n');
    const child = await waitFor('sleep started', () => Number(out.trim()) || undefined);
    expect(affinityOf(child)).toEqual([last]);
    process.kill(child, 'SIGKILL');
  });

  it("counts this machine's CPUs, not the caller's affinity, and the CPU checks accept the others", () => {
    const last = os.cpus().length - 1;
    // A process confined to CPU 0 (as a pinned control plane is to its own): the local
    // driver must still accept the instances' CPUs, and the flag parser the gateway's.
    const script = [
      `import { cpuCount } from '${path.join(import.meta.dirname, 'cpus.ts')}';`,
      `import { compileOptions } from '${path.join(import.meta.dirname, '../runtime/local/options.ts')}';`,
      `import { cpusFlag } from '${path.join(import.meta.dirname, '../cli/main.ts')}';`,
      `compileOptions({ stateDir: '/tmp/x', site: 's', records: {}, cpus: [${last}] });`,
      `console.log(JSON.stringify([cpuCount(), cpusFlag('${last}')]));`,
    ].join('\n');
    const out = execFileSync('taskset', ['-c', '0', process.execPath, '--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    expect(JSON.parse(out.trim().split('\n').at(-1)!)).toEqual([last + 1, [last]]);
  });

  it('says which process and CPUs it could not pin, and why', () => {
    expect(() => setAffinity(2 ** 22 + 12345, [0])).toThrow(
      /could not pin process \d+ to CPUs 0: no such process/,
    );
    expect(() => setAffinity(process.pid, [])).toThrow(/no CPUs given/);
  });
});
