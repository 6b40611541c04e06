/**
 * The TCP socket tables of network namespaces (`/proc/<pid>/net/tcp` shows
 * the table of that process's namespace), read once when the agent starts:
 * connections established before bpftrace attached never pass through the
 * state-change tracepoint, so they are seeded from here, and listening
 * sockets tell which end of an older connection is the server.
 */
import { readFile, readlink } from 'node:fs/promises';

export interface TableSocket {
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
  /** Two-hex-digit kernel state: 01 established, 0A listen. */
  state: string;
}

function hexIpv4(hex: string): string {
  const n = Number.parseInt(hex, 16);
  return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.');
}

/** Parse a /proc/net/tcp (IPv4) table. */
export function parseTcpTable(text: string): TableSocket[] {
  const out: TableSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const [la, lp] = (f[1] ?? '').split(':');
    const [ra, rp] = (f[2] ?? '').split(':');
    if (!la || !lp || !ra || !rp) continue;
    out.push({
      local: hexIpv4(la),
      localPort: Number.parseInt(lp, 16),
      remote: hexIpv4(ra),
      remotePort: Number.parseInt(rp, 16),
      state: f[3] ?? '',
    });
  }
  return out;
}

/**
 * Socket tables of the namespaces of these pids (plus our own), one per
 * namespace. Processes that vanished are skipped.
 */
export async function readSocketTables(pids: number[]): Promise<TableSocket[][]> {
  const seen = new Set<string>();
  const tables: TableSocket[][] = [];
  for (const pid of ['self', ...pids.map(String)]) {
    try {
      const ns = await readlink(`/proc/${pid}/ns/net`);
      if (seen.has(ns)) continue;
      seen.add(ns);
      tables.push(parseTcpTable(await readFile(`/proc/${pid}/net/tcp`, 'utf8')));
    } catch {
      // gone, or not ours to read
    }
  }
  return tables;
}
