/**
 * Topology, diagnosis and profile routes in-process over a real PGlite store;
 * observability itself is a fake behind the ObservabilityApi seam (these tests
 * pin the HTTP contract: validation messages, status codes, the SSE frames).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObservabilityApi } from '../../observability/api.ts';
import type { Topology } from '../../observability/topology/types.ts';
import { openStore } from '../../store/open.ts';
import type { Store } from '../../store/store.ts';
import { ensureInitialToken } from '../auth.ts';
import { ChangeFeed } from '../change-feed.ts';
import { createLogger } from '../../util/logger.ts';
import { buildServer } from '../server.ts';
import type { ApiDeps } from './deps.ts';
import { ProfileTargetError } from '../../observability/profile.ts';
import { registerDiagnoseRoutes } from './diagnose-routes.ts';
import { registerTopologyRoutes } from './topology-routes.ts';

const TOKEN = 'bwk_test_topology_0123456789abcdef';
const auth = { authorization: `Bearer ${TOKEN}` };
const doc: Topology = { at: '2026-01-01T00:00:00.000Z', windowSeconds: 60, nodes: [], edges: [] };

let dir: string;
let store: Store;
let feed: ChangeFeed;
let app: FastifyInstance;
let bare: FastifyInstance;
const calls: unknown[] = [];
const listeners = new Set<(t: Topology, site: string) => void>();

const fake: ObservabilityApi = {
  sites: () => ['local'],
  topology: (q) => {
    calls.push(q);
    return doc;
  },
  history: () => [{ at: doc.at, nodes: 1, edges: 0, rps: 0, errorRate: 0 }],
  onTopology: (l) => {
    listeners.add(l);
    return () => listeners.delete(l);
  },
  diagnose: () => Promise.reject(new Error('not called in these tests')),
  profile: (q) => {
    calls.push(q);
    return Promise.reject(new ProfileTargetError('unsafe', 'inspector would listen on a fixed host port'));
  },
  profiles: async () => [],
  profileFile: async () => undefined,
  getProfile: async () => undefined,
  agent: () => ({ local: { state: 'unavailable', reason: 'eBPF needs root', intervals: 0, restarts: 0 } }),
  agentInventory: () => ({ instances: [], gatewayBinds: [], gatewayNodeId: 'external:gw' }),
  agentReport: (r) => ({ site: r.site, node: r.node, flows: r.interval?.flows.length ?? 0 }),
  nodeAgents: () => [],
  metrics: () => '',
};

const plugin = (a: FastifyInstance, d: ApiDeps): void => {
  registerTopologyRoutes(a, () => d.observability);
  registerDiagnoseRoutes(a, d, () => d.observability);
};

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-topology-api-'));
  store = await openStore({ dataDir: path.join(dir, 'data') });
  await ensureInitialToken(store, TOKEN);
  feed = new ChangeFeed(store, { pollIntervalMs: 50 });
  await feed.start();
  const base: ApiDeps = {
    store,
    feed,
    sites: new Map(),
    kick: () => undefined,
    status: async () => ({}),
  };
  const logger = createLogger({ level: 'silent' });
  app = await buildServer(
    { ...base, observability: fake },
    { logger, plugins: [plugin], sseHeartbeatMs: 60_000 },
  );
  bare = await buildServer(base, { logger, plugins: [plugin] });
  await app.listen({ host: '127.0.0.1', port: 0 });
  await bare.ready();
});

afterAll(async () => {
  await app?.close();
  await bare?.close();
  await feed?.stop();
  await store?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('topology routes', () => {
  it('200 with the window in seconds and the project passed through', async () => {
    const r = await app.inject({ url: '/api/v1/topology?window=5m&project=bank', headers: auth });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual(doc);
    expect(calls.at(-1)).toEqual({ windowSeconds: 300, project: 'bank' });
  });

  it('400 naming the field and the fix for a bad window', async () => {
    for (const w of ['abc', '0s', '2h']) {
      const r = await app.inject({ url: `/api/v1/topology?window=${w}`, headers: auth });
      expect(r.statusCode, w).toBe(400);
      const d = r.json<{ error: { details: { path: string; fix: string }[] } }>().error.details[0];
      expect(d?.path).toBe('querystring.window');
      expect(d?.fix).toMatch(/window=60s/);
    }
  });

  it('401 without a token, 503 without observability', async () => {
    expect((await app.inject({ url: '/api/v1/topology' })).statusCode).toBe(401);
    expect((await bare.inject({ url: '/api/v1/topology', headers: auth })).statusCode).toBe(503);
  });

  it('history points, and the agent status with its reason', async () => {
    const h = await app.inject({ url: '/api/v1/topology/history?minutes=60', headers: auth });
    expect(h.json()).toEqual({ points: [{ at: doc.at, nodes: 1, edges: 0, rps: 0, errorRate: 0 }] });
    expect((await app.inject({ url: '/api/v1/topology/history?minutes=61', headers: auth })).statusCode).toBe(
      400,
    );
    const a = await app.inject({ url: '/api/v1/observability/agent', headers: auth });
    expect(a.json()).toMatchObject({ sites: { local: { state: 'unavailable', reason: 'eBPF needs root' } } });
  });

  it('diagnosis of an unknown app is 404; a profile of 0 s is 400 naming durationSeconds', async () => {
    const d = await app.inject({ url: '/api/v1/projects/bank/apps/nope/diagnosis', headers: auth });
    expect(d.statusCode).toBe(404);
    const p = await app.inject({
      method: 'POST',
      url: '/api/v1/instances/x/profile',
      headers: auth,
      payload: { durationSeconds: 0 },
    });
    expect(p.statusCode).toBe(400);
    expect(p.json<{ error: { details: { path: string }[] } }>().error.details[0]?.path).toBe(
      'body.durationSeconds',
    );
  });

  it('passes the calling token to the profiler for its audit log; a refused profile is 422 with the reason', async () => {
    const p = await app.inject({
      method: 'POST',
      url: '/api/v1/instances/x/profile',
      headers: auth,
      payload: { durationSeconds: 2 },
    });
    expect(p.statusCode).toBe(422);
    expect(p.json<{ error: { message: string } }>().error.message).toBe(
      'unsafe: inspector would listen on a fixed host port',
    );
    const token = (await store.listTokens()).find((t) => t.name === 'bootstrap');
    expect(calls.at(-1)).toEqual({
      instanceId: 'x',
      durationSeconds: 2,
      caller: { tokenId: token?.id, tokenName: 'bootstrap' },
    });
  });

  it('streams topology changes as `event: topology` frames on /api/v1/events', async () => {
    const addr = app.server.address() as { port: number };
    const ac = new AbortController();
    const res = await fetch(`http://127.0.0.1:${addr.port}/api/v1/events`, {
      headers: auth,
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    let text = '';
    const deadline = Date.now() + 5000;
    while (listeners.size === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const l of listeners) l({ ...doc, windowSeconds: 42 }, 'local');
    while (!text.includes('event: topology') && Date.now() < deadline) {
      const { value } = await reader.read();
      text += new TextDecoder().decode(value);
    }
    ac.abort();
    const frame = text.slice(text.indexOf('event: topology'));
    expect(frame).toMatch(/^event: topology\ndata: \{.*"windowSeconds":42.*\}\n\n/);
    expect(frame.split('\n\n')[0]).not.toMatch(/^id:/m);
  });
});
