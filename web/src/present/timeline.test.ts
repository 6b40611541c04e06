import { describe, expect, it } from 'vitest';
import { collapseTimeline } from './timeline.ts';

const at = (s: number): string => new Date(Date.UTC(2026, 11, 1, 23, 56, s)).toISOString();

describe('collapseTimeline', () => {
  it('keeps a timeline without repeats as it is, one step per entry', () => {
    const steps = collapseTimeline([
      { at: at(1), event: 'detected', detail: 'hang (critical): no response' },
      { at: at(2), event: 'isolated', detail: 'out of traffic' },
      { at: at(3), event: 'quarantined', detail: 'process 12 kept alive' },
    ]);
    expect(steps.map((s) => [s.event, s.count])).toEqual([
      ['detected', 1],
      ['isolated', 1],
      ['quarantined', 1],
    ]);
  });

  it('shows the same event with the same text once, with a count and the last time', () => {
    const steps = collapseTimeline([
      { at: at(1), event: 'detected', detail: 'crash: exited with code 1' },
      { at: at(2), event: 'isolated', detail: 'out of traffic' },
      { at: at(5), event: 'detected', detail: 'crash: exited with code 1' },
      { at: at(9), event: 'detected', detail: 'crash: exited with code 1' },
    ]);
    expect(steps.map((s) => s.event)).toEqual(['detected', 'isolated']);
    expect(steps[0]).toMatchObject({ count: 3, at: at(1), lastAt: at(9), others: [] });
  });

  it('collapses a run of the same event whose texts differ, keeping each other text once', () => {
    const steps = collapseTimeline([
      { at: at(1), event: 'replacement-ready', detail: 'restarted process 4121 is ready' },
      { at: at(2), event: 'replacement-ready', detail: 'restarted process 4188 is ready' },
      { at: at(3), event: 'replacement-ready', detail: 'restarted process 4188 is ready' },
      { at: at(4), event: 'resolved', detail: 'recovered' },
    ]);
    expect(steps).toHaveLength(2);
    expect(steps[0]).toMatchObject({
      event: 'replacement-ready',
      detail: 'restarted process 4121 is ready',
      count: 3,
      lastAt: at(3),
      others: ['restarted process 4188 is ready'],
    });
    expect(steps[1]).toMatchObject({ event: 'resolved', count: 1 });
  });

  it('orders by time first (entries may arrive out of order)', () => {
    const steps = collapseTimeline([
      { at: at(3), event: 'resolved', detail: 'done' },
      { at: at(1), event: 'onset', detail: 'first bad signal' },
    ]);
    expect(steps.map((s) => s.event)).toEqual(['onset', 'resolved']);
  });

  it('never shows a step twice in a real incident record', async () => {
    // The engine's own builder (src/isolation), with a state recorded again after a restart.
    const { addEvent } = await import('../../../src/isolation/controller/incident-record.ts');
    const inc = {
      id: 'inc-1',
      state: 'open',
      detectedAt: at(1),
      durations: {},
      timeline: [] as { at: string; event: string; detail: string }[],
      updatedAt: at(1),
    } as unknown as Parameters<typeof addEvent>[0];
    addEvent(inc, 'detected', Date.parse(at(1)), 'hang (critical): no response');
    addEvent(inc, 'isolated', Date.parse(at(2)), 'out of traffic (server in maint)');
    addEvent(inc, 'quarantined', Date.parse(at(3)), 'process 7 kept alive');
    addEvent(inc, 'isolated', Date.parse(at(4)), 'out of traffic (server in maint)');
    const steps = collapseTimeline(inc.timeline);
    const keys = steps.map((s) => `${s.event}|${s.detail}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(steps.find((s) => s.event === 'isolated')?.count).toBe(2);
  });
});
