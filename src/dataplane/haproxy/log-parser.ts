/**
 * Parses the request log format rendered by `config.ts` (LOG_FORMAT) out of a
 * syslog message body into a `RequestLog`. Returns undefined for other lines
 * (HAProxy also logs server state changes through the same target).
 */
import type { RequestLog } from '../dataplane.ts';
import { LOG_TAG } from './config.ts';

/** Split on spaces, keeping `"..."` fields together and undoing HAProxy's `\` escapes. */
export function splitFields(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 32) {
      i++;
    } else if (c === 34) {
      // Fast path: a quoted field without escapes is one slice.
      let end = text.indexOf('"', i + 1);
      const bs = text.indexOf('\\', i + 1);
      if (bs < 0 || (end >= 0 && bs > end)) {
        if (end < 0) end = n;
        out.push(text.slice(i + 1, end));
        i = end + 1;
        continue;
      }
      let v = '';
      i++;
      while (i < n && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < n) i++;
        v += text[i];
        i++;
      }
      out.push(v);
      i++;
    } else {
      let end = text.indexOf(' ', i);
      if (end < 0) end = n;
      out.push(text.slice(i, end));
      i = end;
    }
  }
  return out;
}

const num = (s: string | undefined): number => {
  const n = Number((s ?? '').replace(/^\+/, ''));
  return Number.isFinite(n) ? n : -1;
};

const opt = (s: string | undefined): string | undefined =>
  s === undefined || s === '' || s === '-' ? undefined : s;

/** Parse one message (the part after the syslog header). */
export function parseRequestLog(message: string): RequestLog | undefined {
  const start = message.indexOf(LOG_TAG + ' ');
  if (start < 0) return undefined;
  const f = splitFields(message.slice(start).trimEnd());
  if (f.length < 15) return undefined;
  const [, ts, clientIp, backend, server, method, path, status, ta, tr, rc, tsc, bytes, caller, traceparent] =
    f as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
  return {
    at: parseHaproxyDate(ts) ?? new Date().toISOString(),
    clientIp,
    caller: opt(caller),
    backend,
    server: server === '<NOSRV>' || server === '-' ? undefined : server,
    method,
    path,
    status: num(status),
    totalMs: num(ta),
    serverMs: num(tr),
    retries: num(rc),
    terminationState: tsc,
    bytesRead: num(bytes),
    traceparent: opt(traceparent),
  };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

// Lines arrive in bursts within the same second: parse that part once.
let lastSecondKey = '';
let lastSecondEpochMs = 0;

/** `23/Nov/2026:09:33:26.988` (HAProxy `%tr`, local time of this host, which also runs HAProxy) -> ISO 8601. */
export function parseHaproxyDate(s: string): string | undefined {
  const dot = s.length - 4;
  if (s.length === 24 && s.charCodeAt(dot) === 46 && s.slice(0, dot) === lastSecondKey) {
    const ms = Number(s.slice(dot + 1));
    if (Number.isInteger(ms)) return new Date(lastSecondEpochMs + ms).toISOString();
  }
  const m = /^(\d\d)\/([A-Z][a-z]{2})\/(\d{4}):(\d\d):(\d\d):(\d\d)\.(\d{3})$/.exec(s);
  if (!m) return undefined;
  const month = MONTHS.indexOf(m[2] ?? '');
  if (month < 0) return undefined;
  const second = new Date(
    Number(m[3]),
    month,
    Number(m[1]),
    Number(m[4]),
    Number(m[5]),
    Number(m[6]),
  ).getTime();
  lastSecondKey = s.slice(0, dot);
  lastSecondEpochMs = second;
  return new Date(second + Number(m[7])).toISOString();
}

export interface SyslogFrame {
  priority: number;
  /** Program/app name (`haproxy`). */
  app: string;
  pid?: number;
  message: string;
}

/**
 * Parse an RFC 3164 (`<pri>Mmm dd hh:mm:ss tag[pid]: msg`), RFC 5424
 * (`<pri>1 ts host app pid msgid sd msg`) or raw (message only) frame.
 */
export function parseSyslogFrame(frame: string): SyslogFrame | undefined {
  const m = /^<(\d{1,3})>/.exec(frame);
  // `format raw`: the message alone, no header.
  if (!m) return frame.length > 0 ? { priority: -1, app: '', message: frame.replace(/\n$/, '') } : undefined;
  const priority = Number(m[1]);
  const rest = frame.slice(m[0].length).replace(/\n$/, '');
  const r5424 = /^1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[.*?\]) ?(.*)$/s.exec(rest);
  if (r5424) {
    const pid = Number(r5424[4]);
    return {
      priority,
      app: r5424[3] ?? '',
      pid: Number.isFinite(pid) ? pid : undefined,
      message: r5424[7] ?? '',
    };
  }
  // RFC 3164: optional timestamp and hostname before `tag[pid]: `.
  const r3164 = /^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d )?(?:\S+ )?([^\s[:]+)(?:\[(\d+)\])?: (.*)$/s.exec(
    rest,
  );
  if (r3164) {
    return {
      priority,
      app: r3164[1] ?? '',
      pid: r3164[2] ? Number(r3164[2]) : undefined,
      message: r3164[3] ?? '',
    };
  }
  return { priority, app: '', message: rest };
}
