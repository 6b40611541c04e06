/**
 * An export verified offline: intact, a file edited after export, a tenant's
 * view (other tenants' entries as hashes only, still proving order and
 * completeness), and keys given by the operator instead of the bundle's.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { AuditCheckpoint, AuditEntry, AuditRecord } from '../model/audit.ts';
import { verifyBundle, writeBundle, BundleError } from './bundle.ts';
import { chainEntry } from './chain.ts';
import { newCheckpointKey, publicKeyPem, signCheckpoint } from './checkpoint.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-audit-bundle-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const key = newCheckpointKey();
const rec = (n: number): AuditRecord => ({
  at: new Date(Date.UTC(2026, 11, 8, 1, 0, n)).toISOString(),
  actor: { kind: 'user', id: `u${n}` },
  action: 'apply',
  tenant: n % 2 ? 'retail' : 'markets',
  outcome: 'ok',
});
const entries: AuditEntry[] = [];
for (let i = 1; i <= 40; i++) entries.push(chainEntry(entries.at(-1), rec(i)));
const checkpoints: AuditCheckpoint[] = [
  signCheckpoint(key, 20, entries[19]!.hash),
  signCheckpoint(key, 40, entries[39]!.hash),
];

describe('audit bundle', () => {
  it('verifies an intact export, with 0600 files', () => {
    const b = path.join(dir, 'all');
    const m = writeBundle(b, { entries, checkpoints, publicKeys: [key.publicKey] });
    expect(m).toMatchObject({ entries: 40, redacted: 0, checkpoints: 2 });
    const r = verifyBundle(b);
    expect(r).toMatchObject({ ok: true, entries: 40, keysFrom: 'bundle', keyIds: [key.keyId] });
    for (const f of fs.readdirSync(b))
      expect((fs.statSync(path.join(b, f)).mode & 0o777).toString(8)).toBe('600');
  });

  it("a tenant's export shows only its entries in full and still proves the others are all there", () => {
    const b = path.join(dir, 'retail');
    const m = writeBundle(b, { entries, checkpoints, publicKeys: [key.publicKey], tenant: 'retail' });
    expect(m).toMatchObject({ tenant: 'retail', entries: 40, redacted: 20 });
    const text = fs.readFileSync(path.join(b, 'entries.jsonl'), 'utf8');
    expect(text).not.toContain('markets');
    expect(verifyBundle(b, publicKeyPem(key)).ok).toBe(true);
    // Dropping one of the other tenant's (redacted) entries is still seen.
    const lines = text.trim().split('\n');
    const cut = lines.filter((l) => (JSON.parse(l) as AuditEntry).seq !== 10);
    const b2 = path.join(dir, 'retail-cut');
    writeBundle(b2, {
      entries: cut.map((l) => JSON.parse(l) as AuditEntry),
      checkpoints,
      publicKeys: [key.publicKey],
    });
    expect(verifyBundle(b2).problems[0]).toMatchObject({ kind: 'removed', seq: 10 });
  });

  it('names a file changed after export, and refuses what is not a bundle', () => {
    const b = path.join(dir, 'edited');
    writeBundle(b, { entries, checkpoints, publicKeys: [key.publicKey] });
    const f = path.join(b, 'entries.jsonl');
    fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace('u7', 'u8'));
    expect(() => verifyBundle(b)).toThrow(
      /entries\.jsonl was changed after export: its SHA-256 is [0-9a-f]{64}/,
    );
    expect(() => verifyBundle(dir)).toThrow(BundleError);
    expect(() => verifyBundle(dir)).toThrow(/no manifest\.json/);
  });

  it("with the operator's key, a bundle re-signed with another key fails", () => {
    const mallory = newCheckpointKey();
    const b = path.join(dir, 'resigned');
    const forged = [signCheckpoint(mallory, 40, entries[39]!.hash)];
    writeBundle(b, { entries, checkpoints: forged, publicKeys: [mallory.publicKey] });
    expect(verifyBundle(b).ok).toBe(true);
    const r = verifyBundle(b, publicKeyPem(key));
    expect(r.ok).toBe(false);
    expect(r.problems[0]).toMatchObject({ kind: 'bad-checkpoint', seq: 40 });
  });
});

describe('bulwark audit verify --bundle (offline)', () => {
  async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    const { main } = await import('../cli/main.ts');
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(args, { out: (s) => out.push(s), err: (s) => err.push(s) });
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  it('says intact, or TAMPERED with the first problem, and asks for the operator key when none is given', async () => {
    const b = path.join(dir, 'cli');
    writeBundle(b, { entries, checkpoints: checkpoints.slice(0, 1), publicKeys: [key.publicKey] });
    const ok = await cli('audit', 'verify', '--bundle', b);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/^intact: 40 entries \(last seq 40\), 1 of 1 checkpoints signed by ed25519:/);
    expect(ok.out).toMatch(/20 entries after the latest checkpoint \(seq 20\) are not covered/);
    expect(ok.err).toMatch(/pass --keys FILE/);
    const keys = path.join(dir, 'operator.pem');
    fs.writeFileSync(keys, publicKeyPem(key));
    const cut = path.join(dir, 'cli-cut');
    writeBundle(cut, {
      entries: entries.filter((e) => e.seq !== 5),
      checkpoints,
      publicKeys: [key.publicKey],
    });
    const bad = await cli('audit', 'verify', '--bundle', cut, '--keys', keys);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/^TAMPERED: entry 5 was removed/);
    expect(bad.err).toBe('');
    const none = await cli('audit', 'verify', '--bundle', path.join(dir, 'nope'));
    expect(none).toMatchObject({ code: 2, err: expect.stringContaining('no such directory') as unknown });
  });
});
