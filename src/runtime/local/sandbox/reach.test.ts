import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { allows, firstDenied } from './reach.ts';

const st = (mode: number, uid = 0, gid = 0) => ({ mode, uid, gid });

describe('allows', () => {
  it('reads the owner, group or other bits that apply to the uid/gid', () => {
    expect(allows(st(0o700), 5, 5, 'read')).toBe(false);
    expect(allows(st(0o700, 5), 5, 9, 'read')).toBe(true);
    expect(allows(st(0o750, 0, 9), 5, 9, 'search')).toBe(true);
    expect(allows(st(0o750, 0, 9), 5, 8, 'search')).toBe(false);
    expect(allows(st(0o604), 5, 5, 'read')).toBe(true);
    expect(allows(st(0o604), 5, 5, 'exec')).toBe(false);
    // the owner's bits apply to the owner even when "other" would allow more
    expect(allows(st(0o007, 5), 5, 5, 'read')).toBe(false);
  });
});

describe('firstDenied on real files', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bw-reach-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('names the 0700 directory an other uid cannot enter, and passes once it is opened', () => {
    const app = path.join(dir, 'app');
    mkdirSync(app, { mode: 0o700 });
    chmodSync(app, 0o700);
    const file = path.join(app, 'main.js');
    writeFileSync(file, '');
    chmodSync(file, 0o600);
    const uid = (process.getuid?.() ?? 0) + 12345;
    expect(firstDenied(file, app, uid, uid, 'read')).toMatchObject({
      path: app,
      want: 'search',
      mode: '0700',
    });
    chmodSync(app, 0o711);
    expect(firstDenied(file, app, uid, uid, 'read')).toMatchObject({
      path: file,
      want: 'read',
      mode: '0600',
    });
    chmodSync(file, 0o644);
    expect(firstDenied(file, app, uid, uid, 'read')).toBeUndefined();
    // outside the bound root, or missing: not this check's to report
    expect(firstDenied('/elsewhere/x', app, uid, uid, 'read')).toBeUndefined();
    expect(firstDenied(path.join(app, 'missing.js'), app, uid, uid, 'read')).toBeUndefined();
  });
});
