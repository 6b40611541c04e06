import { describe, expect, it } from 'vitest';
import { RequestStats, percentile } from './request-stats.ts';
import type { RequestLog } from '../dataplane.ts';

const log = (server: string | undefined, status: number, totalMs: number): RequestLog => ({
  at: '',
  clientIp: '127.0.0.1',
  backend: 'web.shop.acme',
  server,
  method: 'GET',
  path: '/',
  status,
  totalMs,
  serverMs: totalMs,
  retries: 0,
  terminationState: '----',
  bytesRead: 1,
});

describe('RequestStats', () => {
  it('counts status classes and latency percentiles per instance', () => {
    const s = new RequestStats();
    for (let i = 1; i <= 100; i++) s.add(log('i1', i <= 90 ? 200 : 503, i));
    s.add(log('i2', 404, 5));
    const i1 = s.get('web.shop.acme', 'i1');
    expect(i1).toMatchObject({ count: 100, p50Ms: 50, p99Ms: 99 });
    expect(i1?.byClass).toEqual({ '2xx': 90, '3xx': 0, '4xx': 0, '5xx': 10, other: 0 });
    expect(s.get('web.shop.acme', 'i2')?.byClass['4xx']).toBe(1);
  });
  it('forgets samples older than the window', () => {
    let now = 0;
    const s = new RequestStats({ windowMs: 1000, now: () => now });
    s.add(log('i1', 500, 10));
    now = 900;
    s.add(log('i1', 200, 10));
    now = 1500;
    expect(s.get('web.shop.acme', 'i1')?.count).toBe(1);
    now = 3000;
    expect(s.get('web.shop.acme', 'i1')).toBeUndefined();
  });
  it('skips lines without a server', () => {
    const s = new RequestStats();
    s.add(log(undefined, 404, 1));
    expect(s.all()).toEqual([]);
  });
});

describe('percentile', () => {
  it('uses nearest rank', () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    expect(percentile([], 99)).toBe(0);
  });
});

describe('RequestStats capacity', () => {
  it('keeps only the newest samples when an instance exceeds its capacity', () => {
    const s = new RequestStats({ maxSamplesPerInstance: 10 });
    for (let i = 1; i <= 25; i++) s.add(log('i1', 200, i));
    expect(s.get('web.shop.acme', 'i1')).toMatchObject({ count: 10, p50Ms: 20, p99Ms: 25 });
  });
});
