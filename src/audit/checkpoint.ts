/**
 * Signed checkpoints (Ed25519). The signing key lives in a file beside the
 * data directory, never in the database: someone who can rewrite the audit
 * rows cannot also sign a checkpoint that agrees with them.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import type { AuditCheckpoint } from '../model/audit.ts';
import { canonicalJson } from '../util/canonical-json.ts';

export interface CheckpointKey {
  keyId: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** `ed25519:` and the first 16 hex digits of SHA-256 over the raw public key. */
export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return `ed25519:${createHash('sha256').update(der).digest('hex').slice(0, 16)}`;
}

export function newCheckpointKey(): CheckpointKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { keyId: keyIdOf(publicKey), privateKey, publicKey };
}

export function checkpointKeyFromPem(pem: string): CheckpointKey {
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'ed25519')
    throw new Error(
      `audit checkpoint key is ${privateKey.asymmetricKeyType ?? 'not an asymmetric key'}; expected an Ed25519 private key (PEM, PKCS#8)`,
    );
  const publicKey = createPublicKey(privateKey);
  return { keyId: keyIdOf(publicKey), privateKey, publicKey };
}

/** The public key as a verifier is given it (PEM, SPKI). */
export function publicKeyPem(key: CheckpointKey): string {
  return key.publicKey.export({ type: 'spki', format: 'pem' }).toString();
}

function signedBytes(c: Omit<AuditCheckpoint, 'signature'>): Buffer {
  return Buffer.from(canonicalJson({ seq: c.seq, hash: c.hash, at: c.at, keyId: c.keyId }));
}

export function signCheckpoint(
  key: CheckpointKey,
  seq: number,
  hash: string,
  at: string = new Date().toISOString(),
): AuditCheckpoint {
  const c = { seq, hash, at, keyId: key.keyId };
  return { ...c, signature: sign(null, signedBytes(c), key.privateKey).toString('base64') };
}

/** Whether the checkpoint was signed by one of these public keys (by key id), unchanged. */
export function checkpointSignatureValid(
  c: AuditCheckpoint,
  publicKeys: ReadonlyMap<string, KeyObject>,
): boolean {
  const key = publicKeys.get(c.keyId);
  if (!key || typeof c.signature !== 'string') return false;
  try {
    return verify(null, signedBytes(c), key, Buffer.from(c.signature, 'base64'));
  } catch {
    return false;
  }
}
