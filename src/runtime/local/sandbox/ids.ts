/**
 * Host-wide leases of the unprivileged uids and gids sandboxed instances run
 * as: one file per id under a lease directory (`/run/bulwark/ids` by default,
 * like the address leases), created with O_EXCL so two drivers never hand out
 * the same id, holding the owner key `<owner>\n<key>`. A lease whose owner (a
 * driver's state directory) no longer exists is stale and taken over: a test
 * or a control plane that was deleted without removing its instances leaks
 * nothing forever.
 */
import {
  existsSync,
  mkdirSync,
  openSync,
  closeSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';

export interface IdLeaseOptions {
  dir: string;
  /** Absolute state directory of the driver: leases name it so stale ones can be found. */
  owner: string;
  /** First id handed out. */
  base: number;
  /** How many ids the range holds. */
  count: number;
}

export class IdLeases {
  private readonly o: IdLeaseOptions;

  constructor(o: IdLeaseOptions) {
    this.o = o;
  }

  /** The id leased to `key` by this owner, leasing a free one when it has none. */
  acquire(key: string): number {
    const mine = this.find(key);
    if (mine !== undefined) return mine;
    mkdirSync(this.o.dir, { recursive: true, mode: 0o700 });
    const taken = new Set(this.list().map((l) => l.id));
    for (let id = this.o.base; id < this.o.base + this.o.count; id++) {
      if (taken.has(id) && !this.takeOverIfStale(id)) continue;
      try {
        const fd = openSync(this.file(id), 'wx', 0o600);
        writeSync(fd, `${this.o.owner}\n${key}\n`);
        closeSync(fd);
        return id;
      } catch {
        // another driver took it between the scan and the create: try the next
      }
    }
    throw new Error(
      `no free sandbox id in ${this.o.base}-${this.o.base + this.o.count - 1} (leases in ${this.o.dir})`,
    );
  }

  /** Give back the lease of `key` (idempotent). */
  release(key: string): void {
    const id = this.find(key);
    if (id !== undefined) rmSync(this.file(id), { force: true });
  }

  find(key: string): number | undefined {
    return this.list().find((l) => l.owner === this.o.owner && l.key === key)?.id;
  }

  private list(): { id: number; owner: string; key: string }[] {
    let names: string[];
    try {
      names = readdirSync(this.o.dir);
    } catch {
      return [];
    }
    const out: { id: number; owner: string; key: string }[] = [];
    for (const n of names) {
      const id = Number(n);
      if (!Number.isInteger(id) || id < this.o.base || id >= this.o.base + this.o.count) continue;
      try {
        const [owner = '', key = ''] = readFileSync(this.file(id), 'utf8').split('\n');
        out.push({ id, owner, key });
      } catch {
        // released meanwhile
      }
    }
    return out;
  }

  private takeOverIfStale(id: number): boolean {
    let owner: string;
    try {
      owner = readFileSync(this.file(id), 'utf8').split('\n')[0] ?? '';
    } catch {
      return true;
    }
    if (owner && existsSync(owner)) return false;
    rmSync(this.file(id), { force: true });
    return true;
  }

  private file(id: number): string {
    return path.join(this.o.dir, String(id));
  }
}
