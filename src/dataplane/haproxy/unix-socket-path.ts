/**
 * The one check for a Unix socket path that both the log receiver (which
 * listens on it) and haproxy.cfg (which names it, unquoted) need.
 */
import path from 'node:path';

/**
 * Longest Unix socket path: sun_path is 108 bytes with the terminating NUL on
 * Linux; HAProxy and libuv both refuse longer ones.
 */
export const MAX_UNIX_PATH_BYTES = 107;

/** Refuses a path HAProxy's config or the kernel cannot take, naming the fix. */
export function assertUnixSocketPath(field: string, p: string): void {
  if (!path.isAbsolute(p)) throw new Error(`${field} must be an absolute path, got '${p}'`);
  if (!/^[A-Za-z0-9._/+-]+$/.test(p))
    throw new Error(
      `${field} '${p}' may only use [A-Za-z0-9._/+-] (it is written into haproxy.cfg unquoted): choose another directory`,
    );
  const bytes = Buffer.byteLength(p);
  if (bytes > MAX_UNIX_PATH_BYTES)
    throw new Error(
      `${field} '${p}' is ${bytes} bytes, longer than a Unix socket path may be (${MAX_UNIX_PATH_BYTES}): use a shorter work directory or the tcp log transport`,
    );
}
