import { describe, expect, it } from 'vitest';
import { API_VERSION, type AppResource, type Workload } from '../../model/types.ts';
import type { InstanceStatus } from '../../runtime/driver.ts';
import { countedAsReplicas, planApp, type PlanContext } from './plan.ts';
import { computeRouting } from './routing.ts';

const ctx: PlanContext = {
  site: 'local',
  platformEnv: { BULWARK_GATEWAY_URL: 'http://gw' },
  parseMemory: () => 1,
};

function app(workloads: Partial<Workload>[]): AppResource {
  return {
    apiVersion: API_VERSION,
    kind: 'App',
    metadata: { name: 'pay', project: 'bank', generation: 1 },
    spec: {
      workloads: workloads.map((w) => ({
        name: 'api',
        type: 'service',
        run: { command: ['node', 'x.ts'] },
        ports: [{ name: 'http', port: 8080 }],
        health: { readiness: { http: { path: '/healthz', port: 'http' } } },
        ...w,
      })) as Workload[],
    },
  };
}

function running(
  spec: { id: string; ordinal: number; specHash: string; workload: string },
  extra: Partial<InstanceStatus> = {},
): InstanceStatus {
  return {
    id: spec.id,
    site: 'local',
    project: 'bank',
    app: 'pay',
    workload: spec.workload,
    ordinal: spec.ordinal,
    specHash: spec.specHash,
    phase: 'ready',
    ready: true,
    pid: 100 + spec.ordinal,
    ip: '10.213.0.2',
    ports: { http: 8080 },
    restarts: 0,
    isolation: {},
    startedAt: `2026-01-01T00:00:0${spec.ordinal}Z`,
    ...extra,
  };
}

describe('planApp', () => {
  it('starts one instance per missing ordinal with platform env and ordinal env', () => {
    const plan = planApp(app([{ replicas: 3 }]), true, [], ctx);
    expect(plan.start.map((s) => s.ordinal)).toEqual([0, 1, 2]);
    expect(plan.stop).toEqual([]);
    expect(plan.start[0]?.env).toMatchObject({
      BULWARK_GATEWAY_URL: 'http://gw',
      BULWARK_SERVICE: 'api.pay.bank',
      BULWARK_ORDINAL: '0',
    });
    expect(new Set(plan.start.map((s) => s.id)).size).toBe(3);
  });

  it('is a no-op when every ordinal runs with the current spec (idempotent)', () => {
    const first = planApp(app([{ replicas: 2 }]), true, [], ctx);
    const existing = first.start.map((s) => running(s));
    expect(planApp(app([{ replicas: 2 }]), true, existing, ctx)).toEqual({ start: [], stop: [] });
  });

  it('stops the highest ordinals when scaled down', () => {
    const first = planApp(app([{ replicas: 5 }]), true, [], ctx);
    const existing = first.start.map((s) => running(s));
    const plan = planApp(app([{ replicas: 2 }]), true, existing, ctx);
    expect(plan.start).toEqual([]);
    expect(plan.stop.map((s) => existing.find((e) => e.id === s.id)?.ordinal).sort()).toEqual([2, 3, 4]);
  });

  it('surges on a spec change: the old instance stays until the new one is ready', () => {
    const v1 = planApp(app([{ replicas: 1 }]), true, [], ctx);
    const old = running(v1.start[0]!);
    const v2app = app([{ replicas: 1, env: { FEATURE: 'on' } }]);
    const p1 = planApp(v2app, true, [old], ctx);
    expect(p1.start).toHaveLength(1);
    expect(p1.stop).toEqual([]);
    const fresh = running(p1.start[0]!, { ready: false, phase: 'starting' });
    expect(planApp(v2app, true, [old, fresh], ctx).stop).toEqual([]);
    const readyNew = { ...fresh, ready: true, phase: 'ready' as const };
    expect(planApp(v2app, true, [old, readyNew], ctx).stop.map((s) => s.id)).toEqual([old.id]);
  });

  it('stops a stateful instance before starting its replacement under the same id', () => {
    const a1 = app([{ type: 'stateful', replicas: 1 }]);
    const v1 = planApp(a1, true, [], ctx);
    expect(v1.start[0]?.id).toBe('bank.pay.api-0');
    const old = running(v1.start[0]!);
    const p = planApp(app([{ type: 'stateful', replicas: 1, env: { X: '1' } }]), true, [old], ctx);
    expect(p.start).toEqual([]);
    expect(p.stop.map((s) => s.id)).toEqual(['bank.pay.api-0']);
  });

  it('removes duplicates of one ordinal, keeping the oldest', () => {
    const v1 = planApp(app([{ replicas: 1 }]), true, [], ctx);
    const a = running(v1.start[0]!);
    const b = running({ ...v1.start[0]!, id: 'bank.pay.api-0-dup' }, { startedAt: '2026-01-01T00:00:09Z' });
    const plan = planApp(app([{ replicas: 1 }]), true, [b, a], ctx);
    expect(plan.stop.map((s) => s.id)).toEqual(['bank.pay.api-0-dup']);
  });

  it('does not restart a finished job', () => {
    const job = app([{ type: 'job', replicas: 1, ports: [], health: {}, restartPolicy: 'OnFailure' }]);
    const v1 = planApp(job, true, [], ctx);
    const done = running(v1.start[0]!, { phase: 'succeeded', ready: false, pid: undefined });
    expect(planApp(job, true, [done], ctx)).toEqual({ start: [], stop: [] });
  });

  it('stops everything when the app is not placed on this site', () => {
    const v1 = planApp(app([{ replicas: 2 }]), true, [], ctx);
    const existing = v1.start.map((s) => running(s));
    expect(planApp(app([{ replicas: 2 }]), false, existing, ctx).stop).toHaveLength(2);
  });
});

describe('computeRouting', () => {
  it('routes ready instances and keeps others, stopping ones and held-out ones in maint', () => {
    const a = app([{ replicas: 3 }]);
    const v1 = planApp(a, true, [], ctx);
    const [i0, i1, i2] = v1.start.map((s) => running(s));
    const notReady = { ...i1!, ready: false, phase: 'running' as const };
    const r = computeRouting([a], [i0!, notReady, i2!], 'local', new Set([i2!.id]));
    expect(r.backends).toHaveLength(1);
    const b = r.backends[0]!;
    expect(b.name).toBe('api.pay.bank');
    expect(b.aliases).toEqual(['pay.bank']);
    expect(b.servers.map((s) => [s.name === i0!.id, s.state])).toEqual(
      [i0!, notReady, i2!]
        .sort((x, y) => x.id.localeCompare(y.id))
        .map((x) => [x.id === i0!.id, x.id === i0!.id ? 'ready' : 'maint']),
    );
    expect(b.servers[0]?.checkPath).toBe('/healthz');
    const held = computeRouting([a], [i0!], 'local', new Set(), new Set([i0!.id]));
    expect(held.backends[0]?.servers[0]?.state).toBe('maint');
  });

  it('keeps an instance in backoff as a maint server and drops instances that have ended', () => {
    const a = app([{ replicas: 1 }]);
    const v1 = planApp(a, true, [], ctx);
    const waiting = running(v1.start[0]!, { phase: 'backoff', ready: false, pid: undefined });
    expect(computeRouting([a], [waiting], 'local', new Set()).backends[0]?.servers).toMatchObject([
      { name: waiting.id, state: 'maint' },
    ]);
    const failed = { ...waiting, phase: 'failed' as const };
    expect(computeRouting([a], [failed], 'local', new Set()).backends[0]?.servers).toEqual([]);
  });
});

describe('planApp: workload type for runtimes that map it to objects', () => {
  it('passes the workload type on every start, outside the spec hash', () => {
    const stateful = planApp(app([{ type: 'stateful', replicas: 1 }]), true, [], ctx).start[0];
    const job = planApp(app([{ type: 'job', replicas: 1 }]), true, [], ctx).start[0];
    expect(stateful?.workloadType).toBe('stateful');
    expect(job?.workloadType).toBe('job');
    // A running instance planned before the field existed keeps its hash: no mass replacement.
    const service = planApp(app([{ replicas: 1 }]), true, [], ctx).start[0]!;
    expect(service.workloadType).toBe('service');
    const again = planApp(app([{ replicas: 1 }]), true, [running(service)], ctx);
    expect(again.start).toHaveLength(0);
    expect(again.stop).toHaveLength(0);
  });
});

describe('countedAsReplicas', () => {
  it('leaves out quarantined instances, also while they are being removed, so quarantine delete keeps the replacement', () => {
    const [spec] = planApp(app([{ replicas: 1 }]), true, [], ctx).start;
    const quarantine = { since: '2026-01-01T00:00:00Z', reason: 'http-5xx-burst' };
    const old = running({ ...spec!, id: 'old' }, { phase: 'stopping', ready: false, quarantine });
    const replacement = running({ ...spec!, id: 'new' }, { startedAt: '2026-01-01T00:00:09Z' });
    expect(countedAsReplicas([old, replacement]).map((i) => i.id)).toEqual(['new']);
    // Counted as before, the older quarantined one kept the ordinal and the replacement was the duplicate.
    expect(planApp(app([{ replicas: 1 }]), true, [old, replacement], ctx).stop).toEqual([
      { id: 'new', why: 'duplicate instance for this ordinal' },
    ]);
    expect(planApp(app([{ replicas: 1 }]), true, countedAsReplicas([old, replacement]), ctx)).toEqual({
      start: [],
      stop: [],
    });
  });
});
