import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../util/time.ts';
import { ResourceSource, type ResourceSample } from './resources.ts';
import { MapView, RecordingSink, instance } from './testing.ts';

describe('ResourceSource', () => {
  let src: ResourceSource | undefined;
  afterEach(async () => {
    await src?.stop();
    src = undefined;
  });

  it('emits memory with its limit and CPU throttling as deltas, rebaselining on a new process', async () => {
    const samples: Record<string, ResourceSample> = {
      'm-0': { memoryBytes: 900, memoryLimitBytes: 1000, cpuThrottledPeriods: 10, cpuPeriods: 100 },
      'u-0': { memoryBytes: 5 },
    };
    const view = new MapView(instance('m-0', { pid: 10 }), instance('u-0', { pid: 11 }), instance('gone-0'));
    const sink = new RecordingSink();
    src = new ResourceSource({ stats: (id) => samples[id], intervalMs: 20, cpuIntervalMs: 20 });
    src.start(sink, view);
    await waitFor(
      'first samples',
      () => sink.of('m-0', 'memory').length >= 1 && sink.of('u-0', 'memory').length >= 1,
    );
    expect(sink.of('m-0', 'memory')[0]).toMatchObject({ usageBytes: 900, limitBytes: 1000 });
    expect(sink.of('u-0', 'memory')[0]).toMatchObject({ usageBytes: 5, limitBytes: Infinity });
    // The first sample is only a baseline; later ones with unchanged counters are empty deltas.
    expect(sink.of('m-0', 'cpu-throttle').every((s) => s.nrPeriods === 0 && s.throttledPeriods === 0)).toBe(
      true,
    );

    samples['m-0'] = { memoryBytes: 950, memoryLimitBytes: 1000, cpuThrottledPeriods: 16, cpuPeriods: 110 };
    await waitFor('throttle delta', () => sink.of('m-0', 'cpu-throttle').some((s) => s.nrPeriods === 10));
    expect(sink.of('m-0', 'cpu-throttle').find((s) => s.nrPeriods === 10)?.throttledPeriods).toBe(6);

    // Restarted: counters of a new cgroup start low again; no negative delta, only a new baseline.
    const before = sink.of('m-0', 'cpu-throttle').length;
    view.set(instance('m-0', { pid: 20 }));
    samples['m-0'] = { memoryBytes: 1, memoryLimitBytes: 1000, cpuThrottledPeriods: 0, cpuPeriods: 2 };
    await waitFor('memory after restart', () => sink.of('m-0', 'memory').some((s) => s.usageBytes === 1));
    samples['m-0'] = { memoryBytes: 1, memoryLimitBytes: 1000, cpuThrottledPeriods: 1, cpuPeriods: 5 };
    await waitFor('delta after restart', () => sink.of('m-0', 'cpu-throttle').some((s) => s.nrPeriods === 3));
    const after = sink.of('m-0', 'cpu-throttle').slice(before);
    expect(after.every((s) => s.nrPeriods >= 0 && s.throttledPeriods >= 0)).toBe(true);
    expect(sink.of('gone-0', 'memory')).toEqual([]);
  });

  it('samples memory every intervalMs but spans each CPU delta over at least cpuIntervalMs', async () => {
    let periods = 0;
    const view = new MapView(instance('c-0', { pid: 10 }));
    const sink = new RecordingSink();
    src = new ResourceSource({
      // One CFS period per 10 ms, half of them throttled.
      stats: () => ({ memoryBytes: 1, cpuThrottledPeriods: (periods += 2) / 2, cpuPeriods: periods }),
      intervalMs: 10,
      cpuIntervalMs: 100,
    });
    src.start(sink, view);
    await waitFor('three CPU deltas', () => sink.of('c-0', 'cpu-throttle').length >= 3);
    const mem = sink.of('c-0', 'memory');
    const cpu = sink.of('c-0', 'cpu-throttle');
    expect(mem.length).toBeGreaterThan(cpu.length);
    for (let i = 1; i < cpu.length; i++) expect(cpu[i]!.at - cpu[i - 1]!.at).toBeGreaterThanOrEqual(100);
    // Each delta covers several polls (2 periods each), so it is a ratio, not a single period.
    expect(cpu.every((c) => c.nrPeriods >= 4 && c.throttledPeriods * 2 === c.nrPeriods)).toBe(true);
  });

  it('keeps polling when the stats call throws', async () => {
    let calls = 0;
    const errors: unknown[] = [];
    src = new ResourceSource({
      stats: () => {
        calls++;
        if (calls === 1) throw new Error('cgroup vanished');
        return { memoryBytes: 1 };
      },
      intervalMs: 10,
      onError: (_s, e) => errors.push(e),
    });
    const sink = new RecordingSink();
    src.start(sink, new MapView(instance('e-0', { pid: 1 })));
    await waitFor('recovered', () => sink.of('e-0', 'memory').length >= 2);
    expect(String(errors[0])).toContain('cgroup vanished');
    expect(src.status()).toMatchObject({ errors: 1, lastError: 'cgroup vanished' });
  });
});
