import { describe, expect, it } from 'vitest';
import { parseHaproxyDate, parseRequestLog, parseSyslogFrame, splitFields } from './log-parser.ts';

// Frames captured from HAProxy 2.6.12 running the rendered configuration.
const GET_FRAME =
  '<134>Nov 23 09:34:27 haproxy[7726]: bwlog1 23/Nov/2026:09:34:27.002 127.0.0.1 web.shop.acme i1 GET "/acme/shop/web/x" 200 1 1 0 ---- 115 "" "00-ae23c26682ad4ae2ba60d9bdf9567543-ea6e1350bc2f47b2-01"\n';
const CALLER_FRAME =
  '<134>Nov 23 09:34:12 haproxy[7523]: bwlog1 23/Nov/2026:09:34:12.101 127.0.0.1 web.shop.acme i1 GET "/acme/shop/web/x" 200 0 0 0 ---- 115 "api.shop.acme" "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"\n';
const NOSRV_FRAME =
  '<134>Nov 23 09:29:32 haproxy[5060]: bwlog1 23/Nov/2026:09:29:32.500 127.0.0.1 bulwark_gateway <NOSRV> GET "/nope/x/y/z" 404 0 -1 0 LR-- 102 "a.b.c" "00-20f2056d1dd84110b70618a88325a7cf-7dcca82efabb4a3d-01"\n';
const STATE_FRAME =
  '<129>Nov 23 09:34:12 haproxy[7523]: Server web.shop.acme/i1 is going DOWN for maintenance. 1 active and 0 backup servers left.\n';

describe('parseSyslogFrame', () => {
  it('reads priority, program, pid and message of an RFC 3164 frame', () => {
    expect(parseSyslogFrame(GET_FRAME)).toMatchObject({ priority: 134, app: 'haproxy', pid: 7726 });
    expect(parseSyslogFrame(GET_FRAME)?.message.startsWith('bwlog1 ')).toBe(true);
  });
  it('reads an RFC 5424 frame', () => {
    const f = parseSyslogFrame('<134>1 2026-11-23T09:34:27.002+00:00 host haproxy 7726 - - bwlog1 x');
    expect(f).toEqual({ priority: 134, app: 'haproxy', pid: 7726, message: 'bwlog1 x' });
  });
  it('takes a frame without header as a raw message (HAProxy `format raw`)', () => {
    expect(parseSyslogFrame('bwlog1 x\n')).toEqual({ priority: -1, app: '', message: 'bwlog1 x' });
    expect(parseSyslogFrame('')).toBeUndefined();
  });
});

describe('parseRequestLog', () => {
  it('parses a proxied GET with a generated traceparent', () => {
    const log = parseRequestLog(parseSyslogFrame(GET_FRAME)?.message ?? '');
    expect(log).toEqual({
      at: new Date(2026, 10, 23, 9, 34, 27, 2).toISOString(),
      clientIp: '127.0.0.1',
      caller: undefined,
      backend: 'web.shop.acme',
      server: 'i1',
      method: 'GET',
      path: '/acme/shop/web/x',
      status: 200,
      totalMs: 1,
      serverMs: 1,
      retries: 0,
      terminationState: '----',
      bytesRead: 115,
      traceparent: '00-ae23c26682ad4ae2ba60d9bdf9567543-ea6e1350bc2f47b2-01',
    });
  });
  it('reports the caller header', () => {
    expect(parseRequestLog(parseSyslogFrame(CALLER_FRAME)?.message ?? '')?.caller).toBe('api.shop.acme');
  });
  it('leaves server undefined and serverMs -1 when no server was reached', () => {
    const log = parseRequestLog(parseSyslogFrame(NOSRV_FRAME)?.message ?? '');
    expect(log).toMatchObject({ server: undefined, serverMs: -1, status: 404, terminationState: 'LR--' });
  });
  it('counts a redispatched retry (`+1`) as one retry', () => {
    const msg = (parseSyslogFrame(GET_FRAME)?.message ?? '').replace(' 1 1 0 ---- ', ' 1 1 +1 ---- ');
    expect(parseRequestLog(msg)?.retries).toBe(1);
  });
  it('ignores server state messages', () => {
    expect(parseRequestLog(parseSyslogFrame(STATE_FRAME)?.message ?? '')).toBeUndefined();
  });
});

describe('parseHaproxyDate', () => {
  it('parses milliseconds within the same second and across seconds', () => {
    expect(parseHaproxyDate('23/Nov/2026:09:34:27.002')).toBe(
      new Date(2026, 10, 23, 9, 34, 27, 2).toISOString(),
    );
    expect(parseHaproxyDate('23/Nov/2026:09:34:27.999')).toBe(
      new Date(2026, 10, 23, 9, 34, 27, 999).toISOString(),
    );
    expect(parseHaproxyDate('23/Nov/2026:09:34:28.000')).toBe(
      new Date(2026, 10, 23, 9, 34, 28, 0).toISOString(),
    );
    expect(parseHaproxyDate('garbage')).toBeUndefined();
  });
});

describe('splitFields', () => {
  it('keeps quoted fields with spaces and undoes escapes', () => {
    expect(splitFields('a "b c" "d\\"e" f')).toEqual(['a', 'b c', 'd"e', 'f']);
  });
});
