/**
 * Agent tokens, managed by an admin:
 *   POST /api/v1/tokens                 {name, scope: 'agent'} -> the token with its secret (shown only here)
 *   GET  /api/v1/tokens                 every token (live and revoked), never a secret or a hash
 *   POST /api/v1/tokens/{id}/revoke     {reason?} -> the token, revoked; it is refused with 401 from now on
 * Only `agent` tokens are created and revoked here: admin tokens come from the
 * first start (and the identity system of a later issue), so an admin cannot
 * lock everyone out through this API.
 */
import type { FastifyInstance } from 'fastify';
import type { TokenRecord } from '../../store/store.ts';
import { ConflictError } from '../../store/store.ts';
import { createToken } from '../auth.ts';
import { ApiError, badRequest, notFound } from '../errors.ts';
import type { ApiDeps } from './deps.ts';

/** Lowercase, digits, dots and dashes: a node or host name fits, so tokens can be named after nodes. */
export const TOKEN_NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;

const tokenView = {
  type: 'object',
  required: ['id', 'name', 'scope', 'createdAt'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    scope: { type: 'string', enum: ['admin', 'agent'] },
    createdAt: { type: 'string', format: 'date-time' },
    revokedAt: { type: 'string', format: 'date-time' },
    revokedReason: { type: 'string' },
  },
} as const;

/** What the API shows of a token: never the hash (no caller needs it; it stays in the store). */
function view(t: TokenRecord): Omit<TokenRecord, 'hash'> {
  const { hash: _hash, ...rest } = t;
  return rest;
}

export function registerTokenRoutes(app: FastifyInstance, deps: Pick<ApiDeps, 'store'>): void {
  app.post<{ Body: { name: string; scope: string } }>('/api/v1/tokens', {
    schema: {
      tags: ['tokens'],
      summary: 'Create an agent token (admin only); the secret is in this answer and nowhere else',
      body: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'scope'],
        properties: { name: { type: 'string' }, scope: { type: 'string' } },
      },
      response: {
        201: {
          ...tokenView,
          required: [...tokenView.required, 'secret'],
          properties: { ...tokenView.properties, secret: { type: 'string' } },
        },
      },
    },
    handler: async (req, reply) => {
      const { name, scope } = req.body;
      if (scope !== 'agent') {
        throw badRequest(`scope '${scope}' cannot be created here`, [
          {
            path: 'body.scope',
            message: `'${scope}' is not a scope this route creates`,
            fix: "use 'agent' (post reports and read inventory); admin tokens come from the first start",
          },
        ]);
      }
      if (!TOKEN_NAME.test(name)) {
        throw badRequest(`invalid token name '${name}'`, [
          {
            path: 'body.name',
            message:
              'must be 1-63 lowercase letters, digits, dots or dashes, starting and ending with a letter or digit',
            fix: 'name it after the node or host that will use it, e.g. node-a',
          },
        ]);
      }
      const live = (await deps.store.listTokens()).find((t) => t.name === name && t.revokedAt === undefined);
      if (live) {
        throw new ApiError(409, 'Conflict', `a live token named '${name}' exists (${live.id})`, [
          {
            path: 'body.name',
            message: 'already used by a live token',
            fix: `revoke it first (bulwark tokens revoke ${live.id}) or choose another name`,
          },
        ]);
      }
      let created;
      try {
        created = await createToken(deps.store, { name, scope });
      } catch (err) {
        if (err instanceof ConflictError) throw new ApiError(409, 'Conflict', err.message);
        throw err;
      }
      req.log.info({ token: created.record.id, name, scope, by: req.principal?.id }, 'token created');
      return reply.status(201).send({ ...view(created.record), secret: created.secret });
    },
  });

  app.get('/api/v1/tokens', {
    schema: {
      tags: ['tokens'],
      summary: 'Every token, live and revoked (admin only); secrets are never shown again',
      response: { 200: { type: 'object', properties: { items: { type: 'array', items: tokenView } } } },
    },
    handler: async () => ({ items: (await deps.store.listTokens()).map(view) }),
  });

  app.post<{ Params: { id: string }; Body: { reason?: string } | undefined }>('/api/v1/tokens/:id/revoke', {
    schema: {
      tags: ['tokens'],
      summary:
        'Revoke an agent token (admin only): every later request with it gets 401 naming the revocation',
      params: {
        type: 'object',
        required: ['id'],
        properties: { id: { type: 'string', minLength: 1, maxLength: 64 } },
      },
      body: {
        type: 'object',
        additionalProperties: false,
        properties: { reason: { type: 'string', maxLength: 500 } },
      },
      response: { 200: tokenView },
    },
    handler: async (req) => {
      const { id } = req.params;
      const rec = (await deps.store.listTokens()).find((t) => t.id === id);
      if (!rec) throw notFound(`token ${id}`);
      if (rec.scope !== 'agent') {
        throw badRequest(`token ${id} has scope '${rec.scope}'; only agent tokens are revoked here`, [
          {
            path: 'params.id',
            message: `scope '${rec.scope}'`,
            fix: 'give the id of an agent token (bulwark tokens list)',
          },
        ]);
      }
      const reason = req.body?.reason?.trim();
      const revoked = await deps.store.revokeToken(id, {
        at: new Date().toISOString(),
        ...(reason ? { reason } : {}),
      });
      if (!revoked) throw notFound(`token ${id}`);
      req.log.info({ token: id, name: revoked.name, by: req.principal?.id }, 'token revoked');
      return view(revoked);
    },
  });
}
