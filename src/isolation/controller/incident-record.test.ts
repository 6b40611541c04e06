import { describe, expect, it } from 'vitest';
import type { InstanceStatus } from '../../runtime/driver.ts';
import { addEvent, newIncident } from './incident-record.ts';

const inst = {
  id: 'bank.accounts.api-0-abc',
  site: 'local',
  project: 'bank',
  app: 'accounts',
  workload: 'api',
} as InstanceStatus;
const T = Date.parse('2026-11-23T10:00:00.000Z');

describe('incident record', () => {
  it('derives times, durations and state from the timeline', () => {
    const inc = newIncident(
      inst,
      {
        instanceId: inst.id,
        rule: 'http-5xx-burst',
        severity: 'critical',
        action: 'isolate',
        detectedAt: T + 120,
        onsetAt: T,
        evidence: '3 in a row',
        unresponsive: false,
        condition: 'consecutive5xx',
      },
      { action: 'isolate', reason: 'ok' },
      T + 121,
    );
    expect(inc.id).toMatch(/^inc-20261123-100000-[0-9a-f]{6}$/);
    expect(inc.state).toBe('open');
    expect(inc.durations).toEqual({ detectMs: 120 });
    addEvent(inc, 'isolated', T + 125, 'maint');
    expect(inc).toMatchObject({ state: 'isolated', isolatedAt: '2026-11-23T10:00:00.125Z' });
    addEvent(inc, 'replacement-ready', T + 1120, 'ready');
    expect(inc.state).toBe('mitigated');
    expect(inc.durations).toEqual({ detectMs: 120, isolateMs: 5, replaceMs: 1000, mttrMs: 1120 });
    addEvent(inc, 'deleted', T + 5000, 'by operator');
    expect(inc.state).toBe('resolved');
    // A late event never moves the state backward.
    addEvent(inc, 'isolated', T + 6000, 'again');
    expect(inc.state).toBe('resolved');
    expect(inc.timeline.map((t) => t.event)).toEqual([
      'onset',
      'detected',
      'isolated',
      'replacement-ready',
      'deleted',
      'isolated',
    ]);
  });
});
