import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LogFollower } from './log-follower.ts';
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

describe('following logs', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const texts = (f: LogFollower): string[] => f.poll().map((l) => `${l.stream}:${l.text}`);

  it('delivers only lines written after start, each once, across several rotations between polls', () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bulwark-follow-'));
    // Each stored line is ~40 bytes: a 200-byte file holds about 5.
    const out = new RotatingLog({ dir, stream: 'stdout', maxBytes: 200, files: 5 });
    const err = new RotatingLog({ dir, stream: 'stderr', maxBytes: 200, files: 5 });
    out.write('old 1\nold 2\n');
    const f = new LogFollower(dir, 5);
    f.start();
    expect(f.poll()).toEqual([]);
    out.write('new 1\n');
    err.write('oops\n');
    expect(texts(f).sort()).toEqual(['stderr:oops', 'stdout:new 1']);
    // ~3 rotations before the next poll: the followed file is renamed twice, others appear between.
    for (let i = 2; i <= 16; i++) out.write(`new ${i}\n`);
    const got = texts(f);
    expect(got).toEqual(Array.from({ length: 15 }, (_, i) => `stdout:new ${i + 2}`));
    expect(texts(f)).toEqual([]);
    out.write('new 17\n');
    expect(texts(f)).toEqual(['stdout:new 17']);
    f.close();
    out.close();
    err.close();
  });

  it('keeps reading a followed file that rotation deleted, and starts from the beginning of a file that appears later', () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bulwark-follow-'));
    const f = new LogFollower(dir, 2);
    f.start(); // nothing there yet
    const out = new RotatingLog({ dir, stream: 'stdout', maxBytes: 100, files: 2 });
    out.write('a 1\n');
    expect(texts(f)).toEqual(['stdout:a 1']);
    // With 2 files the followed file is deleted by the second rotation; its fd still reads it.
    for (let i = 2; i <= 6; i++) out.write(`a ${i}\n`);
    // ~36 bytes a line, 2 a file: a 2 is only in the deleted file, a 3-4 in .1, a 5-6 live.
    expect(texts(f)).toEqual(['stdout:a 2', 'stdout:a 3', 'stdout:a 4', 'stdout:a 5', 'stdout:a 6']);
    expect(readdirSync(dir).sort()).toEqual(['stdout.log', 'stdout.log.1']);
    f.close();
    out.close();
  });
});
