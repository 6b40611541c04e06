import { describe, expect, it } from 'vitest';
import { parseMemory, withDefaults } from './defaults.ts';
import type { AppResource } from './types.ts';

const app = (): AppResource => ({
  apiVersion: 'bulwark.io/v1',
  kind: 'App',
  metadata: { name: 'ledger', project: 'bank' },
  spec: {
    workloads: [
      {
        name: 'api',
        type: 'service',
        run: { command: ['node', 'ledger.ts'] },
        ports: [{ name: 'http', port: 8080 }],
        health: { readiness: { http: { path: '/healthz', port: 'http' }, intervalMs: 500 } },
      },
      { name: 'migrate', type: 'job', run: { command: ['node', 'migrate.ts'] }, replicas: 0 },
    ],
  },
});

describe('withDefaults', () => {
  it('fills replicas, restart policy by type, grace period, port protocol and probe timing', () => {
    const [api, job] = withDefaults(app()).spec.workloads;
    expect(api).toMatchObject({ replicas: 1, restartPolicy: 'Always', terminationGracePeriodMs: 10_000 });
    expect(api?.ports).toEqual([{ name: 'http', port: 8080, protocol: 'http' }]);
    expect(api?.health?.readiness).toEqual({
      http: { path: '/healthz', port: 'http' },
      intervalMs: 500,
      timeoutMs: 1000,
      failureThreshold: 3,
      successThreshold: 1,
      initialDelayMs: 0,
    });
    expect(api?.health?.liveness).toBeUndefined();
    expect(job).toMatchObject({ replicas: 0, restartPolicy: 'OnFailure' });
  });

  it('places an App without placement on the single default site local', () => {
    expect(withDefaults(app()).spec.placement).toEqual({ sites: [{ name: 'local', weight: 100 }] });
  });

  it('keeps an explicit placement and fills missing weights', () => {
    const a = app();
    a.spec.placement = { sites: [{ name: 'dc1' }, { name: 'dc2', weight: 10 }] };
    expect(withDefaults(a).spec.placement).toEqual({
      sites: [
        { name: 'dc1', weight: 100 },
        { name: 'dc2', weight: 10 },
      ],
    });
  });

  it('does not modify its input', () => {
    const a = app();
    const before = structuredClone(a);
    withDefaults(a);
    expect(a).toEqual(before);
  });
});

describe('parseMemory', () => {
  it.each([
    ['128Mi', 128 * 2 ** 20],
    ['1Gi', 2 ** 30],
    ['512M', 512e6],
    ['64Ki', 65536],
    ['2k', 2000],
    ['134217728', 134217728],
    ['0.5Gi', 2 ** 29],
  ])('parses %s', (text, bytes) => {
    expect(parseMemory(text)).toBe(bytes);
  });

  it.each(['128MB', 'Mi', '-1Gi', '1 Gi x', ''])('rejects %j with the accepted forms', (text) => {
    expect(() => parseMemory(text)).toThrow(
      /use a number of bytes with an optional unit, e.g. 134217728, 128Mi, 1Gi, 512M/,
    );
  });
});
