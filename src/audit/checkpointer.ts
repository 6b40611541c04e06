/**
 * Signs the audit trail's head at intervals and publishes the checkpoint
 * outside the database: appended to `<dir>/checkpoints.jsonl` (0600), the
 * file a verifier is given. The signing key is `<dir>/checkpoint-key.pem`
 * (0600), created on first start; `<dir>/checkpoint-key.pub.pem` is the
 * public half to hand to auditors.
 *
 * Before signing, the entries since the last checkpoint are checked to
 * continue the chain it signed: a trail rewritten under it is reported and
 * never signed over.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AuditCheckpoint, AuditEntry, AuditQuery } from '../model/audit.ts';
import { entryHash, GENESIS } from './chain.ts';
import {
  checkpointKeyFromPem,
  newCheckpointKey,
  publicKeyPem,
  signCheckpoint,
  type CheckpointKey,
} from './checkpoint.ts';

export interface AuditSource {
  listAudit(query?: AuditQuery): Promise<AuditEntry[]>;
}

export interface CheckpointerOptions {
  store: AuditSource;
  /** Where the key and the published checkpoints live (outside the database). */
  dir: string;
  /** Sign at most this often when entries were added. @default 10000 */
  intervalMs?: number;
  onError?: (err: Error) => void;
  now?: () => Date;
}

const PAGE = 10_000;

export class AuditCheckpointer {
  readonly key: CheckpointKey;
  private last: { seq: number; hash: string };
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<AuditCheckpoint | undefined> | undefined;
  private readonly file: string;

  private readonly o: CheckpointerOptions;

  constructor(o: CheckpointerOptions) {
    this.o = o;
    fs.mkdirSync(o.dir, { recursive: true, mode: 0o700 });
    const keyFile = path.join(o.dir, 'checkpoint-key.pem');
    if (fs.existsSync(keyFile)) {
      this.key = checkpointKeyFromPem(fs.readFileSync(keyFile, 'utf8'));
    } else {
      this.key = newCheckpointKey();
      // 'wx': two control planes starting at once must not overwrite each other's key.
      fs.writeFileSync(keyFile, this.key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), {
        mode: 0o600,
        flag: 'wx',
      });
    }
    fs.writeFileSync(path.join(o.dir, 'checkpoint-key.pub.pem'), publicKeyPem(this.key), { mode: 0o644 });
    this.file = path.join(o.dir, 'checkpoints.jsonl');
    // A crash mid-append leaves a torn last line: end it, so the next checkpoint has a line of its own.
    if (fs.existsSync(this.file)) {
      const text = fs.readFileSync(this.file, 'utf8');
      if (text !== '' && !text.endsWith('\n')) fs.appendFileSync(this.file, '\n');
    }
    const published = readCheckpoints(this.file);
    const latest = published.at(-1);
    this.last = latest ? { seq: latest.seq, hash: latest.hash } : { seq: 0, hash: GENESIS };
  }

  /** The checkpoints published so far, oldest first. */
  published(): AuditCheckpoint[] {
    return readCheckpoints(this.file);
  }

  start(): void {
    const ms = this.o.intervalMs ?? 10_000;
    this.timer = setInterval(() => {
      this.checkpoint().catch((err: unknown) => this.o.onError?.(err as Error));
    }, ms);
    this.timer.unref();
  }

  /** Stop the timer and sign what is unsigned (so deleting the newest rows after a stop shows). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.checkpoint();
  }

  /** Sign the current head if anything was added since the last checkpoint; one at a time. */
  checkpoint(): Promise<AuditCheckpoint | undefined> {
    this.running ??= this.sign().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async sign(): Promise<AuditCheckpoint | undefined> {
    let prev = this.last;
    if (prev.seq > 0) {
      const [at] = await this.o.store.listAudit({ afterSeq: prev.seq - 1, limit: 1 });
      if (at?.seq !== prev.seq || at.hash !== prev.hash)
        throw new Error(
          `audit entry ${prev.seq} is ${at?.seq === prev.seq ? 'no longer the one' : 'gone, though'} the last checkpoint signed: not signing; run 'bulwark audit verify'`,
        );
    }
    for (;;) {
      const page = await this.o.store.listAudit({ afterSeq: prev.seq, limit: PAGE });
      for (const e of page) {
        if (
          e.seq !== prev.seq + 1 ||
          e.prevHash !== prev.hash ||
          e.body === undefined ||
          entryHash(e.prevHash, e.body) !== e.hash
        )
          throw new Error(
            `audit trail does not continue the last checkpoint at entry ${e.seq} (after ${prev.seq}): not signing; run 'bulwark audit verify'`,
          );
        prev = { seq: e.seq, hash: e.hash };
      }
      if (page.length < PAGE) break;
    }
    if (prev.seq === this.last.seq) return undefined;
    const c = signCheckpoint(this.key, prev.seq, prev.hash, (this.o.now?.() ?? new Date()).toISOString());
    fs.appendFileSync(this.file, JSON.stringify(c) + '\n', { mode: 0o600 });
    this.last = prev;
    return c;
  }
}

export function readCheckpoints(file: string): AuditCheckpoint[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as AuditCheckpoint];
      } catch {
        // A torn last line (a crash mid-append) is not a checkpoint; the next one follows it.
        return [];
      }
    });
}
