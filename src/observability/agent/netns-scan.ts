/**
 * The network namespaces of this node and their IPv4 addresses, found from
 * /proc alone (no process spawned): every process's `ns/net` link, one pid
 * per namespace, and that namespace's local addresses from
 * `/proc/<pid>/net/fib_trie`. A node agent whose inventory has no pids (a
 * Kubernetes node: pods are the kubelet's, not ours) finds a pod's
 * namespace by the pod IP this way, to read its sockets' counters.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import { netnsInode } from './tcp-info.ts';

/** Local (`/32 host LOCAL`) IPv4 addresses of a fib_trie dump, loopback left out. */
export function localAddressesOfFibTrie(text: string): string[] {
  const out = new Set<string>();
  let last = '';
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t.startsWith('|-- ')) last = t.slice(4);
    else if (t === '/32 host LOCAL' && last && !last.startsWith('127.')) out.add(last);
  }
  return [...out];
}

export interface NamespaceMap {
  /** IPv4 address -> a pid inside the namespace that holds it. */
  byIp: Map<string, number>;
  namespaces: number;
}

/** Scan /proc; processes that vanish meanwhile are skipped. `hostNetns` is left out (read anyway). */
export async function scanNamespaces(hostNetns: number | undefined): Promise<NamespaceMap> {
  const seen = new Set<number>();
  const byIp = new Map<string, number>();
  for (const name of await readdir('/proc')) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const pid = Number(name);
    try {
      const ns = netnsInode(await readlink(`/proc/${pid}/ns/net`));
      if (ns === hostNetns || seen.has(ns)) continue;
      seen.add(ns);
      for (const ip of localAddressesOfFibTrie(await readFile(`/proc/${pid}/net/fib_trie`, 'utf8'))) {
        byIp.set(ip, pid);
      }
    } catch {
      // gone, or a kernel thread without a readable namespace
    }
  }
  return { byIp, namespaces: seen.size };
}
