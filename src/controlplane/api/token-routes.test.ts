/**
 * Agent tokens through the API (fastify.inject over a real PGlite store):
 * created by an admin with the secret shown once and stored as a hash,
 * listed without secrets, revoked with a reason; an agent token reaches
 * only the two agent routes (403 elsewhere); a revoked one gets 401.
 * The observability side is a stub here: these tests are about who may call.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObservabilityApi } from '../../observability/api.ts';
import { openStore } from '../../store/open.ts';
import type { Store } from '../../store/store.ts';
import { ensureInitialToken, hashToken, routeAuthOf, scopeAllows } from '../auth.ts';
import { ChangeFeed } from '../change-feed.ts';
import { createLogger } from '../../util/logger.ts';
import { buildServer } from '../server.ts';
import { registerAgentRoutes } from './agent-routes.ts';
import type { ApiDeps } from './deps.ts';
import { registerTokenRoutes } from './token-routes.ts';

const ADMIN = 'bwk_token_routes_admin_0123456789';
const admin = { authorization: `Bearer ${ADMIN}` };
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

let dir: string;
let store: Store;
let feed: ChangeFeed;
let app: FastifyInstance;
const reports: unknown[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-tokens-'));
  store = await openStore({ dataDir: dir });
  await ensureInitialToken(store, ADMIN);
  feed = new ChangeFeed(store, { pollIntervalMs: 50 });
  await feed.start();
  const obs = {
    agentInventory: (site: string) => ({
      instances: [],
      gatewayBinds: [],
      gatewayNodeId: `external:${site}`,
    }),
    agentReport: (r: { site: string; node: string }) => {
      reports.push(r);
      return { site: r.site, node: r.node, flows: 0 };
    },
    nodeAgents: () => [],
  } as unknown as ObservabilityApi;
  const deps: ApiDeps = { store, feed, sites: new Map(), kick: () => undefined, status: async () => ({}) };
  app = await buildServer(deps, {
    logger: createLogger({ level: 'silent' }),
    plugins: [(a, d) => registerTokenRoutes(a, d), (a) => registerAgentRoutes(a, () => obs)],
  });
  await app.ready();
}, 60_000);

afterAll(async () => {
  await app?.close();
  await feed?.stop();
  await store?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const create = (name: string, scope = 'agent', headers = admin) =>
  app.inject({ method: 'POST', url: '/api/v1/tokens', headers, payload: { name, scope } });
const revoke = (id: string, reason?: string, headers = admin) =>
  app.inject({
    method: 'POST',
    url: `/api/v1/tokens/${id}/revoke`,
    headers,
    payload: reason !== undefined ? { reason } : {},
  });

describe('route declarations', () => {
  it('default to admin; admin satisfies every scope, agent only its own', () => {
    expect(routeAuthOf(undefined)).toEqual({ scope: 'admin' });
    expect(routeAuthOf({ auth: { scope: 'root' } })).toEqual({ scope: 'admin' });
    expect(routeAuthOf({ auth: 'public' })).toBe('public');
    expect(routeAuthOf({ auth: { scope: 'agent' } })).toEqual({ scope: 'agent' });
    expect(scopeAllows('admin', 'agent')).toBe(true);
    expect(scopeAllows('agent', 'agent')).toBe(true);
    expect(scopeAllows('agent', 'admin')).toBe(false);
  });
});

describe('POST /api/v1/tokens', () => {
  it('201 with the secret once; the store keeps only its hash, with scope agent', async () => {
    const res = await create('node-a');
    expect(res.statusCode, res.body).toBe(201);
    const t = res.json<{ id: string; name: string; scope: string; secret: string }>();
    expect(t).toMatchObject({ name: 'node-a', scope: 'agent' });
    expect(t.secret).toMatch(/^bwk_/);
    const rec = await store.findTokenByHash(hashToken(t.secret));
    expect(rec).toMatchObject({ id: t.id, scope: 'agent' });
    expect(JSON.stringify(rec)).not.toContain(t.secret);
    const list = await app.inject({ method: 'GET', url: '/api/v1/tokens', headers: admin });
    expect(list.body).not.toContain(t.secret);
    expect(list.body).not.toContain(rec!.hash);
    expect(list.json<{ items: { name: string }[] }>().items.map((i) => i.name)).toContain('node-a');
  });

  it('400 naming the field for an admin scope or a bad name; 409 for a live duplicate name', async () => {
    let res = await create('node-x', 'admin');
    expect(res.statusCode).toBe(400);
    expect(res.json().error.details[0]).toMatchObject({ path: 'body.scope' });
    expect(res.json().error.details[0].fix).toMatch(/use 'agent'/);
    res = await create('Node_X');
    expect(res.statusCode).toBe(400);
    expect(res.json().error.details[0]).toMatchObject({ path: 'body.name' });
    expect((await create('dup')).statusCode).toBe(201);
    res = await create('dup');
    expect(res.statusCode).toBe(409);
    expect(res.json().error.details[0].fix).toMatch(/revoke it first \(bulwark tokens revoke /);
  });
});

describe('agent scope', () => {
  it('may read the inventory and post reports, and gets 403 on everything else', async () => {
    const { secret } = (await create('node-scope')).json<{ secret: string }>();
    const inv = await app.inject({
      method: 'GET',
      url: '/api/v1/observability/agents/inventory?site=local',
      headers: bearer(secret),
    });
    expect(inv.statusCode, inv.body).toBe(200);
    const before = reports.length;
    const rep = await app.inject({
      method: 'POST',
      url: '/api/v1/observability/agents/reports',
      headers: bearer(secret),
      payload: { site: 'local', node: 'n1', status: { state: 'running', intervals: 1, restarts: 0 } },
    });
    expect(rep.statusCode, rep.body).toBe(200);
    expect(reports.length).toBe(before + 1);
    for (const [method, url] of [
      ['GET', '/api/v1/apps'],
      ['GET', '/api/v1/status'],
      ['GET', '/api/v1/tokens'],
      ['GET', '/api/v1/observability/agents'],
    ] as const) {
      const res = await app.inject({ method, url, headers: bearer(secret) });
      expect(res.statusCode, `${method} ${url}`).toBe(403);
      expect(res.json().error.code).toBe('Forbidden');
    }
    const apply = await app.inject({
      method: 'POST',
      url: '/api/v1/apply',
      headers: { ...bearer(secret), 'content-type': 'application/yaml' },
      payload: 'apiVersion: bulwark.io/v1\nkind: Project\nmetadata: { name: x }\nspec: {}\n',
    });
    expect(apply.statusCode).toBe(403);
    expect((await create('escalate', 'agent', bearer(secret))).statusCode).toBe(403);
  });
});

describe('POST /api/v1/tokens/{id}/revoke', () => {
  it('revokes: later requests get 401 naming the revocation and reason; a retry keeps the first time', async () => {
    const t = (await create('node-gone')).json<{ id: string; secret: string }>();
    const first = await revoke(t.id, 'node retired');
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toMatchObject({ id: t.id, revokedReason: 'node retired' });
    const res = await app.inject({
      method: 'GET',
      url: '/api/v1/observability/agents/inventory?site=local',
      headers: bearer(t.secret),
    });
    expect(res.statusCode).toBe(401);
    expect(res.json().error.message).toBe('token revoked');
    expect(res.json().error.details[0].message).toMatch(
      /token 'node-gone' .* was revoked at .*: node retired/,
    );
    const again = await revoke(t.id, 'other');
    expect(again.json()).toMatchObject({ revokedAt: first.json().revokedAt, revokedReason: 'node retired' });
    // The name is free again once the old token is revoked.
    expect((await create('node-gone')).statusCode).toBe(201);
  });

  it('404 for an unknown id; 400 for an admin token (not revocable here)', async () => {
    expect((await revoke('no-such-id')).statusCode).toBe(404);
    const adminRec = await store.findTokenByHash(hashToken(ADMIN));
    const res = await revoke(adminRec!.id);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toMatch(/scope 'admin'; only agent tokens are revoked here/);
    expect((await store.findTokenByHash(hashToken(ADMIN)))?.revokedAt).toBeUndefined();
  });
});
