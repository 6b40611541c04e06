/**
 * Authentication cannot be bypassed by spelling a path differently (issue 15
 * item 1: `/%61pi/v1/status` used to answer without a token because the hook
 * looked at the raw URL and the router at the decoded one).
 *
 * Against a real control plane process (`bulwark server --unprivileged` on a
 * free loopback port), for every operation in its served OpenAPI document:
 * a fixed suite of encoded, doubled-slash, dot-segment, case-changed and
 * trailing-garbage spellings, then a seeded fuzz that combines them. Without
 * a token, every answer to a non-public operation must be a 401, a 400 (a
 * URL the router refuses) or a 405 (which only names methods), with the
 * Error shape and nothing else in the body. Requests go out through
 * node:http with the path exactly as written (fetch and inject normalise it).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlaneProcess } from '../support/control-plane-process.ts';

interface Answer {
  status: number;
  body: string;
}

interface Operation {
  method: string;
  /** OpenAPI path, e.g. /api/v1/projects/{project}/apps/{name} */
  template: string;
  /** The template with sample parameter values. */
  path: string;
  isPublic: boolean;
}

let cp: ControlPlaneProcess;
let dataDir: string;
let ops: Operation[] = [];
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

function send(method: string, rawPath: string, token?: string): Promise<Answer> {
  const { port } = new URL(cp.url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: Number(port),
        method,
        path: rawPath,
        agent,
        headers: token ? { authorization: `Bearer ${token}` } : {},
        timeout: 10_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${rawPath}: no answer in 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

type ParamSchema = { enum?: string[]; pattern?: string };

/** A value each path parameter's schema accepts (the route must match for the test to mean anything). */
function sample(name: string, schema: ParamSchema | undefined): string {
  if (schema?.enum?.[0]) return schema.enum[0];
  if (schema?.pattern?.includes('prof-')) return 'prof-20260101T000000Z-abcdef';
  return name === 'id' ? 'inst-1' : 'bank';
}

const hex = (c: string, upper: boolean) => {
  const h = c.charCodeAt(0).toString(16).padStart(2, '0');
  return `%${upper ? h.toUpperCase() : h}`;
};

/** The fixed suite: each kind of respelling the router might treat as the same route. */
export function respellings(p: string): string[] {
  const segs = p.split('/').slice(1);
  const join = (s: string[]) => `/${s.join('/')}`;
  const out = new Set<string>();
  segs.forEach((seg, i) => {
    if (!seg) return;
    for (const upper of [false, true]) {
      // One character encoded, first and last of the segment.
      out.add(join(segs.map((s, j) => (j === i ? hex(s[0]!, upper) + s.slice(1) : s))));
      out.add(join(segs.map((s, j) => (j === i ? s.slice(0, -1) + hex(s.at(-1)!, upper) : s))));
      // The whole segment encoded.
      out.add(join(segs.map((s, j) => (j === i ? [...s].map((c) => hex(c, upper)).join('') : s))));
    }
    // Double encoding (%2561 decodes to %61, not to a).
    out.add(join(segs.map((s, j) => (j === i ? `%25${hex(s[0]!, false).slice(1)}${s.slice(1)}` : s))));
    // Case changed.
    out.add(join(segs.map((s, j) => (j === i ? s.toUpperCase() : s))));
    out.add(join(segs.map((s, j) => (j === i ? s[0]!.toUpperCase() + s.slice(1) : s))));
    // Doubled slash before the segment, dot segments around it.
    out.add(join(segs.map((s, j) => (j === i ? `/${s}` : s))));
    out.add(join(segs.map((s, j) => (j === i ? `./${s}` : s))));
    out.add(join(segs.map((s, j) => (j === i ? `x/../${s}` : s))));
    out.add(join(segs.map((s, j) => (j === i ? `%2e/${s}` : s))));
    out.add(join(segs.map((s, j) => (j === i ? `x/%2e%2e/${s}` : s))));
    out.add(join(segs.map((s, j) => (j === i ? `x%2f..%2f${s}` : s))));
  });
  // Separators encoded or changed.
  out.add(`/${segs.join('%2F')}`);
  out.add(`/${segs.join('%2f')}`);
  out.add(`/${segs.join('\\')}`);
  out.add(`/${segs.join('%5C')}`);
  out.add(`//${segs.join('/')}`);
  out.add(`/${segs.join('//')}`);
  out.add(p.toUpperCase());
  // Trailing garbage.
  for (const g of [
    '/',
    '//',
    '/.',
    '/..',
    '/./',
    ';',
    ';x=1',
    '%00',
    '%20',
    '%09',
    '%0a',
    '%0d%0a',
    '%23x',
    '%3f',
    '.json',
    '~',
    '..',
    '\\',
    '%5c',
    '?',
    '?x=1',
    '#',
    '%',
    '%zz',
    '%c0%af',
    '%ef%bc%8f',
  ]) {
    out.add(p + g);
  }
  out.delete(p);
  return [...out];
}

/** Seeded PRNG (mulberry32): a failure names its seed and reproduces. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** 1-3 random respellings applied on top of each other. */
function fuzzed(p: string, next: () => number): string {
  let q = p;
  const rounds = 1 + Math.floor(next() * 3);
  for (let r = 0; r < rounds; r++) {
    const choices = respellings(q).filter((x) => x.length < 400);
    if (choices.length === 0) break;
    q = choices[Math.floor(next() * choices.length)]!;
  }
  // Sometimes also encode random characters anywhere (not the leading slash).
  if (next() < 0.5) {
    q = [...q]
      .map((c, i) => (i > 0 && c !== '/' && c !== '%' && next() < 0.2 ? hex(c, next() < 0.5) : c))
      .join('');
  }
  return q;
}

/** Node refuses to send a path with control characters or spaces; those never reach the server. */
const sendable = (p: string) => !/[\u0000-\u0020\u007f]/.test(p);

/** What an unauthenticated caller may see from a non-public operation: no data, only a refusal. */
function expectRefusal(op: Operation, spelled: string, a: Answer): void {
  const where = `${op.method} ${spelled} (for ${op.method} ${op.template})`;
  expect([400, 401, 405, 414], `${where} answered ${a.status}: ${a.body.slice(0, 300)}`).toContain(a.status);
  if (op.method === 'HEAD') return;
  const body = JSON.parse(a.body) as Record<string, unknown>;
  expect(Object.keys(body), where).toEqual(['error']);
  const code = (body.error as { code?: string }).code;
  expect(
    ['Unauthorized', 'BadRequest', 'MethodNotAllowed', 'UriTooLong'],
    `${where}: code ${code}`,
  ).toContain(code);
}

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-auth-paths-'));
  cp = await startControlPlane({ dataDir, unprivileged: true });
  const doc = JSON.parse((await send('GET', '/api/v1/openapi.json')).body) as {
    paths: Record<
      string,
      Record<
        string,
        {
          security?: unknown[];
          parameters?: { in: string; name: string; schema?: ParamSchema }[];
        }
      >
    >;
  };
  for (const [template, methods] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(methods)) {
      const params = new Map((op.parameters ?? []).filter((x) => x.in === 'path').map((x) => [x.name, x]));
      const p = template.replace(/\{(\w+)\}/g, (_, n: string) => sample(n, params.get(n)?.schema));
      ops.push({
        method: m.toUpperCase(),
        template,
        path: p,
        isPublic: Array.isArray(op.security) && op.security.length === 0,
      });
    }
  }
  // GET routes answer HEAD too (Fastify adds it; the document does not list it): spell those as well.
  ops = [...ops, ...ops.filter((o) => o.method === 'GET').map((o) => ({ ...o, method: 'HEAD' }))];
}, 120_000);

afterAll(async () => {
  agent.destroy();
  await cp?.stop();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('route authentication (deny by default)', () => {
  it('the served document declares exactly the health check and itself public, and covers the API', () => {
    const publicOps = ops
      .filter((o) => o.isPublic && o.method !== 'HEAD')
      .map((o) => `${o.method} ${o.template}`);
    expect(publicOps.sort()).toEqual(['GET /api/v1/healthz', 'GET /api/v1/openapi.json']);
    for (const p of ['/api/v1/status', '/api/v1/apply', '/api/v1/tokens', '/metrics']) {
      expect(ops.some((o) => o.template === p)).toBe(true);
    }
    expect(ops.length).toBeGreaterThan(40);
  });

  it('every non-public operation answers 401 without a token and is matched with one (the samples are real routes)', async () => {
    for (const op of ops.filter((o) => !o.isPublic)) {
      expectRefusal(op, op.path, await send(op.method, op.path));
      // The change stream never ends by itself; its authenticated side is tested in server.test.ts.
      if (op.template === '/api/v1/events') continue;
      const withToken = await send(op.method, op.path, cp.token);
      expect([401, 403, 405], `${op.method} ${op.path} with a token: ${withToken.body}`).not.toContain(
        withToken.status,
      );
      // A matched route never answers "no route": the sample values reach the handler.
      if (withToken.status === 404 && op.method !== 'HEAD') {
        expect(withToken.body, `${op.method} ${op.path}`).not.toMatch(/no route/);
      }
    }
  });

  it("the issue's bypass is closed: /%61pi/v1/status is the status route, and it needs the token", async () => {
    const anon = await send('GET', '/%61pi/v1/status');
    expect(anon.status).toBe(401);
    const authed = await send('GET', '/%61pi/v1/status', cp.token);
    expect(authed.status).toBe(200);
    expect(JSON.parse(authed.body)).toHaveProperty('store');
    const apply = await send('POST', '/%61pi/v1/apply');
    expect(apply.status).toBe(401);
  });

  it('an agent token gets 403 on admin routes and reaches the agent routes', async () => {
    const created = await cp.api<{ secret: string }>('POST', '/api/v1/tokens', {
      name: 'fuzz-agent',
      scope: 'agent',
    });
    expect(created.status).toBe(201);
    const agentToken = created.body.secret;
    for (const p of ['/api/v1/status', '/%61pi/v1/status', '/metrics', '/api/v1/tokens']) {
      const a = await send('GET', p, agentToken);
      expect(a.status, `${p}: ${a.body}`).toBe(403);
    }
    const inv = await send('GET', '/api/v1/observability/agents/inventory?site=local', agentToken);
    expect([401, 403]).not.toContain(inv.status);
  });

  it('no respelling of any operation answers without a token (fixed suite)', async () => {
    let checked = 0;
    for (const op of ops.filter((o) => !o.isPublic)) {
      for (const spelled of respellings(op.path).filter(sendable)) {
        expectRefusal(op, spelled, await send(op.method, spelled));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(2000);
  }, 300_000);

  it('no fuzzed spelling of any operation answers without a token (seeded)', async () => {
    const seed = Number(process.env.BULWARK_FUZZ_SEED ?? 15_001);
    const next = rng(seed);
    let checked = 0;
    for (const op of ops.filter((o) => !o.isPublic)) {
      for (let i = 0; i < 40; i++) {
        const spelled = fuzzed(op.path, next);
        if (!sendable(spelled)) continue;
        const a = await send(op.method, spelled);
        try {
          expectRefusal(op, spelled, a);
        } catch (err) {
          throw new Error(`seed ${seed}: ${(err as Error).message}`);
        }
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(1500);
  }, 300_000);

  it('public operations stay public under respelling only where the router itself matches them', async () => {
    for (const op of ops.filter((o) => o.isPublic)) {
      for (const spelled of respellings(op.path).filter(sendable)) {
        const a = await send(op.method, spelled);
        // Either the public route (200) or a refusal: never another route's data.
        expect([200, 400, 401, 405], `${op.method} ${spelled}: ${a.status}`).toContain(a.status);
      }
    }
  });

  it('unmatched paths and the console: no data without a token', async () => {
    for (const p of ['/nope', '/api', '/api/v1', '/api/v2/status', '/metrics/', '/apI/v1/status']) {
      const a = await send('GET', p);
      expect(a.status, `${p}: ${a.body}`).toBe(401);
    }
    // The console wildcard is public, but it only serves files of the built console (or its index).
    for (const p of [
      '/console/../api/v1/status',
      '/console/%2e%2e/api/v1/status',
      '/console/..%2f..%2fapi%2fv1%2fstatus',
      '/console/%2e%2e%2f%2e%2e%2fpackage.json',
    ]) {
      const a = await send('GET', p);
      expect(a.body, p).not.toContain('"store"');
      expect(a.body, p).not.toContain('"dependencies"');
    }
  });
});
