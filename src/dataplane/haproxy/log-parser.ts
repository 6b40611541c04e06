/**
 * Parses the request log format rendered by `config.ts` (LOG_FORMAT) into a
 * `RequestLog`. Returns undefined for other lines (HAProxy also logs server
 * state changes through the same target) and for truncated or malformed ones.
 *
 * This runs once per proxied request on the control plane's event loop, on
 * the same cores as HAProxy, so it is written as a single left-to-right scan:
 * no regex, no intermediate array, one string per field the record keeps,
 * numbers read from char codes, the date converted once per second (see
 * bench/dataplane/README.md for what each step cost).
 */
import type { RequestLog } from '../dataplane.ts';
import { LOG_TAG } from './config.ts';

const TAG_SP = LOG_TAG + ' ';

/**
 * What a request record starts with: the tag, and the log key when the
 * config carries one (config.ts `logFormat`). Computed once per key, so the
 * per-line check is one `startsWith` of a fixed string.
 */
export function recordPrefix(key?: string): string {
  return key === undefined ? TAG_SP : `${TAG_SP}${key} `;
}

/** The line claims to be a request record (it has the tag), keyed or not. */
export function hasRecordTag(message: string): boolean {
  return message.startsWith(TAG_SP);
}

// Cursor over the line being parsed. Module state rather than an object per
// line: parsing is synchronous and this keeps the hot path allocation-free.
let line = '';
let pos = 0;
let lineEnd = 0;
let missing = false;

function skipSpaces(): void {
  while (pos < lineEnd && line.charCodeAt(pos) === 32) pos++;
}

/** The next space-delimited field; marks the line malformed when there is none. */
function word(): string {
  skipSpaces();
  if (pos >= lineEnd) {
    missing = true;
    return '';
  }
  let sp = line.indexOf(' ', pos);
  if (sp < 0 || sp > lineEnd) sp = lineEnd;
  const s = line.slice(pos, sp);
  pos = sp + 1;
  return s;
}

/**
 * A `"..."` field as written by HAProxy's `+Q,+E` (`\` escapes `"` and `\`);
 * an unquoted field (`-`) is read as a word.
 */
function quoted(): string {
  skipSpaces();
  if (pos >= lineEnd || line.charCodeAt(pos) !== 34) return word();
  const open = pos + 1;
  const close = line.indexOf('"', open);
  if (close < 0 || close >= lineEnd) {
    missing = true;
    return '';
  }
  const bs = line.indexOf('\\', open);
  if (bs < 0 || bs > close) {
    pos = close + 1;
    return line.slice(open, close);
  }
  // Rare: escapes present. Undo them; an escaped quote is not the end.
  let v = '';
  let i = open;
  while (i < lineEnd) {
    const c = line.charCodeAt(i);
    if (c === 34) break;
    if (c === 92 && i + 1 < lineEnd) i++;
    v += line[i];
    i++;
  }
  if (i >= lineEnd) missing = true;
  pos = i + 1;
  return v;
}

/** An integer field (`123`, `+1` from logasap/redispatch, `-1`); -1 when it is not a number. */
function int(): number {
  skipSpaces();
  if (pos >= lineEnd) {
    missing = true;
    return -1;
  }
  let i = pos;
  let sign = 1;
  const first = line.charCodeAt(i);
  if (first === 43) i++;
  else if (first === 45) {
    sign = -1;
    i++;
  }
  let n = 0;
  let digits = 0;
  let bad = false;
  for (; i < lineEnd; i++) {
    const c = line.charCodeAt(i);
    if (c === 32) break;
    if (c < 48 || c > 57) bad = true;
    else {
      n = n * 10 + (c - 48);
      digits++;
    }
  }
  pos = i + 1;
  return bad || digits === 0 ? -1 : sign * n;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

// Lines arrive in bursts within the same second: convert that second once
// and build each ISO string from its prefix and the milliseconds.
// `dd/Mon/yyyy:HH:MM:SS` of the last second seen, and its ISO `yyyy-mm-ddTHH:MM:SS.`.
let lastSecondKey = '';
let lastIsoPrefix = '';
const SECOND_KEY_LEN = 20;
const DATE_LEN = 24;

function threeDigits(s: string, at: number): boolean {
  for (let i = at; i < at + 3; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** `23/Nov/2026:09:33:26.988` (HAProxy `%tr`, local time of this host, which also runs HAProxy) -> ISO 8601. */
export function parseHaproxyDate(s: string): string | undefined {
  if (s.length !== DATE_LEN || s.charCodeAt(SECOND_KEY_LEN) !== 46 || !threeDigits(s, 21)) return undefined;
  if (!s.startsWith(lastSecondKey) || lastSecondKey.length !== SECOND_KEY_LEN) {
    const prefix = isoPrefixOf(s);
    if (prefix === undefined) return undefined;
    lastSecondKey = s.slice(0, SECOND_KEY_LEN);
    lastIsoPrefix = prefix;
  }
  return lastIsoPrefix + s.slice(21, 24) + 'Z';
}

/** The ISO 8601 prefix up to and including the `.` for the local second `dd/Mon/yyyy:HH:MM:SS`. */
function isoPrefixOf(s: string): string | undefined {
  const m = /^(\d\d)\/([A-Z][a-z]{2})\/(\d{4}):(\d\d):(\d\d):(\d\d)\./.exec(s);
  if (!m) return undefined;
  const month = MONTHS.indexOf(m[2] ?? '');
  if (month < 0) return undefined;
  const t = new Date(Number(m[3]), month, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  if (!Number.isFinite(t.getTime())) return undefined;
  // Zone offsets are whole minutes, so a local second is a UTC second: only the prefix changes.
  return t.toISOString().slice(0, SECOND_KEY_LEN);
}

/** The `%tr` field, converted without slicing it out in the common same-second case. */
function dateField(): string | undefined {
  skipSpaces();
  if (
    lastSecondKey.length === SECOND_KEY_LEN &&
    pos + DATE_LEN <= lineEnd &&
    line.startsWith(lastSecondKey, pos) &&
    line.charCodeAt(pos + SECOND_KEY_LEN) === 46 &&
    threeDigits(line, pos + 21) &&
    (pos + DATE_LEN === lineEnd || line.charCodeAt(pos + DATE_LEN) === 32)
  ) {
    const iso = lastIsoPrefix + line.slice(pos + 21, pos + DATE_LEN) + 'Z';
    pos += DATE_LEN + 1;
    return iso;
  }
  return parseHaproxyDate(word());
}

const opt = (s: string): string | undefined => (s === '' || s === '-' ? undefined : s);

/**
 * Parse one message (the part after the syslog header, if any; a trailing
 * newline is ignored). Field order: see LOG_FORMAT in config.ts. Only a
 * message that starts with `prefix` (`recordPrefix(key)`) is a record: with
 * a key, a line from anyone but HAProxy is refused here, also one that hides
 * a copied record after some other text.
 */
export function parseRequestLog(message: string, prefix = TAG_SP): RequestLog | undefined {
  if (!message.startsWith(prefix)) return undefined;
  let end = message.length;
  while (end > 0 && message.charCodeAt(end - 1) <= 32) end--;
  line = message;
  lineEnd = end;
  pos = prefix.length;
  missing = false;
  const at = dateField();
  const clientIp = word();
  const backend = word();
  const server = word();
  const method = word();
  const path = quoted();
  const status = int();
  const totalMs = int();
  const serverMs = int();
  const retries = int();
  const terminationState = word();
  const bytesRead = int();
  const caller = quoted();
  const traceparent = quoted();
  line = ''; // do not keep the last chunk of the stream alive
  if (missing) return undefined;
  return {
    at: at ?? new Date().toISOString(),
    clientIp,
    caller: opt(caller),
    backend,
    server: server === '<NOSRV>' || server === '-' ? undefined : server,
    method,
    path,
    status,
    totalMs,
    serverMs,
    retries,
    terminationState,
    bytesRead,
    traceparent: opt(traceparent),
  };
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
