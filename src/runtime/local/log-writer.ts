/**
 * Line-oriented log file writer with size-based rotation, used by the shim.
 * Each line is stored as `<ISO time> <stream> <text>` (like the CRI log
 * format) so lines of stdout and stderr can be merged in time order later.
 *
 * A failing disk must never take the instance down: write errors (ENOSPC,
 * EIO, ...) drop the line, count it and keep going; the file is reopened on
 * the next line so logging resumes once space is freed.
 */
import { closeSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';

export interface RotatingLogOptions {
  dir: string;
  /** File name stem, e.g. "stdout" -> stdout.log, stdout.log.1, ... */
  stream: string;
  /** @default 10 MiB */
  maxBytes?: number;
  /** Files kept, current included. @default 3 */
  files?: number;
  /** Clock, for tests. */
  now?: () => Date;
}

/** Longest partial line held in memory before it is written as a line of its own. */
const MAX_PARTIAL_BYTES = 16 * 1024;

export class RotatingLog {
  readonly file: string;
  droppedLines = 0;
  lastError: string | undefined;
  private readonly opts: Required<Omit<RotatingLogOptions, 'now'>> & { now: () => Date };
  private fd: number | undefined;
  private size = 0;
  private partial = '';

  constructor(opts: RotatingLogOptions) {
    this.opts = {
      maxBytes: 10 * 1024 * 1024,
      files: 3,
      now: () => new Date(),
      ...opts,
    };
    this.file = path.join(opts.dir, `${opts.stream}.log`);
  }

  /** Feed raw output; complete lines are written, a trailing partial line is held. */
  write(chunk: string): void {
    const text = this.partial + chunk;
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) this.writeLine(line);
    if (this.partial.length > MAX_PARTIAL_BYTES) {
      this.writeLine(this.partial);
      this.partial = '';
    }
  }

  /** Write any held partial line and close the file. */
  close(): void {
    if (this.partial) this.writeLine(this.partial);
    this.partial = '';
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch {
        // closing a file on a broken disk can fail; nothing left to do
      }
      this.fd = undefined;
    }
  }

  private writeLine(text: string): void {
    const line = `${this.opts.now().toISOString()} ${this.opts.stream} ${text}\n`;
    const bytes = Buffer.byteLength(line);
    try {
      if (this.fd === undefined) this.open();
      if (this.size > 0 && this.size + bytes > this.opts.maxBytes) this.rotate();
      writeSync(this.fd as number, line);
      this.size += bytes;
    } catch (err) {
      this.droppedLines++;
      this.lastError = `${(err as NodeJS.ErrnoException).code ?? 'error'}: ${(err as Error).message}`;
      // Reopen next time: the fd may point at a file we could not finish.
      if (this.fd !== undefined) {
        try {
          closeSync(this.fd);
        } catch {
          // ignore, see above
        }
        this.fd = undefined;
      }
    }
  }

  private open(): void {
    this.fd = openSync(this.file, 'a', 0o600); // what an instance prints may hold secrets
    try {
      this.size = statSync(this.file).size;
    } catch {
      this.size = 0;
    }
  }

  private rotate(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    const n = this.opts.files;
    try {
      unlinkSync(`${this.file}.${n - 1}`);
    } catch {
      // not there yet
    }
    for (let i = n - 2; i >= 1; i--) {
      try {
        renameSync(`${this.file}.${i}`, `${this.file}.${i + 1}`);
      } catch {
        // gap in the sequence: fine
      }
    }
    if (n > 1) renameSync(this.file, `${this.file}.1`);
    else unlinkSync(this.file);
    this.open();
  }
}
