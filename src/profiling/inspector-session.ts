/**
 * One profiling session against an inspector that is already listening:
 * CPU profile for `durationMs`, heap statistics, then close the inspector in
 * the target. Runs inside `inspector-helper.ts`, which Bulwark starts inside
 * the instance's network namespace, so this code only ever talks to
 * 127.0.0.1 of wherever it runs.
 *
 * Heap statistics: `Runtime.getHeapUsage` plus one `Runtime.evaluate` of
 * `process.memoryUsage()` and `v8.getHeapStatistics()`. Both are O(1) reads of
 * counters (no allocation worth mentioning, no heap walk). A heap snapshot is
 * deliberately NOT taken: it stops the world for seconds and can double the
 * heap, which would kill a process that is already near its memory limit.
 *
 * Closing: `inspector.close()` is evaluated synchronously in the target. A
 * deferred close (`setImmediate`) would never run in a process whose event
 * loop is blocked, leaving the inspector open; the synchronous call works
 * even there (the evaluate runs from a V8 interrupt). The target drops our
 * connection without answering, so a closed socket counts as success; the
 * caller confirms from /proc that the port no longer listens.
 */
import { writeFile } from 'node:fs/promises';
import { CdpSession } from './cdp.ts';

export interface SessionOptions {
  /** Inspector port on 127.0.0.1 where this code runs. */
  port: number;
  durationMs: number;
  /** Where to write the `.cpuprofile` JSON. */
  cpuProfilePath: string;
  /** Budget for each inspector round trip. */
  answerTimeoutMs: number;
}

export interface HeapStats {
  usedSize?: number;
  totalSize?: number;
  memoryUsage?: Record<string, number>;
  heapStatistics?: Record<string, number>;
}

export interface SessionResult {
  ok: boolean;
  /** Stage that failed when `ok` is false. */
  stage?: string;
  error?: string;
  cpuProfileWritten: boolean;
  samples?: number;
  heap?: HeapStats;
  /** The close request was delivered and the connection dropped (not yet proof that the port closed). */
  closeRequested: boolean;
  closeError?: string;
  profiledMs?: number;
}

const HEAP_EXPRESSION = `JSON.stringify({
  memoryUsage: process.memoryUsage(),
  heapStatistics: typeof process.getBuiltinModule === 'function'
    ? process.getBuiltinModule('node:v8').getHeapStatistics() : undefined,
})`;

// getBuiltinModule works in ESM and CJS alike (Node >= 22.3); `require` is
// only in scope for CommonJS entry points, so it is the fallback.
const CLOSE_EXPRESSION = `(() => {
  const m = typeof process.getBuiltinModule === 'function' ? process.getBuiltinModule('node:inspector')
    : typeof require === 'function' ? require('inspector') : undefined;
  if (!m) return 'no inspector module in scope';
  m.close();
  return 'closed';
})()`;

interface ListEntry {
  webSocketDebuggerUrl?: string;
  type?: string;
}

async function debuggerUrl(port: number, timeoutMs: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/json/list`, { signal: AbortSignal.timeout(timeoutMs) });
  const list = (await res.json()) as ListEntry[];
  const url = list.find((e) => e.type === 'node' && e.webSocketDebuggerUrl)?.webSocketDebuggerUrl;
  if (!url) throw new Error(`no node target in http://127.0.0.1:${port}/json/list`);
  return url;
}

async function closeInspector(s: CdpSession, timeoutMs: number): Promise<string | undefined> {
  if (!s.isOpen) return 'connection already closed before the close request';
  const answer = s
    .send<{ result?: { value?: unknown } }>(
      'Runtime.evaluate',
      { expression: CLOSE_EXPRESSION, returnByValue: true, silent: true },
      timeoutMs,
    )
    .then(
      (r) => (r.result?.value === 'closed' ? undefined : `close answered ${String(r.result?.value)}`),
      () => undefined, // rejected because the socket closed: expected, the inspector went away
    );
  // An error answer ends the wait at once; otherwise success is the connection dropping.
  const settled = answer.then(async (e) => {
    if (!e) await s.closed;
    return e;
  });
  const timedOut = new Promise<string>((r) =>
    setTimeout(() => r(`connection still open ${timeoutMs} ms after the close request`), timeoutMs).unref(),
  );
  const err = await Promise.race([settled, timedOut]);
  s.close();
  return err ?? undefined;
}

export async function runInspectorSession(o: SessionOptions): Promise<SessionResult> {
  const r: SessionResult = { ok: false, cpuProfileWritten: false, closeRequested: false };
  let stage = 'list targets';
  let s: CdpSession | undefined;
  try {
    const url = await debuggerUrl(o.port, o.answerTimeoutMs);
    stage = 'connect';
    s = await CdpSession.connect(url, o.answerTimeoutMs);
    stage = 'Profiler.start';
    await s.send('Profiler.enable', {}, o.answerTimeoutMs);
    await s.send('Profiler.start', {}, o.answerTimeoutMs);
    const started = Date.now();
    await Promise.race([
      new Promise((res) => setTimeout(res, o.durationMs)),
      s.closed.then(() => {
        throw new Error('inspector connection dropped while profiling (did the process exit?)');
      }),
    ]);
    stage = 'Profiler.stop';
    const { profile } = await s.send<{ profile: { samples?: unknown[] } }>(
      'Profiler.stop',
      {},
      o.answerTimeoutMs,
    );
    r.profiledMs = Date.now() - started;
    await s.send('Profiler.disable', {}, o.answerTimeoutMs);
    stage = 'write cpuprofile';
    await writeFile(o.cpuProfilePath, JSON.stringify(profile), { mode: 0o600 });
    r.cpuProfileWritten = true;
    r.samples = profile.samples?.length ?? 0;
    stage = 'heap statistics';
    const usage = await s.send<{ usedSize: number; totalSize: number }>(
      'Runtime.getHeapUsage',
      {},
      o.answerTimeoutMs,
    );
    const ev = await s.send<{ result?: { value?: unknown } }>(
      'Runtime.evaluate',
      { expression: HEAP_EXPRESSION, returnByValue: true, silent: true },
      o.answerTimeoutMs,
    );
    const more = typeof ev.result?.value === 'string' ? (JSON.parse(ev.result.value) as HeapStats) : {};
    r.heap = { usedSize: usage.usedSize, totalSize: usage.totalSize, ...more };
    r.ok = true;
  } catch (err) {
    r.stage = stage;
    r.error = err instanceof Error ? err.message : String(err);
  }
  // Always try to close, also after a failure: an inspector left open runs
  // arbitrary code for whoever reaches it.
  if (s) {
    const closeErr = await closeInspector(s, o.answerTimeoutMs);
    r.closeRequested = closeErr === undefined;
    if (closeErr) r.closeError = closeErr;
  } else {
    r.closeError = 'never connected, so the close request could not be sent';
  }
  return r;
}
