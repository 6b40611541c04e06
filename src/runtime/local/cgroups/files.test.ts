import { describe, expect, it } from 'vitest';
import { parseCpuMax, parseFlatKeyed, parseMax, parsePressure } from './files.ts';

// Texts as the kernel prints them (6.x).
describe('cgroup file parsing', () => {
  it('reads flat-keyed files (cpu.stat v2, memory.events) and skips non-numeric lines', () => {
    const cpuStat =
      'usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\nnice_usec 0\ncore_sched.force_idle_usec 0\n' +
      'nr_periods 40\nnr_throttled 12\nthrottled_usec 901234\nnr_bursts 0\nburst_usec 0\n';
    expect(parseFlatKeyed(cpuStat)).toMatchObject({
      usage_usec: 123456,
      nr_periods: 40,
      nr_throttled: 12,
      throttled_usec: 901234,
    });
    expect(parseFlatKeyed('low 0\nhigh 3\nmax 17\noom 2\noom_kill 1\noom_group_kill 0\n')).toEqual({
      low: 0,
      high: 3,
      max: 17,
      oom: 2,
      oom_kill: 1,
      oom_group_kill: 0,
    });
    expect(parseFlatKeyed('populated 1\nfrozen 0\nweird value\n')).toEqual({ populated: 1, frozen: 0 });
  });

  it('reads pressure files with and without a "full" line', () => {
    expect(
      parsePressure(
        'some avg10=1.52 avg60=0.40 avg300=0.09 total=5123456\nfull avg10=0.00 avg60=0.01 avg300=0.00 total=4567\n',
      ),
    ).toEqual({
      some: { avg10: 1.52, avg60: 0.4, avg300: 0.09, totalUs: 5123456 },
      full: { avg10: 0, avg60: 0.01, avg300: 0, totalUs: 4567 },
    });
    // cpu.pressure before 5.13 had only "some"
    expect(parsePressure('some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n')).toEqual({
      some: { avg10: 0, avg60: 0, avg300: 0, totalUs: 0 },
    });
    expect(parsePressure('some avg10=0.00 total=3\n')).toBeUndefined();
    expect(parsePressure('')).toBeUndefined();
  });

  it('reads "max" or a number from memory.max and cpu.max', () => {
    expect(parseMax('max\n')).toBe('max');
    expect(parseMax('268435456\n')).toBe(268435456);
    expect(parseMax(undefined)).toBeUndefined();
    expect(parseMax('garbage')).toBeUndefined();
    expect(parseCpuMax('max 100000\n')).toEqual({ quotaUs: 'max', periodUs: 100000 });
    expect(parseCpuMax('50000 100000\n')).toEqual({ quotaUs: 50000, periodUs: 100000 });
    expect(parseCpuMax('50000')).toBeUndefined();
  });
});
