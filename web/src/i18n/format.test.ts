import { describe, expect, it } from 'vitest';
import { formatClock, formatDateTime, localizeTimes } from './format.ts';

const at = '2026-12-01T23:56:50.120Z';

describe('times with their zone', () => {
  it('names UTC', () => {
    expect(formatDateTime('en', at, 'UTC')).toBe('Dec 1, 11:56:50 PM UTC');
    expect(formatClock('en', at, 'UTC')).toBe('11:56:50 PM UTC');
  });

  it("names another zone, and shows that zone's clock", () => {
    expect(formatClock('en', at, 'America/New_York')).toBe('06:56:50 PM EST');
    expect(formatDateTime('en', at, 'Asia/Shanghai')).toMatch(/^Dec 2, 07:56:50 AM GMT\+8$/);
  });

  it('in Chinese too', () => {
    expect(formatDateTime('zh-CN', at, 'UTC')).toContain('UTC');
    expect(formatDateTime('zh-CN', at, 'UTC')).toContain('23:56:50');
  });

  it('the browser zone (no zone given) is named as well', () => {
    expect(formatClock('en', at)).toMatch(/\d\d:\d\d:\d\d (AM|PM) \S+$/);
  });

  it('missing or unreadable times are a dash, not "Invalid Date"', () => {
    expect(formatDateTime('en', undefined)).toBe('—');
    expect(formatDateTime('en', 'yesterday')).toBe('—');
  });

  it('ISO times inside a server message are rewritten with their zone', () => {
    expect(
      localizeTimes('backoff, next restart at 2026-12-08T00:25:23.123Z', (iso) =>
        formatClock('en', iso, 'UTC'),
      ),
    ).toBe('backoff, next restart at 12:25:23 AM UTC');
  });
});
