import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tailLogs } from './log-reader.ts';
import { RotatingLog } from './log-writer.ts';

describe('rotating logs', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('rotates by size, keeps at most N files, and tail reads across them in order', async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bulwark-logs-'));
    const log = new RotatingLog({ dir, stream: 'stdout', maxBytes: 200, files: 3 });
    for (let i = 1; i <= 40; i++) log.write(`line ${i}\n`);
    log.close();
    expect(readdirSync(dir).sort()).toEqual(['stdout.log', 'stdout.log.1', 'stdout.log.2']);
    const last = await tailLogs(dir, ['stdout'], { tail: 6, files: 3 });
    expect(last.map((l) => l.text)).toEqual([
      'line 35',
      'line 36',
      'line 37',
      'line 38',
      'line 39',
      'line 40',
    ]);
    const all = await tailLogs(dir, ['stdout'], { tail: 1000, files: 3 });
    const nums = all.map((l) => Number(l.text.split(' ')[1]));
    expect(nums).toEqual([...nums].sort((a, b) => a - b)); // oldest first, no gaps between files
    expect(nums.at(-1)).toBe(40);
    expect(nums.length).toBeLessThan(40); // the oldest lines rotated away
  });

  it('joins partial writes into lines and merges streams by time', async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bulwark-logs-'));
    let t = 0;
    const now = () => new Date(1_700_000_000_000 + t++);
    const out = new RotatingLog({ dir, stream: 'stdout', now });
    const err = new RotatingLog({ dir, stream: 'stderr', now });
    out.write('hel');
    out.write('lo\nwor');
    err.write('oops\n');
    out.write('ld\n');
    out.close();
    err.close();
    const both = await tailLogs(dir, ['stdout', 'stderr'], { tail: 10, files: 3 });
    expect(both.map((l) => `${l.stream}:${l.text}`)).toEqual(['stdout:hello', 'stderr:oops', 'stdout:world']);
  });

  it('drops and counts lines it cannot write instead of throwing', () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bulwark-logs-'));
    const log = new RotatingLog({ dir: path.join(dir, 'missing'), stream: 'stdout' });
    expect(() => log.write('a\nb\n')).not.toThrow();
    expect(log.droppedLines).toBe(2);
    expect(log.lastError).toMatch(/ENOENT/);
  });
});

describe('tailLogs on a large file', () => {
  it('returns exactly the last lines when they span read blocks', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bulwark-logs-'));
    try {
      const log = new RotatingLog({ dir, stream: 'stdout' });
      for (let i = 1; i <= 20_000; i++) log.write(`line ${i} ${'x'.repeat(i % 50)}\n`);
      log.close();
      const last = await tailLogs(dir, ['stdout'], { tail: 3000, files: 3 });
      expect(last).toHaveLength(3000);
      expect(last[0]!.text.startsWith('line 17001 ')).toBe(true);
      expect(last.at(-1)!.text.startsWith('line 20000 ')).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
