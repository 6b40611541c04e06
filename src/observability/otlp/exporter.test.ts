import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { RequestLog } from '../../dataplane/dataplane.ts';
import { OtlpExporter, otlpOptionsFromEnv, validateOtlpOptions } from './exporter.ts';
import { xxh64Hex } from './xxh64.ts';

const log = (i: number): RequestLog => {
  const uuid = `${xxh64Hex(String(i)).slice(0, 8)}-1b7d-4e8a-9c0f-${xxh64Hex(`u${i}`).slice(0, 12)}`;
  return {
    at: new Date().toISOString(),
    clientIp: '127.0.0.1',
    backend: 'web.shop.acme',
    server: 'i1',
    method: 'GET',
    path: '/',
    status: 200,
    totalMs: 1,
    serverMs: 1,
    retries: 0,
    terminationState: '----',
    bytesRead: 10,
    traceparent: `00-${uuid.replaceAll('-', '')}-${xxh64Hex(uuid)}-01`,
  };
};

/** A real HTTP endpoint on loopback answering with `status()`, recording what it got. */
async function collector(
  status: () => number,
): Promise<{ url: string; bodies: unknown[]; close: () => Promise<void> }> {
  const bodies: unknown[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const code = status();
      if (code === 200) bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      res.statusCode = code;
      res.end(code === 200 ? '{}' : 'no such path');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
  return { url, bodies, close: () => new Promise((r) => server.close(() => r())) };
}

const spansIn = (bodies: unknown[]): number =>
  (bodies as { resourceSpans: { scopeSpans: { spans: unknown[] }[] }[] }[]).reduce(
    (n, b) => n + b.resourceSpans[0]!.scopeSpans[0]!.spans.length,
    0,
  );

describe('OtlpExporter', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
  });

  it('sends queued spans in batches of at most maxBatch', async () => {
    const c = await collector(() => 200);
    closers.push(c.close);
    const ex = new OtlpExporter({ endpoint: c.url, site: 'local', maxBatch: 4 });
    for (let i = 0; i < 10; i++) ex.add(log(i));
    await ex.flush();
    expect(c.bodies).toHaveLength(3);
    expect(spansIn(c.bodies)).toBe(10);
    expect(ex.status()).toMatchObject({ state: 'ok', exported: 10, queued: 0, dropped: 0 });
  });

  it('keeps spans through a 503 and sends them once the collector is back', async () => {
    let code = 503;
    const c = await collector(() => code);
    closers.push(c.close);
    const ex = new OtlpExporter({ endpoint: c.url, site: 'local' });
    for (let i = 0; i < 3; i++) ex.add(log(i));
    await ex.flush();
    expect(ex.status()).toMatchObject({ state: 'failing', queued: 3, failedExports: 1 });
    expect(ex.status().lastError).toContain('answered 503');
    code = 200;
    await ex.close(); // close() ignores the backoff and tries once more
    expect(spansIn(c.bodies)).toBe(3);
    expect(ex.status()).toMatchObject({ state: 'ok', exported: 3, queued: 0 });
  });

  it('drops a batch the collector refuses for good (404), naming the endpoint', async () => {
    const c = await collector(() => 404);
    closers.push(c.close);
    const ex = new OtlpExporter({ endpoint: c.url, site: 'local' });
    ex.add(log(1));
    await ex.flush();
    expect(ex.status()).toMatchObject({ dropped: 1, queued: 0, state: 'failing' });
    expect(ex.status().lastError).toBe(`collector at ${c.url} answered 404: no such path`);
  });

  it('bounds its queue when the collector is unreachable, dropping the oldest', async () => {
    const ex = new OtlpExporter({ endpoint: 'http://127.0.0.1:9/v1/traces', site: 'local', maxQueue: 5 });
    for (let i = 0; i < 8; i++) ex.add(log(i));
    await ex.flush();
    expect(ex.status()).toMatchObject({ queued: 5, dropped: 3 });
    expect(ex.status().lastError).toMatch(/unreachable/);
  });

  it('rejects bad settings naming them', () => {
    expect(() => validateOtlpOptions({ endpoint: 'collector:4318' })).toThrow(
      /otlp.endpoint 'collector:4318'/,
    );
    expect(() => validateOtlpOptions({ endpoint: 'grpc://x:4317' })).toThrow(/only http:\/\/ and https:\/\//);
    expect(() => validateOtlpOptions({ endpoint: 'http://x:4318/v1/traces', sampleRatio: 0 })).toThrow(
      /otlp.sampleRatio 0: must be a number above 0 and at most 1/,
    );
  });

  it('reads the standard OTEL_EXPORTER_OTLP_* environment', () => {
    expect(otlpOptionsFromEnv({})).toBeUndefined();
    expect(otlpOptionsFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' })).toEqual({
      endpoint: 'http://c:4318/v1/traces',
    });
    expect(
      otlpOptionsFromEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:4318/custom',
        OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20abc, x-tenant=bank',
      }),
    ).toEqual({
      endpoint: 'http://t:4318/custom',
      headers: { authorization: 'Bearer abc', 'x-tenant': 'bank' },
    });
    expect(() =>
      otlpOptionsFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c', OTEL_EXPORTER_OTLP_HEADERS: 'nokey' }),
    ).toThrow(/OTEL_EXPORTER_OTLP_HEADERS: 'nokey' is not key=value/);
  });
});
