import { describe, expect, it } from 'vitest';
import { diffResources, diffValues, renderDiff } from './diff.ts';
import type { AppResource } from './types.ts';

const app = (): AppResource => ({
  apiVersion: 'bulwark.io/v1',
  kind: 'App',
  metadata: { name: 'gateway', project: 'bank' },
  spec: {
    workloads: [
      { name: 'api', type: 'service', replicas: 2, run: { command: ['node', 'gw.ts'] }, env: { A: '1' } },
      { name: 'worker', type: 'service', run: { command: ['node', 'w.ts'] } },
    ],
  },
});

describe('diffResources', () => {
  it('reports no change for equal specs, ignoring metadata and status', () => {
    const b = app();
    b.metadata.resourceVersion = 7;
    b.status = { conditions: [] };
    expect(diffResources(app(), b)).toEqual([]);
  });

  it('reports a changed scalar with its path and renders it', () => {
    const b = app();
    b.spec.workloads[0]!.replicas = 5;
    const d = diffResources(app(), b);
    expect(d).toEqual([{ op: 'change', path: 'spec.workloads[0].replicas', from: 2, to: 5 }]);
    expect(renderDiff(d)).toBe('~ spec.workloads[0].replicas: 2 -> 5');
  });

  it('reports added and removed map keys', () => {
    const b = app();
    b.spec.workloads[0]!.env = { B: '2' };
    expect(renderDiff(diffResources(app(), b))).toBe(
      '- spec.workloads[0].env.A: "1"\n+ spec.workloads[0].env.B: "2"',
    );
  });

  it('matches named list items by name, so removing the first is one removal', () => {
    const b = app();
    b.spec.workloads.shift();
    expect(diffResources(app(), b)).toEqual([
      { op: 'remove', path: 'spec.workloads[0]', from: app().spec.workloads[0] },
    ]);
  });

  it('compares unnamed lists whole', () => {
    const b = app();
    b.spec.workloads[1]!.run!.command = ['node', 'w2.ts'];
    expect(renderDiff(diffResources(app(), b))).toBe(
      '~ spec.workloads[1].run.command: ["node","w.ts"] -> ["node","w2.ts"]',
    );
  });

  it('shows a create as one add of the spec and a delete as one removal', () => {
    expect(diffResources(undefined, app())).toEqual([{ op: 'add', path: 'spec', to: app().spec }]);
    expect(diffResources(app(), undefined)).toEqual([{ op: 'remove', path: 'spec', from: app().spec }]);
  });

  it('reports a type change of a field as a change', () => {
    expect(diffValues({ a: { x: 1 } }, { a: 'x' })).toEqual([
      { op: 'change', path: 'a', from: { x: 1 }, to: 'x' },
    ]);
  });
});
