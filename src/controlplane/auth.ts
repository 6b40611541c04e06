/**
 * Bearer-token authentication and scopes. The first start creates an admin
 * token, shows it once and keeps only its SHA-256: a stolen database does not
 * yield a usable credential.
 *
 * Every route declares what it needs in its Fastify options,
 * `config: { auth: 'public' | { scope } }`; a route that declares nothing
 * needs `admin`, so forgetting the declaration fails closed. `authorize()` is
 * the whole per-request decision (401 for a missing, unknown or revoked
 * token, 403 for a scope that is not enough).
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { TOKEN_SCOPES, type Store, type TokenRecord, type TokenScope } from '../store/store.ts';
import { ApiError } from './errors.ts';

export const TOKEN_PREFIX = 'bwk_';

/** `admin`: every route. `agent`: only the routes a node agent calls (report POST, inventory GET). */
export type Scope = TokenScope;
export const SCOPES: readonly Scope[] = TOKEN_SCOPES;

/** What a route declares: no token at all, or a token with this scope. */
export type RouteAuth = 'public' | { scope: Scope };
export const DEFAULT_ROUTE_AUTH: RouteAuth = { scope: 'admin' };

/** Who made the request, set on `req.principal` by the auth hook. */
export interface Principal {
  id: string;
  name: string;
  scope: Scope;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** @default { scope: 'admin' } */
    auth?: RouteAuth;
  }
  interface FastifyRequest {
    principal?: Principal;
  }
}

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
        scope: 'admin',
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
    scope: 'admin',
  });
  return secret;
}

/** A new token of `scope`; the secret is returned once and only its hash is stored. */
export async function createToken(
  store: Store,
  o: { name: string; scope: Scope },
): Promise<{ secret: string; record: TokenRecord }> {
  const secret = newTokenSecret();
  const record: TokenRecord = {
    id: randomUUID(),
    name: o.name,
    hash: hashToken(secret),
    createdAt: new Date().toISOString(),
    scope: o.scope,
  };
  await store.addToken(record);
  return { secret, record };
}

/** Parse `Authorization: Bearer <token>`; undefined when absent or malformed. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

export type TokenCheck =
  { ok: true; principal: Principal } | { ok: false; reason: 'unknown' | 'revoked'; message: string };

/** Look a secret up and say whether it is live, and if not, why. */
export async function checkToken(store: Store, secret: string): Promise<TokenCheck> {
  const hash = hashToken(secret);
  const rec = await store.findTokenByHash(hash);
  // The lookup is by hash already; the constant-time compare guards against
  // a store implementation that might match loosely.
  if (rec === undefined || !timingSafeEqual(Buffer.from(rec.hash), Buffer.from(hash))) {
    return { ok: false, reason: 'unknown', message: 'unknown token' };
  }
  if (rec.revokedAt !== undefined) {
    return {
      ok: false,
      reason: 'revoked',
      message:
        `token '${rec.name}' (${rec.id}) was revoked at ${rec.revokedAt}` +
        (rec.revokedReason ? `: ${rec.revokedReason}` : ''),
    };
  }
  return { ok: true, principal: { id: rec.id, name: rec.name, scope: rec.scope } };
}

/** The principal of a live token; undefined for an unknown or revoked one. */
export async function verifyToken(store: Store, secret: string): Promise<Principal | undefined> {
  const c = await checkToken(store, secret);
  return c.ok ? c.principal : undefined;
}

/** `admin` satisfies every scope; any other scope only itself. */
export function scopeAllows(have: Scope, need: Scope): boolean {
  return have === 'admin' || have === need;
}

/** A route's declaration from its `config` (`req.routeOptions.config`); absent or malformed means admin. */
export function routeAuthOf(config: unknown): RouteAuth {
  const auth = (config as { auth?: unknown } | undefined)?.auth;
  if (auth === 'public') return 'public';
  const scope = (auth as { scope?: unknown } | undefined)?.scope;
  if (typeof scope === 'string' && (SCOPES as readonly string[]).includes(scope))
    return { scope: scope as Scope };
  return DEFAULT_ROUTE_AUTH;
}

/**
 * The whole decision for one request: undefined for a public route, the
 * principal when the token is live and its scope is enough, otherwise an
 * ApiError (401 missing/unknown/revoked, 403 scope) naming the fix.
 */
export async function authorize(
  store: Store,
  authorizationHeader: string | undefined,
  need: RouteAuth,
): Promise<Principal | undefined> {
  if (need === 'public') return undefined;
  const secret = bearerToken(authorizationHeader);
  if (!secret) {
    throw new ApiError(401, 'Unauthorized', 'missing bearer token', [
      {
        path: 'headers.authorization',
        message: 'absent',
        fix: 'send "Authorization: Bearer <token>" (bulwark CLI: --token, BULWARK_TOKEN or the config file)',
      },
    ]);
  }
  const check = await checkToken(store, secret);
  if (!check.ok && check.reason === 'revoked') {
    throw new ApiError(401, 'Unauthorized', 'token revoked', [
      {
        path: 'headers.authorization',
        message: check.message,
        fix: 'ask an admin for a new token (bulwark tokens create --scope agent --name NAME)',
      },
    ]);
  }
  if (!check.ok) {
    throw new ApiError(401, 'Unauthorized', 'invalid token', [
      {
        path: 'headers.authorization',
        message: check.message,
        fix: 'use the token printed on first start, or one from bulwark tokens create',
      },
    ]);
  }
  if (!scopeAllows(check.principal.scope, need.scope)) {
    throw new ApiError(
      403,
      'Forbidden',
      `token '${check.principal.name}' has scope '${check.principal.scope}'; this route needs '${need.scope}'`,
      [
        {
          path: 'headers.authorization',
          message: `scope '${check.principal.scope}' is not enough`,
          fix: `use a token with scope '${need.scope}'`,
        },
      ],
    );
  }
  return check.principal;
}
