/** A complete, realistic Incident for store, API and CLI tests; override what the test is about. */
import type { Incident } from '../../model/incidents.ts';

export function sampleIncident(overrides: Partial<Incident> = {}): Incident {
  const id = overrides.id ?? 'inc-20260102-abc123';
  const base: Incident = {
    id,
    site: 'local',
    project: 'bank',
    app: 'payments',
    workload: 'api',
    instanceId: 'payments-api-0',
    signature: 'http-5xx-burst',
    severity: 'critical',
    evidenceSummary: '12 of the last 12 requests answered 5xx within 800 ms (threshold 10)',
    state: 'isolated',
    action: { kind: 'isolate', reason: 'rule http-5xx-burst: action isolate; 2 healthy peers remain' },
    replacementId: 'payments-api-3',
    onsetAt: '2026-01-02T03:04:05.000Z',
    detectedAt: '2026-01-02T03:04:05.900Z',
    isolatedAt: '2026-01-02T03:04:05.950Z',
    durations: { detectMs: 900, isolateMs: 50 },
    timeline: [
      { at: '2026-01-02T03:04:05.000Z', event: 'onset', detail: 'first 5xx from payments-api-0' },
      { at: '2026-01-02T03:04:05.900Z', event: 'detected', detail: 'http-5xx-burst: 12/12 5xx in 800 ms' },
      { at: '2026-01-02T03:04:05.950Z', event: 'isolated', detail: 'server set to maint on the gateway' },
      { at: '2026-01-02T03:04:05.960Z', event: 'quarantined', detail: 'supervision off, process kept' },
    ],
    createdAt: '2026-01-02T03:04:05.900Z',
    updatedAt: '2026-01-02T03:04:05.960Z',
  };
  return { ...base, ...overrides };
}
