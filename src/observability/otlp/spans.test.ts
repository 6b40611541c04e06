import { describe, expect, it } from 'vitest';
import type { RequestLog } from '../../dataplane/dataplane.ts';
import { exportRequest, generatedByGateway, parseTraceparent, sampledByRatio, spanOf } from './spans.ts';
import { xxh64Hex } from './xxh64.ts';

// The gateway's construction (dataplane/haproxy/config.ts): trace id = the uuid's hex digits,
// parent id = xxh64 of the uuid. Checked against HAProxy itself in test/integration/otlp.test.ts.
const uuid = '3f2a9c4e-1b7d-4e8a-9c0f-5d6e7f8a9b0c';
const generated = `00-${uuid.replaceAll('-', '')}-${xxh64Hex(uuid)}-01`;
const fromClient = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

const log = (over: Partial<RequestLog> = {}): RequestLog => ({
  at: '2026-12-01T10:00:00.250Z',
  clientIp: '10.0.0.7',
  backend: 'api.ledger.bank',
  server: 'bank.ledger.api-0-ab12cd',
  method: 'GET',
  path: '/balances/acc-1',
  status: 200,
  totalMs: 12,
  serverMs: 10,
  retries: 0,
  terminationState: '----',
  bytesRead: 120,
  traceparent: generated,
  ...over,
});

describe('xxh64', () => {
  it('matches the reference vectors', () => {
    expect(xxh64Hex('')).toBe('ef46db3751d8e999');
    expect(xxh64Hex('abc')).toBe('44bc2cf5ad770999');
    expect(xxh64Hex('The quick brown fox jumps over the lazy dog')).toBe('0b242d361fda71bc');
  });
});

describe('gateway spans', () => {
  it('parses W3C trace contexts and refuses malformed or all-zero ones', () => {
    expect(parseTraceparent(fromClient)).toEqual({
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      parentId: '00f067aa0ba902b7',
      sampled: true,
    });
    expect(parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00')?.sampled).toBe(false);
    for (const bad of [
      '',
      'x',
      `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`,
      '01-4bf92f35-00f067aa0ba902b7-01',
    ])
      expect(parseTraceparent(bad)).toBeUndefined();
  });

  it('tells the contexts the gateway generated from the ones clients sent', () => {
    expect(generatedByGateway(parseTraceparent(generated)!)).toBe(true);
    expect(generatedByGateway(parseTraceparent(fromClient)!)).toBe(false);
  });

  it("is the instance's parent span when the gateway started the trace", () => {
    const s = spanOf(log())!;
    expect(s.traceId).toBe(uuid.replaceAll('-', ''));
    expect(s.spanId).toBe(xxh64Hex(uuid));
    expect(s.parentSpanId).toBeUndefined();
    expect(s).toMatchObject({
      name: 'GET api.ledger.bank',
      kind: 2,
      startTimeUnixNano: '1796119200250000000',
      endTimeUnixNano: '1796119200262000000',
      status: { code: 0 },
    });
    expect(s.attributes).toContainEqual({ key: 'http.response.status_code', value: { intValue: '200' } });
    expect(s.attributes).toContainEqual({
      key: 'bulwark.instance',
      value: { stringValue: 'bank.ledger.api-0-ab12cd' },
    });
  });

  it("is a child of the caller's span when the request brought a context", () => {
    const s = spanOf(log({ traceparent: fromClient, caller: 'bank/payments' }))!;
    expect(s.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(s.parentSpanId).toBe('00f067aa0ba902b7');
    expect(s.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(s.spanId).not.toBe('00f067aa0ba902b7');
    expect(s.attributes).toContainEqual({ key: 'bulwark.caller', value: { stringValue: 'bank/payments' } });
  });

  it('marks 5xx and unanswered requests as errors, and skips unsampled or context-less ones', () => {
    expect(spanOf(log({ status: 503 }))!.status).toEqual({ code: 2, message: 'HTTP 503' });
    expect(spanOf(log({ status: -1, terminationState: 'sC--' }))!.status).toEqual({
      code: 2,
      message: 'no answer (sC--)',
    });
    expect(spanOf(log({ status: 404 }))!.status).toEqual({ code: 0 });
    expect(spanOf(log({ traceparent: fromClient.replace(/01$/, '00') }))).toBeUndefined();
    expect(spanOf(log({ traceparent: undefined }))).toBeUndefined();
  });

  it('samples by trace id, the same way for every span of a trace', () => {
    const ids = Array.from({ length: 2000 }, (_, i) => xxh64Hex(String(i)) + xxh64Hex(`t${i}`));
    const kept = ids.filter((id) => sampledByRatio(id, 0.25)).length;
    expect(kept).toBeGreaterThan(400);
    expect(kept).toBeLessThan(600);
    expect(ids.every((id) => sampledByRatio(id, 0.25) === sampledByRatio(id, 0.25))).toBe(true);
    expect(ids.every((id) => sampledByRatio(id, 1))).toBe(true);
  });

  it('wraps spans in one resource naming the gateway and the site', () => {
    const req = exportRequest([spanOf(log())!], {
      serviceName: 'bulwark-gateway',
      site: 'dc1',
      version: '0.1.0',
    });
    expect(req.resourceSpans[0]!.resource.attributes).toContainEqual({
      key: 'service.name',
      value: { stringValue: 'bulwark-gateway' },
    });
    expect(req.resourceSpans[0]!.scopeSpans[0]!.spans).toHaveLength(1);
  });
});
