/**
 * Structured logs (JSON lines, pino) shared by the HTTP server and the
 * controllers, so one request id or instance id can be followed across both.
 *
 * No secret reaches a log line: fields that hold credentials by name
 * (authorization and cookie headers, passwords, env maps, the store URL) are
 * censored, and every string field, error and message passes through
 * `redactText` with the secret values `secrets()` returns (the workloads'
 * secret env values, the bootstrap token, the store URL's password), which
 * also removes URL passwords, Bearer tokens and JWTs whatever their source.
 * The log file is created 0600.
 */
import { chmodSync, existsSync } from 'node:fs';
import pino from 'pino';
import type { Logger as PinoLogger } from 'pino';
import { REDACTED, redactText } from './secrets.ts';

export type { PinoLogger };

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

/** Fields censored whatever their value, at the top level and one level down. */
const SECRET_FIELDS = [
  'authorization',
  'cookie',
  'password',
  'secret',
  'env',
  'storeUrl',
  'bootstrapToken',
  'kubeconfig',
];
export const REDACT_PATHS = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
];

/** Depth to which nested log fields are scrubbed (deeper ones are rare and kept as they are). */
const SCRUB_DEPTH = 4;

function scrub(v: unknown, secrets: readonly string[], depth: number): unknown {
  if (typeof v === 'string') return redactText(v, secrets);
  if (depth <= 0 || v === null || typeof v !== 'object') return v;
  if (v instanceof Error) {
    const e = new Error(redactText(v.message, secrets));
    e.name = v.name;
    e.stack = redactText(v.stack ?? '', secrets);
    for (const [k, x] of Object.entries(v))
      (e as unknown as Record<string, unknown>)[k] = scrub(x, secrets, depth - 1);
    return e;
  }
  if (Array.isArray(v)) return v.map((x) => scrub(x, secrets, depth - 1));
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) return v; // requests, buffers: pino's serializers
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = scrub(x, secrets, depth - 1);
  return out;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** A file to append JSON lines to (created 0600, with its directory); stdout otherwise. */
  destination?: string;
  /** Secret values to remove from every line, asked per line (the set changes with the apps). */
  secrets?: () => readonly string[];
}

export function createLogger(opts: LoggerOptions = {}): PinoLogger {
  const level = opts.level ?? 'info';
  const secrets = opts.secrets ?? (() => []);
  const options: pino.LoggerOptions = {
    level,
    redact: { paths: REDACT_PATHS, censor: REDACTED },
    formatters: { log: (obj) => scrub(obj, secrets(), SCRUB_DEPTH) as Record<string, unknown> },
    hooks: {
      logMethod(args, method) {
        const s = secrets();
        const clean = args.map((a: unknown) => (typeof a === 'string' ? redactText(a, s) : a));
        method.apply(this, clean as Parameters<typeof method>);
      },
    },
  };
  if (!opts.destination) return pino(options);
  // An earlier version's log file kept the umask's mode; SonicBoom's mode applies on creation.
  if (existsSync(opts.destination)) chmodSync(opts.destination, 0o600);
  return pino(options, pino.destination({ dest: opts.destination, mkdir: true, sync: false, mode: 0o600 }));
}
