/**
 * Pieces the proxy benchmarks (bench/dataplane/run.ts and ablation.ts) share:
 * the minimal hand-written HAProxy config they compare against, the servers
 * they put behind Bulwark's gateway, CPU accounting from /proc, and CPU pinning.
 */
import { readFileSync } from 'node:fs';
import type { ServerSpec } from '../../src/dataplane/dataplane.ts';
import { parseCpuList, setAffinity } from '../../src/util/cpus.ts';

/** The anchor: one frontend, `default_backend`, roundrobin over the same servers, no logs, no checks. */
export function minimalHaproxyConfig(port: number, serverPorts: readonly number[]): string {
  return [
    'global',
    '  maxconn 4000',
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 30s',
    '  timeout server 30s',
    'frontend fe',
    `  bind 127.0.0.1:${port}`,
    '  default_backend be',
    'backend be',
    '  balance roundrobin',
    ...serverPorts.map((p, i) => `  server s${i} 127.0.0.1:${p}`),
    '',
  ].join('\n');
}

/** The backends on loopback as gateway servers `i1`, `i2`, ... */
export function benchServers(ports: readonly number[]): ServerSpec[] {
  return ports.map((port, i) => ({
    name: `i${i + 1}`,
    address: '127.0.0.1',
    port,
    weight: 100,
    state: 'ready' as const,
  }));
}

const TICK_US = 1_000_000 / 100; // /proc stat ticks (USER_HZ = 100 on Linux)

/** User+system CPU of a process so far, microseconds; NaN without a pid. */
export function procCpuUs(pid: number | undefined): number {
  if (!pid) return NaN;
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(f[11]) + Number(f[12])) * TICK_US;
}

/** Aggregate /proc/stat cpu line: [total, steal] jiffies. */
export function machineTimes(): [number, number] {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return [f.reduce((a, b) => a + b, 0), f[7] ?? 0];
}

/** Move a process (every thread of it) to `cpus`, a taskset list such as '1' or '0-1'. */
export function pinProcess(pid: number, cpus: string): void {
  setAffinity(pid, parseCpuList(cpus));
}
