/**
 * Append-only JSON-lines file shared by every replica of a service on this
 * machine. Each append is one write() on an O_APPEND descriptor, so lines of
 * concurrent writers never interleave; each replica tails the file to see
 * the others' lines.
 */
import { mkdirSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

export class Journal<T> {
  readonly file: string;
  #offset = 0;
  #partial = '';

  constructor(file: string) {
    this.file = file;
    mkdirSync(path.dirname(file), { recursive: true });
  }

  /** Lines written since the last call (by any process), parsed. */
  async readNew(): Promise<T[]> {
    let fh: FileHandle;
    try {
      fh = await open(this.file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    try {
      const out: T[] = [];
      const buf = Buffer.alloc(1 << 20);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, this.#offset);
        if (bytesRead === 0) break;
        this.#offset += bytesRead;
        const text = this.#partial + buf.subarray(0, bytesRead).toString('utf8');
        const lines = text.split('\n');
        // A line without its newline is still being written: keep it for next time.
        this.#partial = lines.pop() ?? '';
        for (const l of lines) if (l) out.push(JSON.parse(l) as T);
      }
      return out;
    } finally {
      await fh.close();
    }
  }

  async append(items: readonly T[]): Promise<void> {
    if (items.length === 0) return;
    const fh = await open(this.file, 'a');
    try {
      await fh.write(items.map((i) => `${JSON.stringify(i)}\n`).join(''));
    } finally {
      await fh.close();
    }
  }
}

/** Serialise async sections inside one process (catch up + check + append). */
export class Mutex {
  #tail: Promise<unknown> = Promise.resolve();
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn, fn);
    this.#tail = result.catch(() => undefined);
    return await result;
  }
}

export function dataDir(env = process.env): string {
  // Under Bulwark each project gets its own data directory, shared by its instances on the site.
  return (
    env.BANK_DATA_DIR ||
    env.BULWARK_PROJECT_DATA_DIR ||
    path.join(process.env.TMPDIR || '/tmp', 'bulwark-bank')
  );
}
