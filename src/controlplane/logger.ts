/**
 * Structured logs (JSON lines, pino) shared by the HTTP server and the
 * controllers, so one request id or instance id can be followed across both.
 */
import pino from 'pino';
import type { Logger as PinoLogger } from 'pino';

export type { PinoLogger };

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export function createLogger(opts: { level?: LogLevel; destination?: string } = {}): PinoLogger {
  const level = opts.level ?? 'info';
  return opts.destination
    ? pino({ level }, pino.destination({ dest: opts.destination, mkdir: true, sync: false }))
    : pino({ level });
}
