/**
 * Follows an instance's log files (written by RotatingLog) from a point in
 * time on: each `poll()` returns the complete lines appended since the last
 * one, per stream in file order.
 *
 * Positions are kept as an open file descriptor plus offset, so a rotation
 * (rename to `.1`, new file) neither loses the tail of the old file nor
 * replays anything: the old descriptor is drained, files rotated past since
 * (found by inode) are read whole, then the new live file from its start.
 * A restart of the instance appends to the same live file, so it needs no
 * special case.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseLogLine } from './log-reader.ts';

export type LogStream = 'stdout' | 'stderr';

export interface FollowedLine {
  stream: LogStream;
  text: string;
  /** Epoch ms the shim wrote the line (its timestamp), or when it was read if unparsable. */
  at: number;
}

/** Most bytes one poll reads per stream: a burst is delivered over several polls, never held whole in memory. */
const POLL_BUDGET_BYTES = 4 * 1024 * 1024;
const CHUNK = 64 * 1024;

function inode(file: string): number | undefined {
  try {
    return statSync(file).ino;
  } catch {
    return undefined;
  }
}

class StreamTail {
  private readonly file: string;
  private fd: number | undefined;
  private ino: number | undefined;
  private offset = 0;
  private carry = '';
  private readonly stream: LogStream;
  private readonly files: number;

  constructor(dir: string, stream: LogStream, files: number) {
    this.stream = stream;
    this.files = files;
    this.file = path.join(dir, `${stream}.log`);
  }

  /** Position at the current end of the live file; a file that does not exist yet is read from its start. */
  startAtEnd(): void {
    if (!this.openLive()) return;
    this.offset = fstatSync(this.fd!).size;
  }

  close(): void {
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch {
        // already closed
      }
    }
    this.fd = undefined;
    this.ino = undefined;
  }

  poll(): string[] {
    const out: string[] = [];
    let budget = POLL_BUDGET_BYTES;
    if (this.fd === undefined) {
      if (!this.openLive()) return out;
      this.offset = 0;
    }
    budget -= this.drain(out, budget);
    const live = inode(this.file);
    if (live === this.ino) return out;
    // Rotated (or the directory is gone). The writer closes a file before renaming it, so
    // after this drain the old file is complete.
    budget -= this.drain(out, budget);
    if (budget <= 0) return out; // finish the old file first, next poll
    this.flushCarry(out);
    // Files rotated past since the last poll sit between ours and the live one, newest at .1.
    let ours = this.files;
    const rotated: (number | undefined)[] = [];
    for (let k = 1; k < this.files; k++) {
      rotated[k] = inode(`${this.file}.${k}`);
      if (rotated[k] === this.ino && ours === this.files) ours = k;
    }
    for (let k = ours - 1; k >= 1; k--) {
      const ino = rotated[k];
      if (ino === undefined) continue;
      this.close();
      try {
        this.fd = openSync(`${this.file}.${k}`, 'r');
      } catch {
        continue; // rotated away meanwhile: those lines are gone
      }
      this.ino = fstatSync(this.fd).ino;
      this.offset = 0;
      if (this.ino !== ino) continue; // shifted by another rotation meanwhile; skip rather than replay
      this.drain(out, Number.MAX_SAFE_INTEGER);
      this.flushCarry(out);
    }
    this.close();
    if (this.openLive()) {
      this.offset = 0;
      this.drain(out, Math.max(budget, CHUNK));
    }
    return out;
  }

  private openLive(): boolean {
    try {
      this.fd = openSync(this.file, 'r');
    } catch {
      return false;
    }
    this.ino = fstatSync(this.fd).ino;
    this.carry = '';
    return true;
  }

  /** Read complete lines from the current descriptor up to `budget` bytes; returns bytes read. */
  private drain(out: string[], budget: number): number {
    if (this.fd === undefined) return 0;
    let read = 0;
    const buf = Buffer.alloc(CHUNK);
    while (read < budget) {
      let n: number;
      try {
        n = readSync(this.fd, buf, 0, Math.min(CHUNK, budget - read), this.offset);
      } catch {
        break;
      }
      if (n <= 0) break;
      this.offset += n;
      read += n;
      const lines = (this.carry + buf.toString('utf8', 0, n)).split('\n');
      this.carry = lines.pop() ?? '';
      out.push(...lines);
    }
    return read;
  }

  /** A file that will not grow any more: its unterminated last line (the writer died mid-line) still counts. */
  private flushCarry(out: string[]): void {
    if (this.carry) out.push(this.carry);
    this.carry = '';
  }
}

/** Follows stdout and stderr of one instance directory from the moment `start()` is called. */
export class LogFollower {
  private readonly tails: StreamTail[];
  private readonly streams: LogStream[] = ['stdout', 'stderr'];

  constructor(dir: string, files: number) {
    this.tails = this.streams.map((s) => new StreamTail(dir, s, files));
  }

  start(): void {
    for (const t of this.tails) t.startAtEnd();
  }

  /** New lines since the last poll: per stream in file order, the two streams merged by timestamp. */
  poll(): FollowedLine[] {
    const now = Date.now();
    const [out, err] = this.tails.map((t, i) => {
      const stream = this.streams[i]!;
      return t.poll().map((raw): FollowedLine => {
        const l = parseLogLine(raw);
        const at = Date.parse(l.at);
        return { stream, text: l.stream === stream ? l.text : raw, at: Number.isFinite(at) ? at : now };
      });
    }) as [FollowedLine[], FollowedLine[]];
    if (!err.length) return out;
    if (!out.length) return err;
    // A merge, not a sort: a clock step backwards must not reorder lines within a stream.
    const merged: FollowedLine[] = [];
    let i = 0;
    let j = 0;
    while (i < out.length || j < err.length) {
      if (j >= err.length || (i < out.length && out[i]!.at <= err[j]!.at)) merged.push(out[i++]!);
      else merged.push(err[j++]!);
    }
    return merged;
  }

  close(): void {
    for (const t of this.tails) t.close();
  }
}
