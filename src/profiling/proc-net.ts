/**
 * What /proc says about a process we are about to profile: its scheduler
 * state, whether it is Node.js, and which TCP ports it listens on.
 *
 * `/proc/<pid>/net/tcp` shows the TCP table of the *process's* network
 * namespace, so reading it from the host finds the inspector socket even when
 * the instance lives in its own netns. Matching the socket inodes against
 * `/proc/<pid>/fd` keeps only sockets this process owns (another instance in
 * the same namespace, or on the host loopback, may listen too).
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';

export interface ListeningSocket {
  /** IPv4 or IPv6 address in text form, e.g. "127.0.0.1" or "::1". */
  address: string;
  port: number;
  inode: number;
}

/** Single-letter state from /proc/<pid>/stat (R, S, D, T, t, Z, ...), undefined when the process is gone. */
export async function processState(pid: number): Promise<string | undefined> {
  try {
    const raw = await readFile(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: the state follows the last ')'.
    return raw.slice(raw.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/** Executable path of the process (needs the same user or root), falling back to argv[0]. */
export async function processExecutable(pid: number): Promise<string | undefined> {
  try {
    return await readlink(`/proc/${pid}/exe`);
  } catch {
    try {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
      return cmdline.split('\0')[0] || undefined;
    } catch {
      return undefined;
    }
  }
}

/** True when the executable's file name is node or nodejs (optionally versioned, e.g. node24). */
export function looksLikeNode(executable: string): boolean {
  return /^node(js)?[\d.-]*$/.test(path.basename(executable.replace(/ \(deleted\)$/, '')));
}

/** Inodes of the sockets among the process's open files. */
export async function socketInodes(pid: number): Promise<Set<number>> {
  const inodes = new Set<number>();
  let fds: string[];
  try {
    fds = await readdir(`/proc/${pid}/fd`);
  } catch {
    return inodes;
  }
  await Promise.all(
    fds.map(async (fd) => {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/fd/${fd}`));
        if (m) inodes.add(Number(m[1]));
      } catch {
        // fd closed between readdir and readlink
      }
    }),
  );
  return inodes;
}

function hexToIpv4(hex: string): string {
  // /proc stores the address as a little-endian 32-bit word.
  const n = Number.parseInt(hex, 16);
  return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.');
}

function hexToIpv6(hex: string): string {
  // Four little-endian 32-bit words.
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (let b = 3; b >= 0; b--) bytes.push(Number.parseInt(word.slice(b * 2, b * 2 + 2), 16));
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  const text = groups.join(':');
  if (text === '0:0:0:0:0:0:0:1') return '::1';
  if (text === '0:0:0:0:0:0:0:0') return '::';
  return text;
}

const TCP_LISTEN = '0A';
const TCP_ESTABLISHED = '01';

/** Parse a /proc/net/tcp or tcp6 table into its listening sockets. */
export function parseListening(table: string, family: 4 | 6): ListeningSocket[] {
  const out: ListeningSocket[] = [];
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== TCP_LISTEN) continue;
    const [addrHex, portHex] = (f[1] ?? '').split(':');
    if (!addrHex || !portHex) continue;
    out.push({
      address: family === 4 ? hexToIpv4(addrHex) : hexToIpv6(addrHex),
      port: Number.parseInt(portHex, 16),
      inode: Number(f[9]),
    });
  }
  return out;
}

/** Established connections in a /proc/net/tcp or tcp6 table whose remote end is `port`: the clients' sockets. */
export function parseClientsOf(table: string, port: number): number[] {
  const out: number[] = [];
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== TCP_ESTABLISHED) continue;
    const remotePort = Number.parseInt((f[2] ?? '').split(':')[1] ?? '', 16);
    const inode = Number(f[9]);
    if (remotePort === port && inode > 0) out.push(inode);
  }
  return out;
}

/** Socket inodes of every connection to `port` in the network namespace of `pid` (any owner). */
export async function clientsOfPort(pid: number, port: number): Promise<number[]> {
  const [v4, v6] = await Promise.all([
    readFile(`/proc/${pid}/net/tcp`, 'utf8').catch(() => ''),
    readFile(`/proc/${pid}/net/tcp6`, 'utf8').catch(() => ''),
  ]);
  return [...parseClientsOf(v4, port), ...parseClientsOf(v6, port)];
}

/** The processes that hold a socket inode open, found by scanning /proc/<pid>/fd (used rarely). */
export async function ownersOfSocket(inode: number): Promise<{ pid: number; comm: string }[]> {
  const out: { pid: number; comm: string }[] = [];
  const pids = (await readdir('/proc').catch(() => [] as string[])).filter((e) => /^\d+$/.test(e));
  for (const e of pids) {
    const pid = Number(e);
    if (!(await socketInodes(pid)).has(inode)) continue;
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '?')).trim();
    out.push({ pid, comm });
  }
  return out;
}

/** TCP sockets the process itself listens on, in its own network namespace. */
export async function listeningSocketsOf(pid: number): Promise<ListeningSocket[]> {
  const [inodes, v4, v6] = await Promise.all([
    socketInodes(pid),
    readFile(`/proc/${pid}/net/tcp`, 'utf8').catch(() => ''),
    readFile(`/proc/${pid}/net/tcp6`, 'utf8').catch(() => ''),
  ]);
  return [...parseListening(v4, 4), ...parseListening(v6, 6)].filter((s) => inodes.has(s.inode));
}

export function isLoopback(address: string): boolean {
  return address.startsWith('127.') || address === '::1';
}
