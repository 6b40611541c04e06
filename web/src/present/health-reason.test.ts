import { describe, expect, it } from 'vitest';
import type { AppResource as ServerApp } from '../../../src/model/types.ts';
import type { InstanceStatus } from '../../../src/runtime/driver.ts';
import { computeAppStatus } from '../../../src/controlplane/controllers/app-status.ts';
import type { Resource } from '../api/types.ts';
import { appHealth } from '../components/health.tsx';
import { formatDateTime } from '../i18n/format.ts';
import { translate } from '../i18n/translate.ts';
import { healthReasons } from './health-reason.ts';

const ctx = {
  t: (k: Parameters<typeof translate>[1], v?: Record<string, string | number>) => translate('en', k, v),
  fmtTime: (iso: string) => formatDateTime('en', iso, 'UTC'),
};

const app = {
  apiVersion: 'bulwark.dev/v1',
  kind: 'App',
  metadata: { name: 'payments', project: 'bank', generation: 1 },
  spec: { workloads: [{ name: 'api', replicas: 2, run: { command: ['node', 'server.js'] } }] },
} as unknown as ServerApp;

const inst = (id: string, extra: Partial<InstanceStatus> = {}): InstanceStatus =>
  ({
    id,
    site: 'local',
    project: 'bank',
    app: 'payments',
    workload: 'api',
    ordinal: 0,
    specHash: 'h',
    phase: 'ready',
    ready: true,
    ip: '127.0.0.1',
    ports: {},
    restarts: 0,
    isolation: {},
    ...extra,
  }) as InstanceStatus;

/** The App as the control plane's status writer leaves it (computeAppStatus, the real rules). */
function withStatus(instances: InstanceStatus[], problems: string[] = []): Resource {
  const status = computeAppStatus(app, instances, ['local'], problems, '2026-12-01T23:56:50.000Z');
  return { ...app, status } as unknown as Resource;
}

describe('healthReasons', () => {
  it('"Degraded" with 2 of 2 ready says why: an instance quarantined and replaced', () => {
    const a = withStatus([
      inst('bank.payments.api-0-old', {
        phase: 'quarantined',
        ready: false,
        quarantine: { since: '2026-12-01T23:56:50.000Z', reason: 'inc-20261201-235650-72eec3: hang' },
      }),
      inst('bank.payments.api-0-new'),
      inst('bank.payments.api-1-abc', { ordinal: 1 }),
    ]);
    expect(appHealth(a)).toBe('degraded');
    const w = a.status!.workloads![0]!;
    expect([w.readyReplicas, w.replicas]).toEqual([2, 2]);
    const reasons = healthReasons(a, ctx);
    expect(reasons.map((r) => r.condition)).toEqual(['Quarantined']);
    expect(reasons[0]!.what).toBe(
      '1 instance(s) kept out of traffic for diagnosis (hang); replacements serve instead.',
    );
    expect(reasons[0]!.original).toContain('inc-20261201-235650-72eec3');
  });

  it('a start failure keeps an app Degraded with all replicas ready: the reason is shown', () => {
    const a = withStatus(
      [inst('bank.payments.api-0-a'), inst('bank.payments.api-1-b', { ordinal: 1 })],
      ['cannot start api[2]: no free port in the range'],
    );
    expect(appHealth(a)).toBe('degraded');
    const reasons = healthReasons(a, ctx);
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatchObject({ condition: 'Degraded', reason: 'ReconcileError' });
    expect(reasons[0]!.what).toBe('Could not start api #2: no free port in the range.');
  });

  it('a crash-looping instance: the exit and the next restart, in words and with a zone', () => {
    const a = withStatus([
      inst('bank.payments.api-0-a'),
      inst('bank.payments.api-1-b', {
        ordinal: 1,
        phase: 'backoff',
        ready: false,
        lastExit: {
          reason: 'exited',
          code: 1,
          signal: null,
          at: '2026-12-01T23:56:40.000Z',
          message: 'exited with code 1',
        },
        nextRestartAt: '2026-12-01T23:56:52.000Z',
      }),
    ]);
    expect(appHealth(a)).toBe('degraded');
    const text = healthReasons(a, ctx)
      .map((r) => r.what)
      .join(' | ');
    expect(text).toContain('bank.payments.api-1-b keeps failing and waits before its next restart.');
    expect(text).toContain('The process exited with code 1.');
    expect(text).toContain('Next restart at Dec 1, 11:56:52 PM UTC.');
    expect(text).toContain('api: 1 of 2 replicas ready');
    expect(text).not.toMatch(/\d{4}-\d\d-\d\dT/);
  });

  it('a healthy app has no reasons', () => {
    const a = withStatus([inst('bank.payments.api-0-a'), inst('bank.payments.api-1-b', { ordinal: 1 })]);
    expect(appHealth(a)).toBe('ok');
    expect(healthReasons(a, ctx)).toEqual([]);
  });
});
