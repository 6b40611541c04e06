/**
 * The self-contained export a third party verifies offline: the entries (a
 * tenant's own in full, everyone else's as hashes only), the signed
 * checkpoints, the public keys and the procedure, with a manifest of file
 * digests. `bulwark audit verify --bundle DIR` checks one without a server;
 * docs/audit.md describes how to do it with any SHA-256 and Ed25519 tool.
 */
import { createPublicKey, hash, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { AuditCheckpoint, AuditEntry, AuditRecord } from '../model/audit.ts';
import { keyIdOf } from './checkpoint.ts';
import { verifyAudit, type AuditReport } from './verify.ts';

export const BUNDLE_FORMAT = 'bulwark-audit-bundle/1';

export interface BundleManifest {
  format: typeof BUNDLE_FORMAT;
  createdAt: string;
  /** The tenant whose entries are shown in full (absent: all of them). */
  tenant?: string;
  entries: number;
  redacted: number;
  checkpoints: number;
  /** SHA-256 (hex) of each file of the bundle but this one. */
  files: Record<string, string>;
}

const FILES = {
  entries: 'entries.jsonl',
  checkpoints: 'checkpoints.jsonl',
  keys: 'public-keys.pem',
} as const;

const VERIFY_MD = `# Verifying this Bulwark audit bundle

1. Check manifest.json's \`files\`: the SHA-256 of each file.
2. For each line of entries.jsonl, in order (seq 1, 2, ...): \`prevHash\` must
   equal the previous entry's \`hash\` (64 zeros for seq 1), and, when \`body\`
   is present, \`hash\` must be hex(SHA-256(prevHash + "\\n" + body)) over the
   UTF-8 bytes. An entry without \`body\` belongs to another tenant: only its
   links are checked.
3. For each line of checkpoints.jsonl: the Ed25519 signature (base64) must
   verify, with the key of public-keys.pem whose id is \`keyId\`, over the
   canonical JSON \`{"at":...,"hash":...,"keyId":...,"seq":...}\` (keys
   sorted, no spaces); the entry with that \`seq\` must have that \`hash\`.
   A checkpoint past the last entry means the newest entries were removed.
4. Obtain the public key's fingerprint from the platform operator through
   another channel: a bundle can carry any key.

\`bulwark audit verify --bundle <dir>\` does all of this.
`;

/** Only the tenant's own entries keep their body; `undefined` tenant: everything. */
export function redactFor(entries: readonly AuditEntry[], tenant: string | undefined): AuditEntry[] {
  if (tenant === undefined) return entries.map((e) => ({ ...e }));
  return entries.map((e) => {
    if (e.body === undefined) return { ...e };
    const rec = JSON.parse(e.body) as AuditRecord;
    return rec.tenant === tenant ? { ...e } : { seq: e.seq, prevHash: e.prevHash, hash: e.hash };
  });
}

export function writeBundle(
  dir: string,
  o: {
    entries: readonly AuditEntry[];
    checkpoints: readonly AuditCheckpoint[];
    publicKeys: readonly KeyObject[];
    tenant?: string;
    now?: Date;
  },
): BundleManifest {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const entries = redactFor(o.entries, o.tenant);
  const texts: Record<string, string> = {
    [FILES.entries]: entries.map((e) => JSON.stringify(e)).join('\n') + (entries.length ? '\n' : ''),
    [FILES.checkpoints]:
      o.checkpoints.map((c) => JSON.stringify(c)).join('\n') + (o.checkpoints.length ? '\n' : ''),
    [FILES.keys]: o.publicKeys.map((k) => k.export({ type: 'spki', format: 'pem' }).toString()).join(''),
    'VERIFY.md': VERIFY_MD,
  };
  const files: Record<string, string> = {};
  for (const [name, text] of Object.entries(texts)) {
    fs.writeFileSync(path.join(dir, name), text, { mode: 0o600 });
    files[name] = hash('sha256', text, 'hex');
  }
  const manifest: BundleManifest = {
    format: BUNDLE_FORMAT,
    createdAt: (o.now ?? new Date()).toISOString(),
    ...(o.tenant !== undefined ? { tenant: o.tenant } : {}),
    entries: entries.length,
    redacted: entries.filter((e) => e.body === undefined).length,
    checkpoints: o.checkpoints.length,
    files,
  };
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n', {
    mode: 0o600,
  });
  return manifest;
}

export class BundleError extends Error {}

function readJsonl<T>(file: string): T[] {
  const text = fs.readFileSync(file, 'utf8');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l) as T;
      } catch (err) {
        throw new BundleError(`${path.basename(file)} line ${i + 1} is not JSON (${(err as Error).message})`);
      }
    });
}

/** Every public key in a PEM file, by key id. */
export function publicKeysFromPem(pem: string): Map<string, KeyObject> {
  const keys = new Map<string, KeyObject>();
  for (const block of pem.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g) ?? []) {
    const k = createPublicKey(block);
    if (k.asymmetricKeyType === 'ed25519') keys.set(keyIdOf(k), k);
  }
  return keys;
}

export interface BundleReport extends AuditReport {
  manifest: BundleManifest;
  keyIds: string[];
}

/**
 * Check a bundle: the manifest's file digests, then the chain and the
 * checkpoints. `trustedKeys` (PEM) are the keys the reader obtained from the
 * operator; without them the bundle's own keys are used and the report says so.
 */
export function verifyBundle(
  dir: string,
  trustedKeysPem?: string,
): BundleReport & { keysFrom: 'trusted' | 'bundle' } {
  const mf = path.join(dir, 'manifest.json');
  if (!fs.existsSync(mf))
    throw new BundleError(`${dir}: no manifest.json; give the directory 'bulwark audit export' wrote`);
  let manifest: BundleManifest;
  try {
    manifest = JSON.parse(fs.readFileSync(mf, 'utf8')) as BundleManifest;
  } catch (err) {
    throw new BundleError(`${mf} is not JSON (${(err as Error).message})`);
  }
  if (manifest.format !== BUNDLE_FORMAT)
    throw new BundleError(`${mf}: format '${String(manifest.format)}' is not ${BUNDLE_FORMAT}`);
  for (const [name, digest] of Object.entries(manifest.files ?? {})) {
    const f = path.join(dir, path.basename(name));
    if (!fs.existsSync(f))
      throw new BundleError(`${name} is listed in manifest.json but missing from the bundle`);
    const actual = hash('sha256', fs.readFileSync(f, 'utf8'), 'hex');
    if (actual !== digest)
      throw new BundleError(
        `${name} was changed after export: its SHA-256 is ${actual}, manifest.json says ${digest}`,
      );
  }
  const entries = readJsonl<AuditEntry>(path.join(dir, FILES.entries));
  const checkpoints = readJsonl<AuditCheckpoint>(path.join(dir, FILES.checkpoints));
  const keys = publicKeysFromPem(trustedKeysPem ?? fs.readFileSync(path.join(dir, FILES.keys), 'utf8'));
  const report = verifyAudit(entries, checkpoints, keys);
  return { ...report, manifest, keyIds: [...keys.keys()], keysFrom: trustedKeysPem ? 'trusted' : 'bundle' };
}
