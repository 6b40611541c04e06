/**
 * The kernel's own per-socket TCP counters (tcp_info over sock_diag, read
 * with iproute2's `ss`), one network namespace at a time.
 *
 * Why not count bytes in eBPF on every send and receive: a program on
 * `sock_send_length`/`sock_recv_length`/`tcp_probe` runs several times per
 * request and cost about a fifth of the gateway's maximum throughput
 * (docs/benchmarks.md, bench/agent). The kernel already keeps exact totals
 * per socket (bytes_sent, bytes_retrans, bytes_received, srtt); reading them
 * once per interval costs one `ss` (a few ms of CPU) whatever the request
 * rate. Sockets that close between two reads report their totals from the
 * state-change tracepoint instead (flows.bt), so no byte is lost or counted
 * twice (see socket-ledger.ts).
 */
import { execFile } from 'node:child_process';
import { readlink } from 'node:fs/promises';

export interface TcpInfoSocket {
  /** ss state name: ESTAB, LISTEN, SYN-SENT, CLOSE-WAIT, ... */
  state: string;
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
  /** Payload bytes sent, retransmissions excluded (bytes_sent - bytes_retrans). */
  sent: number;
  /** Payload bytes received (bytes_received). */
  received: number;
  /** Smoothed round-trip time, microseconds; undefined when the kernel has no sample. */
  rttUs: number | undefined;
}

export interface NamespaceSockets {
  /** Network namespace inode (the number in `net:[...]`), as flows.bt keys closed sockets. */
  netns: number;
  sockets: TcpInfoSocket[];
}

const IPV4 = /^\d+\.\d+\.\d+\.\d+$/;

/** `127.0.0.1:80`, `[::ffff:10.0.0.1]:80` -> IPv4 and port; undefined for IPv6 proper and wildcards. */
function endpoint(text: string): { ip: string; port: number } | undefined {
  const i = text.lastIndexOf(':');
  if (i < 0) return undefined;
  let host = text.slice(0, i);
  const port = Number(text.slice(i + 1));
  if (!Number.isInteger(port)) return undefined;
  if (host.startsWith('[')) {
    host = host.slice(1, -1);
    if (!host.toLowerCase().startsWith('::ffff:')) return undefined;
    host = host.slice(7);
  }
  // ss prints an interface scope as `%lo`; a wildcard `*` is not an IPv4 address.
  const scope = host.indexOf('%');
  if (scope >= 0) host = host.slice(0, scope);
  return IPV4.test(host) ? { ip: host, port } : undefined;
}

/** The first n whitespace-separated words of a line and where the last one ended (ss pads its columns). */
function tokens(line: string, n: number): { words: string[]; end: number } | undefined {
  const words: string[] = [];
  let i = 0;
  while (words.length < n) {
    while (i < line.length && (line.charCodeAt(i) === 32 || line.charCodeAt(i) === 9)) i++;
    if (i >= line.length) return undefined;
    const start = i;
    while (i < line.length && line.charCodeAt(i) !== 32 && line.charCodeAt(i) !== 9) i++;
    words.push(line.slice(start, i));
  }
  return { words, end: i };
}

/** The number after ` name:` in a tcp_info line, from `from`; undefined when absent. */
function field(line: string, name: string, from: number): number | undefined {
  const i = line.indexOf(name, from);
  if (i < 0) return undefined;
  let j = i + name.length;
  let n = 0;
  let any = false;
  for (; j < line.length; j++) {
    const c = line.charCodeAt(j);
    if (c < 48 || c > 57) break;
    n = n * 10 + (c - 48);
    any = true;
  }
  return any ? n : undefined;
}

/** ` rtt:1.327/0.449` -> 1327 us. */
function rttField(line: string, from: number): number | undefined {
  const i = line.indexOf(' rtt:', from);
  if (i < 0) return undefined;
  const end = line.indexOf('/', i);
  const v = Number(line.slice(i + 5, end < 0 ? undefined : end));
  return Number.isFinite(v) ? Math.round(v * 1000) : undefined;
}

/**
 * Parse `ss -t -i -n -a -H -O` output (one socket per line, tcp_info after
 * the addresses). Read every interval on busy hosts (hundreds of lines of
 * ~600 bytes), so fields are found with indexOf, not regular expressions.
 */
export function parseSs(text: string): TcpInfoSocket[] {
  const out: TcpInfoSocket[] = [];
  for (const line of text.split('\n')) {
    const f = tokens(line, 5);
    if (!f) continue;
    const [state = '', , , localText = '', remoteText = ''] = f.words;
    const local = endpoint(localText);
    const remote = state === 'LISTEN' ? { ip: '0.0.0.0', port: 0 } : endpoint(remoteText);
    if (!local || !remote) continue;
    // tcp_info starts after the peer address.
    const from = f.end;
    const sent = (field(line, ' bytes_sent:', from) ?? 0) - (field(line, ' bytes_retrans:', from) ?? 0);
    // bytes_received counts the peer's FIN once one came (the states after it): payload only here.
    const received = (field(line, ' bytes_received:', from) ?? 0) - (FIN_RECEIVED.has(state) ? 1 : 0);
    out.push({
      state,
      local: local.ip,
      localPort: local.port,
      remote: remote.ip,
      remotePort: remote.port,
      sent: Math.max(0, sent),
      received: Math.max(0, received),
      rttUs: rttField(line, from),
    });
  }
  return out;
}

/** `net:[4026531833]` -> 4026531833. */
export function netnsInode(link: string): number {
  const m = /\[(\d+)\]/.exec(link);
  if (!m) throw new Error(`not a network namespace link: ${link}`);
  return Number(m[1]);
}

/** States in which the peer's FIN has been received. */
const FIN_RECEIVED = new Set(['CLOSE-WAIT', 'LAST-ACK', 'CLOSING']);

/** TIME-WAIT sockets carry no tcp_info (their full socket closed and reported its totals). */
const SS_ARGS = ['-t', '-i', '-n', '-a', '-H', '-O', 'exclude', 'time-wait'];

/**
 * The TCP sockets of the namespace of `pid` (this process's own namespace
 * without one). Rejects when the process is gone or ss fails.
 */
export async function readTcpInfo(pid?: number, timeoutMs = 5000): Promise<NamespaceSockets> {
  const netns = netnsInode(await readlink(`/proc/${pid ?? 'self'}/ns/net`));
  const [file, args] =
    pid === undefined ? ['ss', SS_ARGS] : ['nsenter', [`--net=/proc/${pid}/ns/net`, 'ss', ...SS_ARGS]];
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, out, errOut) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${errOut.trim() || err.message}`));
      else resolve(out);
    });
  });
  return { netns, sockets: parseSs(stdout) };
}
