import { describe, expect, it } from 'vitest';
import type { Incident } from '../../model/incidents.ts';
import { sampleIncident } from '../../store/testdata/incidents.ts';
import { createIsolationMetrics } from '../../isolation/metrics.ts';
import { joinExpositions, Registry } from './registry.ts';

describe('Registry', () => {
  it('renders counters and gauges with HELP and TYPE lines, labels in declared order, in registration order', () => {
    const reg = new Registry();
    const c = reg.counter('t_requests_total', 'Requests.', { labelNames: ['route', 'code'] });
    const g = reg.gauge('t_temperature', 'Temperature.');
    c.with({ code: '200', route: '/a' }).inc();
    c.with({ route: '/a', code: '200' }).inc(2);
    c.with({ route: '/b', code: '500' }).inc();
    g.set(-1.5);
    expect(reg.render()).toBe(
      [
        '# HELP t_requests_total Requests.',
        '# TYPE t_requests_total counter',
        't_requests_total{route="/a",code="200"} 3',
        't_requests_total{route="/b",code="500"} 1',
        '# HELP t_temperature Temperature.',
        '# TYPE t_temperature gauge',
        't_temperature -1.5',
        '',
      ].join('\n'),
    );
    expect(c.get({ route: '/a', code: '200' })).toBe(3);
    expect(c.get({ route: '/zzz', code: '1' })).toBe(0);
    // Reading a series that never existed does not create it.
    expect(reg.render()).not.toContain('/zzz');
  });

  it('escapes backslash, double quote and newline in label values, and backslash and newline in help', () => {
    const reg = new Registry();
    reg
      .gauge('t_g', 'line one\nline \\two', { labelNames: ['v'] })
      .with({ v: 'a\\b"c\nd' })
      .set(1);
    expect(reg.render()).toBe(
      '# HELP t_g line one\\nline \\\\two\n# TYPE t_g gauge\nt_g{v="a\\\\b\\"c\\nd"} 1\n',
    );
  });

  it('renders histograms with cumulative buckets, +Inf, sum and count; a value on a bound falls in that bucket', () => {
    const reg = new Registry();
    const h = reg.histogram('t_seconds', 'Durations.', { labelNames: ['sig'], buckets: [0.1, 1, 5] });
    for (const v of [0.05, 0.1, 0.7, 3, 12]) h.with({ sig: 'x' }).observe(v);
    expect(reg.render()).toBe(
      [
        '# HELP t_seconds Durations.',
        '# TYPE t_seconds histogram',
        't_seconds_bucket{sig="x",le="0.1"} 2',
        't_seconds_bucket{sig="x",le="1"} 3',
        't_seconds_bucket{sig="x",le="5"} 4',
        't_seconds_bucket{sig="x",le="+Inf"} 5',
        't_seconds_sum{sig="x"} 15.85',
        't_seconds_count{sig="x"} 5',
        '',
      ].join('\n'),
    );
    expect(h.get({ sig: 'x' })).toEqual({ sum: 15.85, count: 5 });
  });

  it('runs collect callbacks at every render so gauges follow live state', () => {
    const reg = new Registry();
    let live = 2;
    const g = reg.gauge('t_live', 'Live.', {
      labelNames: ['k'],
      collect: () => {
        g.reset();
        for (let i = 0; i < live; i++) g.with({ k: String(i) }).set(i);
      },
    });
    expect(reg.render()).toContain('t_live{k="1"} 1');
    live = 1;
    expect(reg.render()).not.toContain('t_live{k="1"}');
  });

  it('formats special values the way Prometheus parses them', () => {
    const reg = new Registry();
    const g = reg.gauge('t_v', 'V.', { labelNames: ['k'] });
    g.with({ k: 'inf' }).set(Infinity);
    g.with({ k: 'ninf' }).set(-Infinity);
    g.with({ k: 'nan' }).set(NaN);
    expect(reg.render()).toContain('t_v{k="inf"} +Inf\nt_v{k="ninf"} -Inf\nt_v{k="nan"} NaN\n');
  });

  it('refuses bad names, duplicate metrics, wrong labels, le on histograms, bad buckets and decreasing counters', () => {
    const reg = new Registry();
    expect(() => reg.counter('1bad', 'x')).toThrow(/metric name '1bad' is invalid/);
    reg.counter('t_ok_total', 'x', { labelNames: ['a'] });
    expect(() => reg.gauge('t_ok_total', 'x')).toThrow(/already registered/);
    expect(() => reg.gauge('t_l', 'x', { labelNames: ['__x'] })).toThrow(/label name '__x'/);
    expect(() => reg.gauge('t_d', 'x', { labelNames: ['a', 'a'] })).toThrow(/repeat/);
    expect(() => reg.histogram('t_h', 'x', { labelNames: ['le'] })).toThrow(/'le' is reserved/);
    expect(() => reg.histogram('t_h2', 'x', { buckets: [1, 1] })).toThrow(/strictly increasing/);
    expect(() => reg.histogram('t_h3', 'x', { buckets: [1, Infinity] })).toThrow(/finite/);
    const c = reg.get('t_ok_total') as ReturnType<Registry['counter']>;
    expect(() => c.with({})).toThrow(/labels \[a\]; missing a/);
    expect(() => c.with({ a: '1', b: '2' })).toThrow(/unknown b/);
    expect(() => c.with({ a: '1' }).inc(-1)).toThrow(/can only increase/);
  });

  it('joins expositions with exactly one newline between them and skips empty ones', () => {
    expect(joinExpositions('a 1\n', undefined, '', 'b 2')).toBe('a 1\nb 2\n');
  });
});

describe('isolation metrics', () => {
  it('counts an incident once and observes each duration once as it appears across writes', () => {
    const m = createIsolationMetrics({ quarantined: () => 3 });
    const opened: Incident = sampleIncident({ durations: { detectMs: 900 } });
    m.recordIncident(opened);
    const isolated = { ...opened, durations: { detectMs: 900, isolateMs: 40 } };
    m.recordIncident(isolated, opened);
    m.recordIncident(isolated, isolated); // a rewrite without news changes nothing
    const mitigated = { ...isolated, durations: { ...isolated.durations, replaceMs: 2500, mttrMs: 3400 } };
    m.recordIncident(mitigated, isolated);

    const sig = { signature: 'http-5xx-burst' };
    expect(m.incidentsTotal.get({ ...sig, action: 'isolate' })).toBe(1);
    expect(m.detectSeconds.get(sig)).toEqual({ sum: 0.9, count: 1 });
    expect(m.isolateSeconds.get(sig)).toEqual({ sum: 0.04, count: 1 });
    expect(m.replaceSeconds.get(sig)).toEqual({ sum: 2.5, count: 1 });
    expect(m.mttrSeconds.get(sig)).toEqual({ sum: 3.4, count: 1 });

    const text = m.render();
    expect(text).toContain('bulwark_incidents_total{signature="http-5xx-burst",action="isolate"} 1');
    expect(text).toContain(
      'bulwark_isolation_isolate_seconds_bucket{signature="http-5xx-burst",le="0.05"} 1',
    );
    expect(text).toContain(
      'bulwark_isolation_isolate_seconds_bucket{signature="http-5xx-burst",le="0.025"} 0',
    );
    expect(text).toContain('# TYPE bulwark_isolation_detect_seconds histogram');
    expect(text).toContain('bulwark_quarantined_instances 3');
  });
});
