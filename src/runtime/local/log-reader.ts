/**
 * Reads the last lines of an instance's logs across rotated files, written by
 * RotatingLog (`<ISO time> <stream> <text>` per line).
 */
import { open } from 'node:fs/promises';
import path from 'node:path';

export interface LogLine {
  at: string;
  stream: string;
  text: string;
}

/** Split a stored line `<ISO time> <stream> <text>` into its parts. */
export function parseLogLine(line: string): LogLine {
  const a = line.indexOf(' ');
  const b = line.indexOf(' ', a + 1);
  if (a < 0 || b < 0) return { at: '', stream: '', text: line };
  return { at: line.slice(0, a), stream: line.slice(a + 1, b), text: line.slice(b + 1) };
}

const BLOCK = 64 * 1024;

/** Last `n` complete lines of a file, reading backwards so a 10 MiB log costs only what is asked for. */
async function lastLines(file: string, n: number): Promise<string[]> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch {
    return [];
  }
  try {
    let pos = (await fh.stat()).size;
    let text = '';
    while (pos > 0) {
      const len = Math.min(BLOCK, pos);
      pos -= len;
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, pos);
      text = buf.toString('utf8') + text;
      // n lines need n newlines before them (plus the trailing one) to be complete.
      if (text.split('\n').length > n + 1) break;
    }
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    if (pos > 0) lines.shift(); // possibly cut in the middle
    return lines.slice(-n);
  } finally {
    await fh.close();
  }
}

async function readStream(dir: string, stream: string, files: number, tail: number): Promise<LogLine[]> {
  const out: LogLine[] = [];
  // Newest file first; stop as soon as enough lines are collected.
  for (let i = 0; i < files && out.length < tail; i++) {
    const file = path.join(dir, i === 0 ? `${stream}.log` : `${stream}.log.${i}`);
    out.unshift(...(await lastLines(file, tail - out.length)).map(parseLogLine));
  }
  return out.slice(-tail);
}

/** Last `tail` lines of `streams`, merged in time order (stable for equal times). */
export async function tailLogs(
  dir: string,
  streams: string[],
  opts: { tail: number; files: number },
): Promise<LogLine[]> {
  if (opts.tail <= 0) return [];
  const per = await Promise.all(streams.map((s) => readStream(dir, s, opts.files, opts.tail)));
  const merged = per.flat();
  if (streams.length > 1) merged.sort((x, y) => (x.at < y.at ? -1 : x.at > y.at ? 1 : 0));
  return merged.slice(-opts.tail);
}
