import { describe, expect, it } from 'vitest';
import {
  hasRecordTag,
  parseHaproxyDate,
  parseRequestLog,
  parseSyslogFrame,
  recordPrefix,
} from './log-parser.ts';

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
    expect(parseHaproxyDate('23/Nov/2026:09:34:28.0x0')).toBeUndefined();
    expect(parseHaproxyDate('23/Foo/2026:09:34:28.000')).toBeUndefined();
  });
});

describe('parseRequestLog on raw lines (the TCP ring path)', () => {
  const RAW = (GET_FRAME.split(': ')[1] ?? '').trimEnd();
  it('parses a raw line, with or without its newline, the same as the framed one', () => {
    const framed = parseRequestLog(parseSyslogFrame(GET_FRAME)?.message ?? '');
    expect(parseRequestLog(RAW)).toEqual(framed);
    expect(parseRequestLog(RAW + '\n')).toEqual(framed);
    expect(parseRequestLog(RAW + '\r\n')).toEqual(framed);
  });
  it('undoes escapes in quoted fields and keeps spaces inside them', () => {
    const line = RAW.replace('"/acme/shop/web/x"', '"/a\\"b\\\\c"').replace(' "" ', ' "x y \\"z\\"" ');
    const log = parseRequestLog(line);
    expect(log?.path).toBe('/a"b\\c');
    expect(log?.caller).toBe('x y "z"');
    expect(log?.traceparent).toBe('00-ae23c26682ad4ae2ba60d9bdf9567543-ea6e1350bc2f47b2-01');
    expect(log?.status).toBe(200);
  });
  it('reads unquoted `-` captures as absent', () => {
    const line = RAW.replace(' "" "00-', ' - "00-');
    expect(parseRequestLog(line)?.caller).toBeUndefined();
    expect(parseRequestLog(RAW.replace(/ "00-[^"]*"$/, ' -'))?.traceparent).toBeUndefined();
  });
  it('reads -1, +1 and non-numbers', () => {
    const log = parseRequestLog(RAW.replace(' 200 1 1 0 ---- 115 ', ' 200 +12 -1 +1 ---- x1 '));
    expect(log).toMatchObject({ status: 200, totalMs: 12, serverMs: -1, retries: 1, bytesRead: -1 });
    expect(parseRequestLog(RAW.replace(' 200 1 ', ' - 1 '))?.status).toBe(-1);
  });
  it('rejects truncated lines instead of guessing the missing fields', () => {
    for (let cut = RAW.length - 1; cut > 'bwlog1 '.length; cut -= 7) {
      const log = parseRequestLog(RAW.slice(0, cut));
      // Cut inside the last field leaves a shorter (still well-formed) traceparent at most.
      if (log) expect(cut).toBeGreaterThan(RAW.lastIndexOf(' "'));
    }
    expect(parseRequestLog(RAW.slice(0, RAW.indexOf(' ----')))).toBeUndefined();
    expect(parseRequestLog(RAW.replace(/"00-[^"]*"$/, '"00-unterminated'))).toBeUndefined();
    expect(parseRequestLog('bwlog1 ')).toBeUndefined();
    expect(parseRequestLog('bwlog1')).toBeUndefined();
    expect(parseRequestLog('')).toBeUndefined();
  });
  it('keeps the line when only the date is garbled, with the receive time instead', () => {
    const before = Date.now();
    const log = parseRequestLog(RAW.replace('23/Nov/2026:09:34:27.002', '23/Nov/2026:09:34:27.0x2'));
    expect(log?.server).toBe('i1');
    expect(Date.parse(log?.at ?? '')).toBeGreaterThanOrEqual(before - 1);
  });
  it('converts dates across second boundaries and back', () => {
    const at = (d: string) => parseRequestLog(RAW.replace('23/Nov/2026:09:34:27.002', d))?.at;
    expect(at('23/Nov/2026:09:34:27.002')).toBe(new Date(2026, 10, 23, 9, 34, 27, 2).toISOString());
    expect(at('23/Nov/2026:09:34:28.999')).toBe(new Date(2026, 10, 23, 9, 34, 28, 999).toISOString());
    expect(at('31/Dec/2026:23:59:59.500')).toBe(new Date(2026, 11, 31, 23, 59, 59, 500).toISOString());
    expect(at('23/Nov/2026:09:34:27.010')).toBe(new Date(2026, 10, 23, 9, 34, 27, 10).toISOString());
  });
});

describe('parseRequestLog with a log key', () => {
  const RAW = (GET_FRAME.split(': ')[1] ?? '').trimEnd();
  const KEY = '0123456789abcdef0123456789abcdef';
  const keyed = RAW.replace('bwlog1 ', `bwlog1 ${KEY} `);
  it('parses a record that starts with the tag and the key, the same as an unkeyed one', () => {
    expect(parseRequestLog(keyed, recordPrefix(KEY))).toEqual(parseRequestLog(RAW));
  });
  it('refuses a record without the key, with another key, or with the key anywhere but the start', () => {
    const prefix = recordPrefix(KEY);
    expect(parseRequestLog(RAW, prefix)).toBeUndefined();
    expect(parseRequestLog(keyed.replace(KEY, 'f'.repeat(32)), prefix)).toBeUndefined();
    expect(parseRequestLog(`x ${keyed}`, prefix)).toBeUndefined();
    expect(parseRequestLog(keyed.replace(KEY, KEY.slice(0, 31)), prefix)).toBeUndefined();
    expect(hasRecordTag(RAW)).toBe(true);
    expect(hasRecordTag(`x ${RAW}`)).toBe(false);
  });
});
