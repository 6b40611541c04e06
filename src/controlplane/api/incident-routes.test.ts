/**
 * Incident, evidence, quarantine and metrics routes in-process
 * (fastify.inject) over a real PGlite store and real bundle directories on
 * disk. Fault isolation itself is a fake behind the IsolationApi seam: these
 * tests pin the HTTP contract, not the controller.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EvidenceBundle } from '../../isolation/evidence/types.ts';
import type { Incident } from '../../model/incidents.ts';
import { openStore } from '../../store/open.ts';
import type { Store } from '../../store/store.ts';
import { sampleIncident } from '../../store/testdata/incidents.ts';
import { ensureInitialToken } from '../auth.ts';
import { ChangeFeed } from '../change-feed.ts';
import { createLogger } from '../../util/logger.ts';
import { buildServer } from '../server.ts';
import type { ApiDeps } from './deps.ts';
import { FakeIsolation, writeBundle } from './testdata/isolation-fakes.ts';

const TOKEN = 'bwk_test_incidents_0123456789abcdef';
const auth = { authorization: `Bearer ${TOKEN}` };

let dir: string;
let store: Store;
let feed: ChangeFeed;
let app: FastifyInstance;
let bare: FastifyInstance;
let isolation: FakeIsolation;
const seeded: Incident[] = [];
let bundle: { dir: string; manifest: EvidenceBundle };

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-incident-api-'));
  store = await openStore({ dataDir: path.join(dir, 'data') });
  await ensureInitialToken(store, TOKEN);
  feed = new ChangeFeed(store, { pollIntervalMs: 50 });
  await feed.start();
  isolation = new FakeIsolation(store);
  const base: ApiDeps = {
    store,
    feed,
    sites: new Map(),
    kick: () => undefined,
    status: async () => ({ store: store.description }),
  };
  const logger = createLogger({ level: 'silent' });
  app = await buildServer({ ...base, isolation }, { logger });
  bare = await buildServer(base, { logger });
  await Promise.all([app.ready(), bare.ready()]);

  bundle = writeBundle(path.join(dir, 'evidence'), 'payments-api-0');
  const at = (s: number) => `2026-01-02T03:04:${String(s).padStart(2, '0')}.000Z`;
  seeded.push(
    sampleIncident({
      id: 'inc-20260102-aaa001',
      createdAt: at(1),
      state: 'resolved',
      instanceId: 'payments-api-9',
    }),
    sampleIncident({
      id: 'inc-20260102-aaa002',
      createdAt: at(2),
      evidenceDir: bundle.dir,
      durations: { detectMs: 912.5, isolateMs: 41.25 },
    }),
    sampleIncident({
      id: 'inc-20260102-aaa003',
      createdAt: at(3),
      app: 'ledger',
      instanceId: 'ledger-api-0',
      signature: 'event-loop-stall',
      state: 'open',
      action: { kind: 'alert', reason: 'last healthy instance: isolation would drop all traffic' },
    }),
    sampleIncident({ id: 'inc-20260102-aaa004', createdAt: at(4), project: 'other', instanceId: 'x-0' }),
  );
  for (const inc of seeded) await store.putIncident(inc);
  isolation.metricsImpl.recordIncident(seeded[1]!);
}, 60_000);

afterAll(async () => {
  await app?.close();
  await bare?.close();
  await feed?.stop();
  await store?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const get = (url: string, server = app) => server.inject({ method: 'GET', url, headers: auth });
const post = (url: string, server = app) => server.inject({ method: 'POST', url, headers: auth });

describe('GET /api/v1/incidents', () => {
  it('200 newest first, every field round-tripped (fractional durations too)', async () => {
    const res = await get('/api/v1/incidents?project=bank');
    expect(res.statusCode).toBe(200);
    const items = res.json().items as Incident[];
    expect(items.map((i) => i.id)).toEqual([
      'inc-20260102-aaa003',
      'inc-20260102-aaa002',
      'inc-20260102-aaa001',
    ]);
    expect(items[1]).toEqual(seeded[1]);
  });

  it('200 filtered by app, state and instance, and cut at limit', async () => {
    const ids = async (q: string) =>
      ((await get(`/api/v1/incidents?${q}`)).json().items as Incident[]).map((i) => i.id.slice(-3));
    expect(await ids('project=bank&app=ledger')).toEqual(['003']);
    expect(await ids('state=resolved&project=bank')).toEqual(['001']);
    expect(await ids('instance=payments-api-0')).toEqual(['002']);
    expect(await ids('limit=2')).toEqual(['004', '003']);
  });

  it('400 naming querystring.limit with the accepted range when limit is not an integer or too big', async () => {
    for (const bad of ['abc', '0', '1001', '2.5']) {
      const res = await get(`/api/v1/incidents?limit=${bad}`);
      expect(res.statusCode, bad).toBe(400);
      const body = res.json();
      expect(body.error.message).toContain('querystring.limit');
      expect(body.error.details[0]).toMatchObject({
        path: 'querystring.limit',
        fix: 'an integer from 1 to 1000 (default 100)',
      });
    }
  });

  it('400 naming querystring.state and listing the states for an unknown state', async () => {
    const res = await get('/api/v1/incidents?state=closed');
    expect(res.statusCode).toBe(400);
    expect(res.json().error.details).toEqual([
      {
        path: 'querystring.state',
        message: 'must be equal to one of the allowed values',
        fix: 'one of: open, isolated, mitigated, resolved',
      },
    ]);
  });

  it('400 naming an unknown query parameter', async () => {
    const res = await get('/api/v1/incidents?sevrity=critical');
    expect(res.statusCode).toBe(400);
    expect(res.json().error.details[0]).toMatchObject({ path: 'querystring.sevrity', fix: 'remove it' });
  });

  it('401 without a token', async () => {
    for (const url of ['/api/v1/incidents', '/api/v1/incidents/inc-20260102-aaa002/evidence.tar.gz']) {
      expect((await app.inject({ method: 'GET', url })).statusCode).toBe(401);
    }
    expect(
      (await app.inject({ method: 'POST', url: '/api/v1/instances/payments-api-0/quarantine/release' }))
        .statusCode,
    ).toBe(401);
  });
});

describe('GET /api/v1/incidents/:id', () => {
  it('200 with the whole incident', async () => {
    const res = await get('/api/v1/incidents/inc-20260102-aaa003');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(seeded[2]);
  });

  it('404 naming the id', async () => {
    const res = await get('/api/v1/incidents/inc-20990101-nope');
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toMatchObject({
      code: 'NotFound',
      message: "incident 'inc-20990101-nope' not found",
    });
  });
});

describe('evidence', () => {
  it('200 with the manifest: every part and its status', async () => {
    const res = await get('/api/v1/incidents/inc-20260102-aaa002/evidence');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(bundle.manifest);
  });

  it('404 "evidence not collected yet" when the incident has no bundle, or the bundle has no manifest', async () => {
    const res = await get('/api/v1/incidents/inc-20260102-aaa003/evidence');
    expect(res.statusCode).toBe(404);
    expect(res.json().error.message).toMatch(
      /^evidence not collected yet for incident 'inc-20260102-aaa003'/,
    );

    const half = path.join(dir, 'evidence', 'half-written');
    fs.mkdirSync(half, { recursive: true });
    await store.putIncident(
      sampleIncident({ id: 'inc-20260102-half', project: 'half', instanceId: 'half-0', evidenceDir: half }),
    );
    for (const suffix of ['evidence', 'evidence.tar.gz']) {
      const r = await get(`/api/v1/incidents/inc-20260102-half/${suffix}`);
      expect(r.statusCode, suffix).toBe(404);
      expect(r.json().error.message).toContain(`no manifest.json in ${half}`);
    }
    expect((await get('/api/v1/incidents/inc-20990101-nope/evidence')).json().error.message).toBe(
      "incident 'inc-20990101-nope' not found",
    );
  });

  it('200 application/gzip: a tar of the bundle directory with the manifest and part files', async () => {
    const [a, b] = await Promise.all([
      get('/api/v1/incidents/inc-20260102-aaa002/evidence.tar.gz'),
      get('/api/v1/incidents/inc-20260102-aaa002/evidence.tar.gz'),
    ]);
    for (const res of [a, b]) {
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('application/gzip');
      expect(res.headers['content-disposition']).toContain('inc-20260102-aaa002-evidence.tar.gz');
      const file = path.join(dir, `dl-${Math.random()}.tar.gz`);
      fs.writeFileSync(file, res.rawPayload);
      const entries = execFileSync('tar', ['-tzf', file], { encoding: 'utf8' }).split('\n');
      const name = path.basename(bundle.dir);
      expect(entries).toContain(`${name}/manifest.json`);
      expect(entries).toContain(`${name}/logs/stderr.log`);
    }
  });
});

describe('quarantine release / delete', () => {
  it('200 with the resolved incident, which the store now holds', async () => {
    isolation.quarantined.add('payments-api-0');
    const res = await post('/api/v1/instances/payments-api-0/quarantine/release');
    expect(res.statusCode).toBe(200);
    const inc = res.json() as Incident;
    expect(inc).toMatchObject({ id: 'inc-20260102-aaa002', state: 'resolved' });
    expect(inc.timeline.at(-1)).toMatchObject({ event: 'released' });
    expect(await store.getIncident(inc.id)).toEqual(inc);

    isolation.quarantined.add('ledger-api-0');
    const del = await post('/api/v1/instances/ledger-api-0/quarantine/delete');
    expect(del.statusCode).toBe(200);
    expect(del.json().timeline.at(-1).event).toBe('deleted');
  });

  it('409 when the instance is not quarantined, 404 when it is unknown', async () => {
    const conflict = await post('/api/v1/instances/payments-api-9/quarantine/release');
    expect(conflict.statusCode).toBe(409);
    expect(conflict.json().error.message).toBe("instance 'payments-api-9' is not quarantined");
    const missing = await post('/api/v1/instances/ghost-0/quarantine/delete');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.message).toContain("'ghost-0'");
  });

  it('503 with a fix when fault isolation is not wired', async () => {
    const res = await post('/api/v1/instances/payments-api-0/quarantine/release', bare);
    expect(res.statusCode).toBe(503);
    expect(res.json().error).toMatchObject({
      code: 'Unavailable',
      message: 'fault isolation is not running in this control plane',
    });
    expect(res.json().error.details[0].fix).toBeDefined();
  });
});

describe('GET /metrics', () => {
  it('serves Prometheus text to a token holder (401 without): own metrics with route patterns, then isolation metrics', async () => {
    await get('/api/v1/incidents/inc-20990101-nope');
    expect((await app.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
    const res = await get('/metrics');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = res.body;
    expect(text).toContain('# TYPE bulwark_http_requests_total counter');
    expect(text).toMatch(
      /^bulwark_http_requests_total\{method="GET",route="\/api\/v1\/incidents\/:id",code="404"\} [1-9]\d*$/m,
    );
    expect(text).not.toContain('inc-20990101-nope');
    expect(text).toMatch(
      /^bulwark_http_request_duration_seconds_count\{method="GET",route="\/api\/v1\/incidents"\} \d+$/m,
    );
    expect(text).toContain('bulwark_incidents_total{signature="http-5xx-burst",action="isolate"} 1');
    expect(text).toContain('# TYPE bulwark_isolation_isolate_seconds histogram');
    expect(text.endsWith('\n')).toBe(true);
    // Every non-comment line is `name{labels} value`.
    for (const line of text.trimEnd().split('\n')) {
      if (!line.startsWith('#'))
        expect(line).toMatch(/^[a-zA-Z_:][\w:]*(\{.*\})? (-?[\d.e+-]+|\+Inf|-Inf|NaN)$/);
    }
  });

  it('still serves the control plane metrics when the isolation exporter throws, and works without isolation', async () => {
    isolation.failMetrics = true;
    try {
      const res = await get('/metrics');
      expect(res.statusCode).toBe(200);
      expect(res.body).toContain('bulwark_process_start_time_seconds');
      expect(res.body).not.toContain('bulwark_incidents_total');
    } finally {
      isolation.failMetrics = false;
    }
    const plain = await get('/metrics', bare);
    expect(plain.statusCode).toBe(200);
    expect(plain.body).toContain('bulwark_change_feed_seq');
  });
});

describe('OpenAPI', () => {
  it('lists the incident, evidence, quarantine and metrics paths and the Incident schema', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json();
    for (const p of [
      '/api/v1/incidents',
      '/api/v1/incidents/{id}',
      '/api/v1/incidents/{id}/evidence',
      '/api/v1/incidents/{id}/evidence.tar.gz',
      '/api/v1/instances/{id}/quarantine/release',
      '/api/v1/instances/{id}/quarantine/delete',
      '/metrics',
    ]) {
      expect(Object.keys(doc.paths)).toContain(p);
    }
    expect(doc.components.schemas.Incident.properties.state.enum).toEqual([
      'open',
      'isolated',
      'mitigated',
      'resolved',
    ]);
    expect(doc.components.schemas.EvidenceManifest).toBeDefined();
    const list = doc.paths['/api/v1/incidents'].get;
    expect(list.parameters.map((p: { name: string }) => p.name).sort()).toEqual([
      'app',
      'instance',
      'limit',
      'project',
      'state',
    ]);
    expect(
      Object.keys(doc.paths['/api/v1/incidents/{id}/evidence.tar.gz'].get.responses['200'].content),
    ).toEqual(['application/gzip']);
    // Not public: the document inherits the global bearer requirement.
    expect(doc.paths['/metrics'].get.security).toBeUndefined();
    expect(doc.security).toEqual([{ bearer: [] }]);
  });
});

describe('GET /api/v1/actions', () => {
  it('merges stored placement actions with the isolation steps of incidents, newest first', async () => {
    await store.putAction({
      id: 'act-test-1',
      at: '2099-01-01T00:00:00.000Z',
      kind: 'failover',
      project: seeded[0]!.project,
      app: seeded[0]!.app,
      summary: 'failover of it: dc2 not usable; api@dc1 1->2',
      changes: [{ workload: 'api', site: 'dc1', from: 1, to: 2 }],
    });
    const res = await get(`/api/v1/actions?project=${seeded[0]!.project}&app=${seeded[0]!.app}`);
    expect(res.statusCode, res.body).toBe(200);
    const items = res.json().items as { kind: string; incidentId?: string }[];
    expect(items[0]).toMatchObject({ kind: 'failover', id: 'act-test-1' });
    expect(items.some((i) => i.incidentId === seeded[0]!.id && i.kind === 'isolated')).toBe(true);
  });

  it('400 naming querystring.limit with its range', async () => {
    const res = await get('/api/v1/actions?limit=501');
    expect(res.statusCode).toBe(400);
    expect(res.json().error.details[0]).toMatchObject({
      path: 'querystring.limit',
      fix: 'an integer from 1 to 500 (default 50)',
    });
  });
});
