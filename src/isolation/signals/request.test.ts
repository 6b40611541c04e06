import { describe, expect, it } from 'vitest';
import type { RequestLog } from '../../dataplane/dataplane.ts';
import { classifyTermination, fromRequestLog } from './request.ts';
import { SERVER_FAULT_OUTCOMES } from './types.ts';

const log = (over: Partial<RequestLog> = {}): RequestLog => ({
  at: '2026-11-23T09:00:00.000Z',
  clientIp: '127.0.0.1',
  backend: 'api.accounts.bank',
  server: 'bank.accounts.api-0',
  method: 'GET',
  path: '/x',
  status: 200,
  totalMs: 12,
  serverMs: 10,
  retries: 0,
  terminationState: '----',
  bytesRead: 100,
  ...over,
});

describe('classifyTermination', () => {
  it.each([
    ['----', 200, 'ok'],
    ['----', 404, 'ok'],
    ['----', 503, 'http-5xx'],
    ['SC--', 503, 'connect-refused'],
    ['sC--', 503, 'connect-timeout'],
    ['SH--', 502, 'server-aborted'],
    ['SD--', 200, 'server-aborted'],
    ['sH--', 504, 'server-timeout'],
    ['sD--', 200, 'server-timeout'],
    ['sQ--', 503, 'queue-timeout'],
    ['PH--', 502, 'bad-response'],
    ['CD--', 200, 'client-abort'],
    ['cD--', 200, 'client-abort'],
    ['CH--', -1, 'client-abort-waiting'],
    ['cR--', 408, 'client-abort'],
    ['LR--', 404, 'proxy'],
    ['PR--', 403, 'proxy'],
    ['KC--', 503, 'proxy'],
  ] as const)('%s with status %i is %s', (tsc, status, outcome) => {
    expect(classifyTermination(tsc, status)).toBe(outcome);
  });

  it('never blames the server for client aborts or the proxy own decisions', () => {
    for (const tsc of ['CD--', 'cD--', 'CH--', 'LR--', 'PR--']) {
      expect(SERVER_FAULT_OUTCOMES.has(classifyTermination(tsc, 500))).toBe(false);
    }
  });
});

describe('fromRequestLog', () => {
  it('stamps the signal at the end of the request and keeps the start', () => {
    const r = fromRequestLog(log({ totalMs: 250, status: 504, terminationState: 'sH--', serverMs: -1 }));
    const start = Date.parse('2026-11-23T09:00:00.000Z');
    expect(r?.instanceId).toBe('bank.accounts.api-0');
    expect(r?.signal).toMatchObject({
      type: 'request',
      startedAt: start,
      at: start + 250,
      status: 504,
      serverMs: -1,
      outcome: 'server-timeout',
      method: 'GET',
    });
  });

  it('ignores requests that reached no server', () => {
    expect(fromRequestLog(log({ server: undefined, status: 503, terminationState: 'SC--' }))).toBeUndefined();
  });

  it('rejects an unparseable time instead of producing NaN', () => {
    expect(() => fromRequestLog(log({ at: 'yesterday' }))).toThrow(/RequestLog.at 'yesterday'/);
  });
});
