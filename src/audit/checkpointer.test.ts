/**
 * The checkpoint signer over a real PGlite store: signs only when entries
 * were added, publishes outside the database (0600, key 0600), keeps its key
 * and its place across restarts, survives a torn last line, and refuses to
 * sign over a trail rewritten under it. Deleting the newest rows after a
 * stop is then seen by the verifier.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../model/audit.ts';
import { openStore } from '../store/open.ts';
import { SqlStore } from '../store/sql-store.ts';
import type { Store } from '../store/store.ts';
import { publicKeysFromPem } from './bundle.ts';
import { AuditCheckpointer } from './checkpointer.ts';
import { verifyAudit } from './verify.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-audit-cp-'));
let store: Store;
beforeAll(async () => {
  store = await openStore({ dataDir: path.join(dir, 'data') });
}, 60_000);
afterAll(async () => {
  await store?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const rec = (n: number): AuditRecord => ({
  at: new Date().toISOString(),
  actor: { kind: 'user', id: 'alice' },
  action: `a${n}`,
  outcome: 'ok',
});

describe('AuditCheckpointer', () => {
  const cpDir = path.join(dir, 'audit');

  it('signs the head only when it moved, and publishes it 0600 with a 0600 key', async () => {
    const c = new AuditCheckpointer({ store, dir: cpDir });
    expect(await c.checkpoint()).toBeUndefined();
    for (let i = 0; i < 5; i++) await store.appendAudit(rec(i));
    const first = await c.checkpoint();
    expect(first).toMatchObject({ seq: 5, keyId: c.key.keyId });
    expect(await c.checkpoint()).toBeUndefined();
    expect(c.published()).toEqual([first]);
    const mode = (f: string): string => (fs.statSync(path.join(cpDir, f)).mode & 0o777).toString(8);
    expect([mode('checkpoints.jsonl'), mode('checkpoint-key.pem'), mode('.')]).toEqual(['600', '600', '700']);
  });

  it('keeps its key and place across a restart and a torn last line, and signs what a stop leaves', async () => {
    fs.appendFileSync(path.join(cpDir, 'checkpoints.jsonl'), '{"seq":9,"ha');
    const c = new AuditCheckpointer({ store, dir: cpDir });
    for (let i = 0; i < 3; i++) await store.appendAudit(rec(i));
    await c.stop();
    expect(c.published().map((x) => x.seq)).toEqual([5, 8]);
    const keys = publicKeysFromPem(fs.readFileSync(path.join(cpDir, 'checkpoint-key.pub.pem'), 'utf8'));
    const entries = await store.listAudit({ limit: 10_000 });
    expect(verifyAudit(entries, c.published(), keys).ok).toBe(true);
    // The newest rows deleted after the stop: the last checkpoint names them.
    if (!(store instanceof SqlStore)) throw new Error('needs the SqlStore');
    await store.executor.query('DELETE FROM audit_entries WHERE seq >= 7');
    const r = verifyAudit(await store.listAudit({ limit: 10_000 }), c.published(), keys);
    expect(r.problems[0]).toMatchObject({ kind: 'truncated', seq: 7, toSeq: 8 });
  });

  it('refuses to sign over a trail rewritten under its last checkpoint', async () => {
    if (!(store instanceof SqlStore)) throw new Error('needs the SqlStore');
    // Rows 7 and 8 are gone (above): the head moved back, so the next entry does not continue 8.
    await store.executor.query(
      'UPDATE audit_head SET seq = 6, hash = (SELECT hash FROM audit_entries WHERE seq = 6)',
    );
    await store.appendAudit(rec(99));
    const c = new AuditCheckpointer({ store, dir: cpDir });
    await expect(c.checkpoint()).rejects.toThrow(
      /audit entry 8 is gone, though the last checkpoint signed: not signing/,
    );
  });
});
