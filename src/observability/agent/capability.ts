/**
 * Can the eBPF agent run here, and if not, why (and how to fix it). Checked
 * before bpftrace is started so the status names the missing piece instead
 * of relaying a compiler error: root, the bpftrace binary, tracefs (mounted
 * when it is not), BTF (struct sock fields), and the tracepoints the program uses.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

export const TRACEFS = '/sys/kernel/tracing';

/** Tracepoints of flows.bt; the first is required, the others only add detail. */
export const TRACEPOINTS = [
  'sock/inet_sock_set_state',
  'tcp/tcp_retransmit_skb',
  'tcp/tcp_receive_reset',
  'tcp/tcp_send_reset',
] as const;

export interface AgentCapability {
  available: boolean;
  reason?: string;
  bpftrace?: string;
  /** Tracepoints present (category/name). */
  tracepoints: string[];
  /** Tracepoints the kernel lacks: their part of the data is missing. */
  missing: string[];
  /** True when this check mounted tracefs. */
  mountedTracefs?: boolean;
}

const run = (file: string, args: string[], timeoutMs = 10_000): Promise<{ ok: boolean; out: string }> =>
  new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs }, (err, stdout, stderr) =>
      resolve({ ok: !err, out: `${stdout}${stderr}`.trim() }),
    );
  });

/** Find an executable on PATH (or take an absolute path as given). */
export function findExecutable(name: string): string | undefined {
  if (name.includes('/')) return existsSync(name) ? name : undefined;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir || '.', name);
    if (existsSync(p)) return p;
  }
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    const p = path.join(dir, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

export async function checkAgentCapability(opts: { bpftrace?: string } = {}): Promise<AgentCapability> {
  const none = { available: false, tracepoints: [], missing: [...TRACEPOINTS] };
  if (process.platform !== 'linux') return { ...none, reason: 'eBPF needs Linux' };
  if (process.getuid?.() !== 0) {
    return {
      ...none,
      reason: 'eBPF needs root (CAP_BPF and CAP_PERFMON): run the control plane as root to get L4 flows',
    };
  }
  const bpftrace = findExecutable(opts.bpftrace ?? 'bpftrace');
  if (!bpftrace) {
    return { ...none, reason: 'bpftrace is not installed: apt-get install -y bpftrace (scripts/prereqs.sh)' };
  }
  let mountedTracefs = false;
  if (!existsSync(path.join(TRACEFS, 'events'))) {
    const m = await run('mount', ['-t', 'tracefs', 'nodev', TRACEFS]);
    if (!m.ok || !existsSync(path.join(TRACEFS, 'events'))) {
      return {
        ...none,
        bpftrace,
        reason:
          `tracefs is not mounted at ${TRACEFS} and mounting it failed (${m.out || 'no output'}); ` +
          `mount it: mount -t tracefs nodev ${TRACEFS}`,
      };
    }
    mountedTracefs = true;
  }
  if (!existsSync('/sys/kernel/btf/vmlinux')) {
    return {
      ...none,
      bpftrace,
      mountedTracefs,
      reason: 'the kernel has no BTF (/sys/kernel/btf/vmlinux): build it with CONFIG_DEBUG_INFO_BTF=y',
    };
  }
  const tracepoints = TRACEPOINTS.filter((t) => existsSync(path.join(TRACEFS, 'events', t)));
  const missing = TRACEPOINTS.filter((t) => !tracepoints.includes(t));
  if (!tracepoints.includes(TRACEPOINTS[0])) {
    return {
      available: false,
      bpftrace,
      tracepoints,
      missing,
      mountedTracefs,
      reason: `the kernel lacks the tracepoint ${TRACEPOINTS[0]} (Linux >= 4.16 has it)`,
    };
  }
  return { available: true, bpftrace, tracepoints, missing, mountedTracefs };
}

/**
 * The program text for this kernel: the interval filled in and the blocks of
 * missing tracepoints removed (bpftrace refuses a program with an unknown probe).
 */
export function renderProgram(source: string, intervalMs: number, missing: readonly string[]): string {
  let text = source.replace(/INTERVAL_MS/g, String(intervalMs));
  for (const t of missing) {
    const header = `tracepoint:${t.replace('/', ':')}`;
    const start = text.indexOf(`\n${header}\n`);
    if (start < 0) continue;
    const end = text.indexOf('\n}\n', start);
    text = text.slice(0, start) + text.slice(end < 0 ? text.length : end + 2);
  }
  return text;
}
