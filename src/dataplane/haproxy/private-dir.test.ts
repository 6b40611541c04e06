import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensurePrivateDir } from './private-dir.ts';

const root = process.getuid?.() === 0;
const base = mkdtempSync(path.join(os.tmpdir(), 'bw-private-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const mode = (p: string): number => statSync(p).mode & 0o7777;
let n = 0;
const fresh = (): string => path.join(base, `case-${n++}`);

describe('ensurePrivateDir', () => {
  it('creates the directory and its missing parents 0700', () => {
    const top = fresh();
    const dir = path.join(top, 'sites', 'local', 'haproxy');
    ensurePrivateDir(dir);
    expect(mode(dir)).toBe(0o700);
    expect(mode(top)).toBe(0o700);
  });

  it('tightens an existing directory of ours to 0700', () => {
    const dir = fresh();
    mkdirSync(dir, { mode: 0o755 });
    chmodSync(dir, 0o755);
    ensurePrivateDir(dir);
    expect(mode(dir)).toBe(0o700);
  });

  it('refuses a symlink where the directory should be', () => {
    const target = fresh();
    mkdirSync(target);
    const link = fresh();
    symlinkSync(target, link);
    expect(() => ensurePrivateDir(link)).toThrow(/is not a directory \(a symlink\?\)/);
  });

  it('refuses a parent that others may write without the sticky bit, naming the fix', () => {
    const parent = fresh();
    mkdirSync(parent);
    chmodSync(parent, 0o777);
    expect(() => ensurePrivateDir(path.join(parent, 'haproxy'))).toThrow(
      new RegExp(`'${parent}' .*writable by every user \\(mode 777\\).*chmod go-w`),
    );
    chmodSync(parent, 0o1777); // like /tmp: others cannot rename our entries
    expect(() => ensurePrivateDir(path.join(parent, 'haproxy'))).not.toThrow();
  });

  it.skipIf(!root)('refuses a directory, or a parent, owned by another user', () => {
    const dir = fresh();
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 65534, 65534);
    expect(() => ensurePrivateDir(dir)).toThrow(/is owned by uid 65534, not by this process/);
    const parent = fresh();
    mkdirSync(parent, { mode: 0o755 });
    chownSync(parent, 65534, 65534);
    expect(() => ensurePrivateDir(path.join(parent, 'haproxy'))).toThrow(
      /a parent of the work directory .* is owned by uid 65534/,
    );
  });
});
