import { describe, expect, it } from 'vitest';
import { planCpus } from './cpu-plan.ts';

describe('planCpus', () => {
  it('leaves the instances unpinned when nothing is pinned', () => {
    expect(planCpus(4, undefined, undefined)).toEqual({});
  });

  it('gives the instances the CPUs the gateway and the control plane do not use', () => {
    expect(planCpus(4, [3], undefined)).toEqual({ instances: [0, 1, 2] });
    expect(planCpus(4, undefined, [0])).toEqual({ instances: [1, 2, 3] });
    // The small-box layout: both platform parts on one core.
    expect(planCpus(2, [1], [1])).toEqual({ instances: [0] });
    expect(planCpus(4, [2, 3], [1])).toEqual({ instances: [0] });
  });

  it('refuses a plan that leaves the instances no CPU, naming both sets', () => {
    expect(() => planCpus(2, [1], [0])).toThrow(
      /gateway's CPUs \(1\) and the control plane's \(0\) are all 2 CPUs: leave at least one to the instances/,
    );
  });
});
