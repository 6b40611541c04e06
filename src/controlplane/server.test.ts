/**
 * The HTTP API in-process (fastify.inject) over a real PGlite store. The
 * runtime side is absent here (no sites): these tests pin the API contract —
 * auth, validation errors, apply semantics, scale, delete rules, SSE.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AppResource } from '../model/types.ts';
import { openStore } from '../store/open.ts';
import type { Store } from '../store/store.ts';
import type { ApiDeps } from './api/deps.ts';
import { ensureInitialToken } from './auth.ts';
import { ChangeFeed } from './change-feed.ts';
import { createLogger } from '../util/logger.ts';
import { buildServer } from './server.ts';

const TOKEN = 'bwk_test_token_0123456789abcdef';
const auth = { authorization: `Bearer ${TOKEN}` };

const PROJECT = `apiVersion: bulwark.io/v1
kind: Project
metadata: { name: bank }
spec: { tenant: retail }
`;
const appYaml = (replicas: number, name = 'payments') => `apiVersion: bulwark.io/v1
kind: App
metadata: { name: ${name}, project: bank }
spec:
  workloads:
    - name: api
      type: service
      replicas: ${replicas}
      run: { command: [node, examples/bank/payments.ts] }
      ports: [{ name: http, port: 8080 }]
`;

let dir: string;
let store: Store;
let feed: ChangeFeed;
let app: FastifyInstance;
let kicks = 0;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-api-'));
  store = await openStore({ dataDir: dir });
  await ensureInitialToken(store, TOKEN);
  feed = new ChangeFeed(store, { pollIntervalMs: 50 });
  await feed.start();
  const deps: ApiDeps = {
    store,
    feed,
    sites: new Map(),
    kick: () => {
      kicks++;
      feed.poke();
    },
    status: async () => ({ store: store.description }),
  };
  app = await buildServer(deps, { logger: createLogger({ level: 'silent' }), sseHeartbeatMs: 60_000 });
  await app.ready();
}, 60_000);

afterAll(async () => {
  await app?.close();
  await feed?.stop();
  await store?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  for (const a of await store.list('App'))
    await store.delete({ kind: 'App', project: 'bank', name: a.metadata.name });
});

const applyYaml = (body: string, dryRun = false) =>
  app.inject({
    method: 'POST',
    url: `/api/v1/apply?dryRun=${dryRun}`,
    headers: { ...auth, 'content-type': 'application/yaml' },
    payload: body,
  });

describe('auth', () => {
  it('401 with a fix when the bearer token is missing', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/v1/apps' });
    expect(res.statusCode).toBe(401);
    expect(res.json().error.details[0].fix).toMatch(/Authorization: Bearer/);
  });
  it('401 for an unknown token', async () => {
    const res = await app.inject({
      method: 'GET',
      url: '/api/v1/apps',
      headers: { authorization: 'Bearer bwk_nope' },
    });
    expect(res.statusCode).toBe(401);
    expect(res.json().error.message).toBe('invalid token');
  });
  it('stores only the hash of the token', async () => {
    const dump = JSON.stringify(await store.findTokenByHash((await import('./auth.ts')).hashToken(TOKEN)));
    expect(dump).not.toContain(TOKEN);
  });
  it('serves health and the OpenAPI document without a token', async () => {
    expect((await app.inject({ method: 'GET', url: '/api/v1/healthz' })).json()).toEqual({ status: 'ok' });
    const doc = (await app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json();
    expect(doc.openapi).toMatch(/^3\./);
    for (const p of [
      '/api/v1/apply',
      '/api/v1/apps',
      '/api/v1/projects/{project}/apps/{name}/scale',
      '/api/v1/events',
      '/api/v1/instances/{id}/logs',
    ]) {
      expect(Object.keys(doc.paths)).toContain(p);
    }
    expect(doc.components.schemas.Error).toBeDefined();
  });
});

describe('apply', () => {
  it('creates, then reports unchanged on the same input (idempotent)', async () => {
    const first = await applyYaml(`${PROJECT}---\n${appYaml(2)}`);
    expect(first.statusCode, first.body).toBe(200);
    const actions = first
      .json()
      .results.map((r: { kind: string; action: string }) => `${r.kind}:${r.action}`);
    expect(actions[1]).toBe('App:created');
    expect(['Project:created', 'Project:unchanged']).toContain(actions[0]);
    const again = await applyYaml(`${PROJECT}---\n${appYaml(2)}`);
    expect(again.json().results.map((r: { action: string }) => r.action)).toEqual(['unchanged', 'unchanged']);
  });

  it('dry-run returns the plan with a diff and writes nothing', async () => {
    await applyYaml(`${PROJECT}---\n${appYaml(2)}`);
    const before = await store.get({ kind: 'App', project: 'bank', name: 'payments' });
    const res = await applyYaml(appYaml(5), true);
    expect(res.statusCode).toBe(200);
    const r = res.json().results[0];
    expect(r.action).toBe('updated');
    expect(r.changes).toEqual([{ op: 'change', path: 'spec.workloads[0].replicas', from: 2, to: 5 }]);
    const after = await store.get({ kind: 'App', project: 'bank', name: 'payments' });
    expect(after?.metadata.resourceVersion).toBe(before?.metadata.resourceVersion);
  });

  it('422 naming the path, line and fix for an invalid field', async () => {
    const bad = appYaml(2).replace(
      'ports: [{ name: http, port: 8080 }]',
      'ports: [{ name: http, port: 8080 }]\n      health: { readiness: { tcp: { port: http }, intervalMs: 5 } }',
    );
    const res = await applyYaml(`${PROJECT}---\n${bad}`);
    expect(res.statusCode).toBe(422);
    const d = res.json().error.details;
    expect(
      d.some(
        (x: { path: string; message: string; line?: number }) =>
          x.path.endsWith('spec.workloads[0].health.readiness.intervalMs') &&
          /100/.test(x.message) &&
          x.line === 16,
      ),
    ).toBe(true);
  });

  it('422 for an unknown field instead of ignoring it', async () => {
    const res = await applyYaml(
      `${PROJECT}---\n${appYaml(1).replace('replicas: 1', 'replicas: 1\n      replica: 3')}`,
    );
    expect(res.statusCode).toBe(422);
    expect(JSON.stringify(res.json())).toMatch(/replica/);
  });

  it('422 with a fix when the project does not exist; nothing is written', async () => {
    const res = await applyYaml(appYaml(1, 'orphan').replace('project: bank', 'project: nosuch'));
    expect(res.statusCode).toBe(422);
    expect(res.json().error.details[0].fix).toMatch(/create Project 'nosuch'/);
    expect(await store.get({ kind: 'App', project: 'nosuch', name: 'orphan' })).toBeUndefined();
  });

  it('accepts JSON {resources: [...]} with the same validation', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/apply',
      headers: auth,
      payload: {
        resources: [
          {
            apiVersion: 'bulwark.io/v1',
            kind: 'Project',
            metadata: { name: 'bank' },
            spec: { tenant: 'retail', colour: 'red' },
          },
        ],
      },
    });
    expect(res.statusCode).toBe(422);
    expect(JSON.stringify(res.json())).toMatch(/colour/);
  });

  it('422 with a fix on an empty body', async () => {
    const res = await applyYaml('');
    expect(res.statusCode).toBe(422);
    expect(res.json().error.details[0].fix).toMatch(/apiVersion, kind/);
  });
});

describe('read, scale, delete', () => {
  it('gets, lists by project and 404s on an unknown app', async () => {
    await applyYaml(`${PROJECT}---\n${appYaml(2)}`);
    const one = await app.inject({
      method: 'GET',
      url: '/api/v1/projects/bank/apps/payments',
      headers: auth,
    });
    expect(one.json().metadata.generation).toBe(1);
    const list = await app.inject({ method: 'GET', url: '/api/v1/apps?project=bank', headers: auth });
    expect(list.json().items).toHaveLength(1);
    const missing = await app.inject({
      method: 'GET',
      url: '/api/v1/projects/bank/apps/nope',
      headers: auth,
    });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('NotFound');
  });

  it('scale bumps the generation and kicks the controllers; bad replicas is 400', async () => {
    await applyYaml(`${PROJECT}---\n${appYaml(2)}`);
    const k = kicks;
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/projects/bank/apps/payments/scale',
      headers: auth,
      payload: { replicas: 5 },
    });
    expect(res.statusCode).toBe(200);
    const scaled = res.json() as AppResource;
    expect(scaled.spec.workloads[0]?.replicas).toBe(5);
    expect(scaled.metadata.generation).toBe(2);
    expect(kicks).toBeGreaterThan(k);
    const bad = await app.inject({
      method: 'POST',
      url: '/api/v1/projects/bank/apps/payments/scale',
      headers: auth,
      payload: { replicas: 101 },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.details[0].path).toBe('body.replicas');
    const wl = await app.inject({
      method: 'POST',
      url: '/api/v1/projects/bank/apps/payments/scale',
      headers: auth,
      payload: { replicas: 1, workload: 'nope' },
    });
    expect(wl.statusCode).toBe(404);
    expect(wl.json().error.details[0].fix).toBe('one of: api');
  });

  it('refuses to delete a project that still has apps (409), deletes an app', async () => {
    await applyYaml(`${PROJECT}---\n${appYaml(2)}`);
    const p = await app.inject({ method: 'DELETE', url: '/api/v1/projects/bank', headers: auth });
    expect(p.statusCode).toBe(409);
    const a = await app.inject({
      method: 'DELETE',
      url: '/api/v1/projects/bank/apps/payments',
      headers: auth,
    });
    expect(a.statusCode).toBe(200);
    const again = await app.inject({
      method: 'DELETE',
      url: '/api/v1/projects/bank/apps/payments',
      headers: auth,
    });
    expect(again.statusCode).toBe(404);
  });
});

describe('change stream (SSE)', () => {
  it('streams changes with their seq as id and replays after Last-Event-ID', async () => {
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    const url = new URL('/api/v1/events?kind=App', address);
    const received: { id: number; data: { type: string; key: { name: string } } }[] = [];
    const req = http.get(url, { headers: auth });
    const done = new Promise<void>((resolve, reject) => {
      req.on('response', (res) => {
        expect(res.headers['content-type']).toMatch(/text\/event-stream/);
        let buf = '';
        res.on('data', (chunk: Buffer) => {
          buf += chunk.toString();
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const id = /^id: (\d+)$/m.exec(frame)?.[1];
            const data = /^data: (.*)$/m.exec(frame)?.[1];
            if (id && data) received.push({ id: Number(id), data: JSON.parse(data) });
            if (received.length >= 2) resolve();
          }
        });
      });
      req.on('error', reject);
    });
    await new Promise((r) => setTimeout(r, 200));
    await applyYaml(`${PROJECT}---\n${appYaml(1, 'ledger')}`);
    await app.inject({
      method: 'POST',
      url: '/api/v1/projects/bank/apps/ledger/scale',
      headers: auth,
      payload: { replicas: 3 },
    });
    await done;
    req.destroy();
    expect(received.map((r) => r.data.type)).toEqual(['created', 'updated']);
    expect(received[1]!.id).toBeGreaterThan(received[0]!.id);
    // Reconnect after the first event: the second is replayed from the log.
    const replay = await new Promise<string>((resolve) => {
      const r2 = http.get(url, { headers: { ...auth, 'last-event-id': String(received[0]!.id) } }, (res) => {
        let b = '';
        res.on('data', (c: Buffer) => {
          b += c.toString();
          if (b.includes('event: change')) {
            r2.destroy();
            resolve(b);
          }
        });
      });
    });
    expect(replay).toContain(`id: ${received[1]!.id}`);
  });
});

describe('authentication on the matched route', () => {
  it('401 for an encoded spelling of a protected route, which the router still matches (issue 15)', async () => {
    const anon = await app.inject({ method: 'GET', url: '/%61pi/v1/status' });
    expect(anon.statusCode).toBe(401);
    const authed = await app.inject({ method: 'GET', url: '/%61pi/v1/status', headers: auth });
    expect(authed.statusCode).toBe(200);
    expect(authed.json()).toHaveProperty('store');
  });
  it('unmatched paths need the token too: 401 without, 404 with', async () => {
    expect((await app.inject({ method: 'GET', url: '/api/v1/nope' })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/elsewhere' })).statusCode).toBe(401);
    const res = await app.inject({ method: 'GET', url: '/api/v1/nope', headers: auth });
    expect(res.statusCode).toBe(404);
    expect(res.json().error.code).toBe('NotFound');
  });
  it('405 with Allow for a known path and another method, before auth and whatever the body', async () => {
    const res = await app.inject({
      method: 'PUT',
      url: '/api/v1/apps',
      headers: { 'content-type': 'text/plain' },
      payload: 'x',
    });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe('GET, HEAD');
    expect(res.json().error.code).toBe('MethodNotAllowed');
    const del = await app.inject({ method: 'PATCH', url: '/api/v1/projects/bank/apps/payments' });
    expect(del.headers.allow).toBe('DELETE, GET, HEAD');
  });
  it('the document declares the standard errors: 401/403 on protected routes, 415/413 with a body, none public', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json();
    const scale = doc.paths['/api/v1/projects/{project}/apps/{name}/scale'].post;
    expect(Object.keys(scale.responses).sort()).toEqual(
      expect.arrayContaining(['200', '400', '401', '403', '404', '413', '414', '415', '500']),
    );
    const health = doc.paths['/api/v1/healthz'].get;
    expect(health.security).toEqual([]);
    expect(Object.keys(health.responses)).not.toContain('401');
    expect(Object.keys(doc.paths['/api/v1/apply'].post.requestBody.content).sort()).toEqual([
      'application/json',
      'application/x-yaml',
      'application/yaml',
      'text/yaml',
    ]);
  });
});

describe('strict request content types (no state change from a browser simple request)', () => {
  const simple = [
    ['text/plain', 'apiVersion: bulwark.io/v1'],
    ['application/x-www-form-urlencoded', 'a=b'],
    [
      'multipart/form-data; boundary=x',
      '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--x--\r\n',
    ],
  ] as const;
  it('415 naming the accepted types for every simple-request type on apply, and nothing is written', async () => {
    for (const [type, payload] of simple) {
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/apply',
        headers: { ...auth, 'content-type': type },
        payload: type === 'text/plain' ? `${PROJECT}---\n${appYaml(1, 'csrf')}` : payload,
      });
      expect(res.statusCode, type).toBe(415);
      expect(res.json().error.code).toBe('UnsupportedMediaType');
      expect(res.json().error.message).toMatch(/accepted: application\/json, application\/yaml/);
      expect(res.json().error.details[0].path).toBe('headers.content-type');
    }
    expect(await store.get({ kind: 'App', project: 'bank', name: 'csrf' })).toBeUndefined();
  });
  it('415 for YAML or a simple-request type on a JSON route (scale, quarantine release)', async () => {
    await applyYaml(`${PROJECT}---\n${appYaml(2)}`);
    for (const type of ['application/yaml', ...simple.map(([t]) => t)]) {
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/projects/bank/apps/payments/scale',
        headers: { ...auth, 'content-type': type },
        payload: 'replicas=5',
      });
      expect(res.statusCode, type).toBe(415);
      expect(res.json().error.details[0].fix).toBe('send Content-Type: application/json');
    }
    const form = await app.inject({
      method: 'POST',
      url: '/api/v1/instances/x/quarantine/release',
      headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' },
      payload: '',
    });
    expect(form.statusCode).toBe(415);
    const app1 = (await store.get({ kind: 'App', project: 'bank', name: 'payments' })) as AppResource;
    expect(app1.spec.workloads[0]?.replicas).toBe(2);
  });
  it('authentication comes first: 401, not 415, without a token', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/apply',
      headers: { 'content-type': 'text/plain' },
      payload: 'x',
    });
    expect(res.statusCode).toBe(401);
  });
});

describe('JSON bodies are checked as sent (no type coercion)', () => {
  it('400 for replicas true, null or "5" (once coerced to 1, 0 and 5)', async () => {
    await applyYaml(`${PROJECT}---\n${appYaml(2)}`);
    for (const replicas of [true, null, '5']) {
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/projects/bank/apps/payments/scale',
        headers: auth,
        payload: { replicas },
      });
      expect(res.statusCode, JSON.stringify(replicas)).toBe(400);
      expect(res.json().error.details[0].path).toBe('body.replicas');
    }
    const app1 = (await store.get({ kind: 'App', project: 'bank', name: 'payments' })) as AppResource;
    expect(app1.spec.workloads[0]?.replicas).toBe(2);
  });
  it('query strings are still coerced (?dryRun=true is a boolean)', async () => {
    const res = await applyYaml(`${PROJECT}---\n${appYaml(3)}`, true);
    expect(res.statusCode).toBe(200);
    expect(res.json().dryRun).toBe(true);
  });
  it('400 naming the field for a NUL character in a query value or a JSON string', async () => {
    const q = await app.inject({ method: 'GET', url: '/api/v1/actions?project=a%00b', headers: auth });
    expect(q.statusCode).toBe(400);
    expect(q.json().error.details[0].path).toMatch(/^querystring/);
    const b = await app.inject({
      method: 'POST',
      url: '/api/v1/validate',
      headers: auth,
      payload: { apiVersion: 'bulwark.io/v1', kind: 'Project', metadata: { name: 'a\u0000' }, spec: {} },
    });
    expect(b.statusCode).toBe(400);
    expect(b.json().error.details[0].path).toBe('body.metadata.name');
  });
});
