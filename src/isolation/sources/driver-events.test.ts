import { describe, expect, it } from 'vitest';
import type { DriverEvent, InstanceStatus } from '../../runtime/driver.ts';
import { DriverEventSource, exitSignalReason } from './driver-events.ts';
import { MapView, RecordingSink, instance } from './testing.ts';

class EventDriver {
  listeners = new Set<(ev: DriverEvent) => void>();
  watch(l: (ev: DriverEvent) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  changed(i: InstanceStatus): void {
    for (const l of this.listeners) l({ type: 'changed', instance: i });
  }
}

const exit = (
  at: string,
  reason: 'exited' | 'signaled' | 'oom-killed' | 'start-failed',
  code: number | null,
) => ({
  reason,
  code,
  signal: reason === 'signaled' ? 'SIGKILL' : null,
  at,
  message: '',
});

describe('DriverEventSource', () => {
  it('keeps start-failed (and a shell 127/126) apart from exits of running code', () => {
    expect(exitSignalReason('start-failed')).toBe('start-failed');
    expect(exitSignalReason('exited', 127)).toBe('start-failed');
    expect(exitSignalReason('exited', 126)).toBe('start-failed');
    expect(exitSignalReason('exited', 1)).toBe('exited');
    expect(exitSignalReason('oom-killed')).toBe('oom-killed');
    expect(exitSignalReason('liveness-failed')).toBe('liveness-failed');
  });

  it('reports new exits and restarts, never what an instance looked like when first seen', () => {
    const old = instance('a-0', {
      restarts: 2,
      lastExit: exit('2020-01-01T00:00:00.000Z', 'signaled', null),
    });
    const view = new MapView(old);
    const driver = new EventDriver();
    const sink = new RecordingSink();
    const src = new DriverEventSource({ driver });
    src.start(sink, view);
    driver.changed({ ...old, phase: 'ready' });
    expect(sink.signals).toEqual([]);

    const crashed = {
      ...old,
      phase: 'backoff' as const,
      lastExit: exit('2030-01-01T00:00:01.000Z', 'oom-killed', 137),
    };
    view.set(crashed);
    driver.changed(crashed);
    driver.changed(crashed); // the same exit again: no second signal
    const restarted = {
      ...crashed,
      phase: 'starting' as const,
      restarts: 3,
      startedAt: '2030-01-01T00:00:02.000Z',
    };
    driver.changed(restarted);
    expect(sink.signals.map((r) => r.signal)).toEqual([
      {
        type: 'exit',
        at: Date.parse('2030-01-01T00:00:01.000Z'),
        reason: 'oom-killed',
        code: 137,
        signal: null,
      },
      { type: 'restart', at: Date.parse('2030-01-01T00:00:02.000Z'), count: 3 },
    ]);

    // A new instance's first event is a baseline; untracked instances never emit.
    const fresh = instance('b-0', { lastExit: exit('2030-01-01T00:00:00.000Z', 'start-failed', 1) });
    driver.changed(fresh);
    driver.changed({ ...fresh, lastExit: exit('2030-01-01T00:00:05.000Z', 'start-failed', 1) });
    expect(sink.of('b-0', 'exit')).toEqual([]);
    view.set(fresh);
    driver.changed({ ...fresh, lastExit: exit('2030-01-01T00:00:09.000Z', 'start-failed', 1) });
    expect(sink.of('b-0', 'exit')).toMatchObject([{ reason: 'start-failed', code: 1 }]);
  });

  it('unsubscribes on stop', async () => {
    const driver = new EventDriver();
    const src = new DriverEventSource({ driver });
    src.start(new RecordingSink(), new MapView());
    expect(driver.listeners.size).toBe(1);
    await src.stop();
    expect(driver.listeners.size).toBe(0);
  });
});
