/**
 * `--wait` progress: one status line rewritten in place on a terminal, a
 * line per change elsewhere, and no placeholder where the spec knows the
 * number (pure logic: the API is a scripted sequence of app documents).
 */
import { describe, expect, it } from 'vitest';
import type { AppResource, WorkloadStatus } from '../../model/types.ts';
import type { ApiClient } from '../client.ts';
import type { Io } from './resources.ts';
import { describeProgress, waitForApps } from './wait.ts';

function app(generation: number, observed: number, workloads?: WorkloadStatus[], ready = false): AppResource {
  return {
    apiVersion: 'bulwark.io/v1',
    kind: 'App',
    metadata: { name: 'web', project: 'shop', generation },
    spec: { workloads: [{ name: 'api', type: 'service', replicas: 3, run: { command: ['x'] } }] },
    status: {
      observedGeneration: observed,
      conditions: [
        { type: 'Ready', status: ready ? 'True' : 'False', reason: '', message: '', lastTransitionTime: '' },
      ],
      ...(workloads ? { workloads } : {}),
    },
  } as AppResource;
}

const inst = (id: string, phase: string, ready: boolean) => ({
  id,
  site: 'local',
  phase,
  ready,
  restarts: 0,
});

describe('describeProgress', () => {
  it('before the controller observed the generation: the desired count from the spec, not a placeholder', () => {
    const p = describeProgress(app(2, 1), 2);
    expect(p.text).toBe('shop/web: api 0/3 ready (controller has not picked up generation 2 yet)');
    expect(p).toMatchObject({ ready: 0, desired: 3, done: false });
  });

  it('counts instances that are not ready by phase, and gives the Degraded reason', () => {
    const a = app(2, 2, [
      {
        name: 'api',
        replicas: 3,
        readyReplicas: 1,
        instances: [inst('a', 'running', true), inst('b', 'starting', false), inst('c', 'starting', false)],
      },
    ]);
    a.status!.conditions.push({
      type: 'Degraded',
      status: 'True',
      reason: 'InstancesNotReady',
      message: '2 of 3 instances not ready',
      lastTransitionTime: '',
    });
    expect(describeProgress(a, 2).text).toBe(
      'shop/web: api 1/3 ready (2 starting) (degraded: 2 of 3 instances not ready)',
    );
  });
});

describe('waitForApps', () => {
  const seq = [
    app(2, 1),
    app(2, 2, [{ name: 'api', replicas: 3, readyReplicas: 1, instances: [inst('a', 'running', true)] }]),
    app(2, 2, [{ name: 'api', replicas: 3, readyReplicas: 1, instances: [inst('a', 'running', true)] }]),
    app(2, 2, [{ name: 'api', replicas: 3, readyReplicas: 3, instances: [] }], true),
  ];
  const api = (): ApiClient => {
    let i = 0;
    return { request: async () => seq[Math.min(i++, seq.length - 1)] } as unknown as ApiClient;
  };

  it('on a terminal rewrites one status line and ends it, then says ready once', async () => {
    const status: (string | undefined)[] = [];
    const err: string[] = [];
    const io: Io = { out: () => undefined, err: (s) => err.push(s), status: (s) => status.push(s) };
    await waitForApps(api(), io, [{ project: 'shop', name: 'web', generation: 2 }], 10_000);
    expect(status).toHaveLength(5);
    expect(status[0]).toMatch(
      /^0\/1 apps ready, 0\/3 instances, \d+ s · shop\/web: api 0\/3 ready \(controller/,
    );
    expect(status[3]).toMatch(/^1\/1 apps ready, 3\/3 instances, \d+ s$/);
    expect(status[4]).toBeUndefined();
    expect(err).toEqual([expect.stringMatching(/^ready: shop\/web in \d+ s$/)]);
  });

  it('elsewhere prints a line only when the picture changes', async () => {
    const err: string[] = [];
    await waitForApps(
      api(),
      { out: () => undefined, err: (s) => err.push(s) },
      [{ project: 'shop', name: 'web', generation: 2 }],
      10_000,
    );
    expect(err.slice(0, -1)).toEqual([
      'shop/web: api 0/3 ready (controller has not picked up generation 2 yet)',
      'shop/web: api 1/3 ready',
      'shop/web: api 3/3 ready',
    ]);
  });
});
