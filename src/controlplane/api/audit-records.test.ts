/**
 * Every mutating call leaves its audit record, written with the change: an
 * apply (per resource, with the diff), a scale and a delete, each naming the
 * token, the address, the request id and the project's tenant; a dry run
 * and a refused call change nothing and leave no record. Real server, real
 * PGlite store.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAudit } from '../../audit/verify.ts';
import type { AuditRecord } from '../../model/audit.ts';
import type { Store } from '../../store/store.ts';
import { startTestApi, type TestApi } from './testdata/test-api.ts';

const TOKEN = 'bwk_test_audit_records_0123456789ab';
let api: TestApi;
let store: Store;
let server: FastifyInstance;

beforeAll(async () => {
  api = await startTestApi({ token: TOKEN, prefix: 'bulwark-audit-records-' });
  ({ store, server } = api);
}, 60_000);

afterAll(async () => {
  await api?.close();
});

const auth = { authorization: `Bearer ${TOKEN}` };
const YAML = `apiVersion: bulwark.io/v1
kind: Project
metadata: { name: shop }
spec: { tenant: retail }
---
apiVersion: bulwark.io/v1
kind: App
metadata: { name: web, project: shop }
spec:
  workloads:
    - name: api
      type: service
      replicas: 1
      run: { command: [node, x.js] }
`;
const records = async (): Promise<AuditRecord[]> =>
  (await store.listAudit({ limit: 1000 })).map((e) => JSON.parse(e.body!) as AuditRecord);

describe('audit records of API calls', () => {
  it('a dry run and a refused call leave no record', async () => {
    const dry = await server.inject({
      method: 'POST',
      url: '/api/v1/apply?dryRun=true',
      headers: { ...auth, 'content-type': 'application/yaml' },
      payload: YAML,
    });
    expect(dry.statusCode, dry.body).toBe(200);
    const anon = await server.inject({
      method: 'POST',
      url: '/api/v1/apply',
      headers: { 'content-type': 'application/yaml' },
      payload: YAML,
    });
    expect(anon.statusCode).toBe(401);
    expect(await records()).toEqual([]);
  });

  it('apply, scale and delete: who, from where, what, the tenant and the diff, chained', async () => {
    const apply = await server.inject({
      method: 'POST',
      url: '/api/v1/apply',
      headers: { ...auth, 'user-agent': 'bulwark-cli/test', 'content-type': 'application/yaml' },
      payload: YAML,
    });
    expect(apply.statusCode).toBe(200);
    const scale = await server.inject({
      method: 'POST',
      url: '/api/v1/projects/shop/apps/web/scale',
      headers: auth,
      payload: { replicas: 3 },
    });
    expect(scale.statusCode).toBe(200);
    const del = await server.inject({
      method: 'DELETE',
      url: '/api/v1/projects/shop/apps/web',
      headers: auth,
    });
    expect(del.statusCode).toBe(200);

    const r = await records();
    expect(r.map((x) => `${x.action} ${x.resource?.kind}/${x.resource?.name}`)).toEqual([
      'apply Project/shop',
      'apply App/web',
      'scale App/web',
      'delete App/web',
    ]);
    const tokens = await store.listTokens();
    for (const x of r) {
      expect(x).toMatchObject({
        actor: { kind: 'token', id: tokens[0]!.id },
        source: { ip: '127.0.0.1' },
        tenant: 'retail',
        outcome: 'ok',
      });
      expect(x.requestId).toBeTruthy();
    }
    expect(r[0]!.source?.userAgent).toBe('bulwark-cli/test');
    expect(r[1]!.change?.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(JSON.stringify(r[1]!.change?.diff)).toContain('replicas');
    expect(r[2]!.change?.diff).toEqual([{ path: 'spec.workloads[api].replicas', to: 3 }]);
    expect(verifyAudit(await store.listAudit({ limit: 1000 }), [], new Map()).ok).toBe(true);
  });
});
