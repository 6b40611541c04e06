/**
 * Bearer-token authentication. The first start creates an admin token, shows
 * it once and keeps only its SHA-256: a stolen database does not yield a
 * usable credential.
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Store } from '../store/store.ts';

export const TOKEN_PREFIX = 'bwk_';

export function hashToken(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

export function newTokenSecret(): string {
  return TOKEN_PREFIX + randomBytes(24).toString('base64url');
}

/**
 * Ensure at least one token exists. Returns the new secret when one was
 * created (so the caller can show it exactly once), otherwise undefined.
 * `bootstrapToken` lets automation (tests, CI) choose the first secret.
 */
export async function ensureInitialToken(store: Store, bootstrapToken?: string): Promise<string | undefined> {
  if (bootstrapToken !== undefined) {
    if (!bootstrapToken.startsWith(TOKEN_PREFIX) || bootstrapToken.length < 20) {
      throw new Error(
        `bootstrap token must start with '${TOKEN_PREFIX}' and be at least 20 characters; generate one with: node -e "console.log('bwk_'+require('crypto').randomBytes(24).toString('base64url'))"`,
      );
    }
    const hash = hashToken(bootstrapToken);
    if (!(await store.findTokenByHash(hash))) {
      await store.addToken({
        id: randomUUID(),
        name: 'bootstrap',
        hash,
        createdAt: new Date().toISOString(),
      });
    }
    return undefined;
  }
  if ((await store.countTokens()) > 0) return undefined;
  const secret = newTokenSecret();
  await store.addToken({
    id: randomUUID(),
    name: 'admin',
    hash: hashToken(secret),
    createdAt: new Date().toISOString(),
  });
  return secret;
}

/** Parse `Authorization: Bearer <token>`; undefined when absent or malformed. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

export async function verifyToken(store: Store, secret: string): Promise<boolean> {
  const hash = hashToken(secret);
  const rec = await store.findTokenByHash(hash);
  // The lookup is by hash already; the constant-time compare guards against
  // a store implementation that might match loosely.
  return rec !== undefined && timingSafeEqual(Buffer.from(rec.hash), Buffer.from(hash));
}
