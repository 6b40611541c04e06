/**
 * Dates with their time zone named: every timestamp the console shows says
 * which zone it is in (the browser's, by its short name such as `UTC`, `CET`
 * or `GMT+1`), so "14:02:11" is never read as another zone's clock. Pure:
 * the zone can be passed in (tests), else Intl uses the browser's.
 */
import type { Locale } from './translate.ts';

const cache = new Map<string, Intl.DateTimeFormat>();

function formatter(locale: Locale, withDate: boolean, timeZone: string | undefined): Intl.DateTimeFormat {
  const key = `${locale}|${withDate ? 'd' : 't'}|${timeZone ?? ''}`;
  let f = cache.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat(locale, {
      ...(withDate ? { month: 'short', day: 'numeric' } : {}),
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      timeZoneName: 'short',
      ...(timeZone ? { timeZone } : {}),
    });
    cache.set(key, f);
  }
  return f;
}

function parse(iso: string | undefined): Date | undefined {
  if (!iso) return undefined;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** `Dec 1, 11:56:50 PM UTC`: date, time and zone. `—` for a missing or unreadable time. */
export function formatDateTime(locale: Locale, iso: string | undefined, timeZone?: string): string {
  const d = parse(iso);
  return d ? formatter(locale, true, timeZone).format(d) : '—';
}

/** `11:56:50 PM UTC`: time of day and zone, for times that are today's (snapshots, starts). */
export function formatClock(locale: Locale, iso: string | undefined, timeZone?: string): string {
  const d = parse(iso);
  return d ? formatter(locale, false, timeZone).format(d) : '—';
}

/** ISO-8601 UTC timestamps as the server writes them inside messages (`…, next restart at 2026-…Z`). */
export const ISO_IN_TEXT = /\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z\b/g;

/** Rewrites every ISO timestamp inside a server message as a zoned local time. */
export function localizeTimes(text: string, fmt: (iso: string) => string): string {
  return text.replace(ISO_IN_TEXT, (iso) => fmt(iso));
}
