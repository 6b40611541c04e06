/**
 * Pieces the wrk-driven benchmarks (bench/dataplane, bench/agent) share: reading wrk's
 * `--latency` report, the median they quote, and starting the plain HTTP backend
 * (bench/dataplane/backend.ts) they load.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort } from '../../src/util/ports.ts';

export interface WrkReport {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Socket errors plus non-2xx/3xx answers. */
  errors: number;
  requests: number;
}

/** wrk prints latencies with a unit: 850.00us, 1.23ms, 2.00s, 1.00m. */
function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

export function parseWrk(out: string): WrkReport {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const p50 = /^\s+50%\s+(\S+)/m.exec(out)?.[1];
  const p99 = /^\s+99%\s+(\S+)/m.exec(out)?.[1];
  const errs = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const errors = non2xx + (errs ? errs.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  if (!Number.isFinite(rps) || !p50 || !p99 || !requests) throw new Error(`cannot parse wrk output:\n${out}`);
  return { rps, p50Ms: toMs(p50), p99Ms: toMs(p99), errors, requests };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

/** Start bench/dataplane/backend.ts on a free loopback port; resolves once it listens. */
export async function startBackend(name: string): Promise<{ port: number; proc: ChildProcess }> {
  const port = await freePort();
  const script = path.join(path.dirname(new URL(import.meta.url).pathname), '../dataplane/backend.ts');
  const proc = spawn(process.execPath, [script, String(port), name], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    proc.stdout?.once('data', () => resolve());
    proc.once('exit', (c) => reject(new Error(`backend ${name} exited with ${c}`)));
  });
  return { port, proc };
}
