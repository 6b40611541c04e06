import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IdLeases } from './ids.ts';
import { isInside, visibleDirs } from './paths.ts';
import { compileSeccompFilter, DENIED_SYSCALLS_X86_64 } from './seccomp.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'bulwark-sandbox-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const hasBwrap = spawnSync('bwrap', ['--version']).status === 0;

describe('seccomp filter', () => {
  it('is a whole number of 8-byte instructions that starts by checking the architecture', () => {
    const prog = compileSeccompFilter('x64');
    expect(prog.length % 8).toBe(0);
    expect(prog.readUInt16LE(0)).toBe(0x20); // ld [arch]
    expect(prog.readUInt32LE(4)).toBe(4);
    expect(prog.readUInt32LE(12)).toBe(0xc000003e);
    // Every denied call has its comparison.
    const ks = new Set<number>();
    for (let i = 0; i < prog.length; i += 8)
      if (prog.readUInt16LE(i) === 0x15) ks.add(prog.readUInt32LE(i + 4));
    for (const nr of Object.values(DENIED_SYSCALLS_X86_64)) expect(ks.has(nr)).toBe(true);
  });

  it('refuses other architectures, naming them', () => {
    expect(() => compileSeccompFilter('arm64')).toThrow(/x86-64 .* not arm64/);
  });

  it.skipIf(!hasBwrap || process.arch !== 'x64')(
    'loaded by bwrap: unshare and mount fail with EPERM, ordinary programs and threads run',
    () => {
      const file = path.join(tmp, 'f.bpf');
      writeFileSync(file, compileSeccompFilter());
      const script = [
        'unshare -m true 2>/dev/null && echo unshare-ok || echo unshare-denied',
        `${process.execPath} -e "new (require('worker_threads').Worker)('1',{eval:true}).on('exit',()=>console.log('threads-ok'))"`,
      ].join('; ');
      const out = execFileSync(
        '/bin/sh',
        [
          '-c',
          'exec "$@" 3<"$0"',
          file,
          'bwrap',
          '--unshare-user',
          '--unshare-pid',
          '--ro-bind',
          '/',
          '/',
        ].concat(['--proc', '/proc', '--dev', '/dev', '--seccomp', '3', '--', '/bin/sh', '-c', script]),
        { encoding: 'utf8' },
      );
      expect(out).toContain('unshare-denied');
      expect(out).toContain('threads-ok');
    },
  );
});

describe('id leases', () => {
  const dir = path.join(tmp, 'ids');
  const ownerA = path.join(tmp, 'owner-a');
  const ownerB = path.join(tmp, 'owner-b');
  mkdirSync(ownerA);
  mkdirSync(ownerB);

  it('gives a key the same id every time, distinct keys and owners distinct ids, and frees on release', () => {
    const a = new IdLeases({ dir, owner: ownerA, base: 5000, count: 3 });
    const b = new IdLeases({ dir, owner: ownerB, base: 5000, count: 3 });
    const x = a.acquire('x');
    expect(a.acquire('x')).toBe(x);
    const y = a.acquire('y');
    const bx = b.acquire('x');
    expect(new Set([x, y, bx]).size).toBe(3);
    expect(() => b.acquire('z')).toThrow(/no free sandbox id in 5000-5002/);
    a.release('y');
    expect(b.acquire('z')).toBe(y);
  });

  it('takes over the leases of an owner whose state directory is gone', () => {
    const goneOwner = path.join(tmp, 'gone');
    mkdirSync(goneOwner);
    const gone = new IdLeases({ dir: path.join(tmp, 'ids2'), owner: goneOwner, base: 7000, count: 1 });
    const id = gone.acquire('x');
    rmSync(goneOwner, { recursive: true });
    const heir = new IdLeases({ dir: path.join(tmp, 'ids2'), owner: ownerA, base: 7000, count: 1 });
    expect(heir.acquire('y')).toBe(id);
  });
});

describe('visible directories', () => {
  it('folds nested directories into their parent and adds absolute file arguments', () => {
    const app = path.join(tmp, 'srv', 'app');
    mkdirSync(app, { recursive: true });
    writeFileSync(path.join(app, 'main.ts'), '');
    expect(
      visibleDirs('/work/x', '/work/x/node_modules/node/bin/node', [path.join(app, 'main.ts'), '--flag']),
    ).toEqual(['/work/x', app]);
    expect(visibleDirs('/a/b', '/a/b/c/node', ['/a/b/c/d', 'relative'])).toEqual(['/a/b']);
  });

  it('isInside is path-aware, not a string prefix', () => {
    expect(isInside('/a/bc', '/a/b')).toBe(false);
    expect(isInside('/a/b/c', '/a/b')).toBe(true);
    expect(isInside('/a/b', '/a/b')).toBe(true);
  });
});
