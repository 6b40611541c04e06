/**
 * Per-socket byte totals -> per-interval deltas, from two sources that see
 * the same sockets at different times: a periodic read of the kernel's
 * counters of live sockets (tcp-info.ts) and the final totals of sockets
 * that closed (flows.bt, at the move to CLOSE). The ledger remembers what it
 * last read of each socket so the bytes of a socket are counted once:
 * a live read reports what grew since the last read, a close reports the
 * rest. Pure logic, no I/O.
 *
 * A namespace read for the first time when the agent starts is a baseline:
 * its sockets' earlier history is not traffic of this interval. A socket met
 * later for the first time is new (it opened after the previous read), so
 * all its bytes count.
 */

export interface SocketId {
  netns: number;
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
}

export interface SocketTotals extends SocketId {
  sent: number;
  received: number;
  rttUs?: number | undefined;
}

/** Bytes of one socket in one interval, with which end it is when that is known. */
export interface SocketDelta {
  netns: number;
  local: string;
  localPort: number;
  remote: string;
  remotePort: number;
  /** true: this is the connecting socket; false: the accepted one; undefined: unknown (orient later). */
  localIsClient: boolean | undefined;
  sent: number;
  received: number;
  /** Smoothed RTT of an active socket, microseconds. */
  rttUs: number | undefined;
}

interface Entry {
  sent: number;
  received: number;
  /** Reads of its namespace that did not list it; the entry is dropped after a few. */
  missing: number;
}

/** Reads of a namespace without the socket before its entry is forgotten (its close was lost). */
const MISSING_LIMIT = 3;

/** What a socket carried since its last read. Counters only grow: smaller ones are a new socket on a reused 4-tuple. */
function since(
  prev: Entry | undefined,
  s: { sent: number; received: number },
): { sent: number; received: number } {
  const grew = prev && s.sent >= prev.sent && s.received >= prev.received;
  return grew ? { sent: s.sent - prev.sent, received: s.received - prev.received } : s;
}

function deltaOf(
  s: SocketId & { rttUs?: number | undefined },
  localIsClient: boolean | undefined,
  sent: number,
  received: number,
): SocketDelta {
  const { netns, local, localPort, remote, remotePort } = s;
  return { netns, local, localPort, remote, remotePort, localIsClient, sent, received, rttUs: s.rttUs };
}

const keyOf = (s: SocketId): string => `${s.netns}|${s.local}:${s.localPort}|${s.remote}:${s.remotePort}`;

export class SocketLedger {
  readonly #last = new Map<string, Entry>();
  readonly #byNetns = new Map<number, Set<string>>();

  /** Namespaces read at least once. */
  known(netns: number): boolean {
    return this.#byNetns.has(netns);
  }

  /**
   * A read of every socket of one namespace. `listening` sockets say which
   * end an accepted socket is; `baseline` records without reporting.
   */
  read(
    netns: number,
    sockets: readonly (Omit<SocketTotals, 'netns'> & { state: string })[],
    opts: { baseline: boolean },
  ): SocketDelta[] {
    const listening = new Set<string>();
    for (const s of sockets) if (s.state === 'LISTEN') listening.add(`${s.local}:${s.localPort}`);
    const keys = this.#byNetns.get(netns) ?? new Set<string>();
    this.#byNetns.set(netns, keys);
    const seen = new Set<string>();
    const out: SocketDelta[] = [];
    for (const s of sockets) {
      if (s.state === 'LISTEN') continue;
      const k = keyOf({ ...s, netns });
      seen.add(k);
      const prev = this.#last.get(k);
      this.#last.set(k, { sent: s.sent, received: s.received, missing: 0 });
      keys.add(k);
      if (opts.baseline) continue;
      const { sent, received } = since(prev, s);
      if (sent === 0 && received === 0) continue;
      const listens = (ip: string, port: number): boolean =>
        listening.has(`${ip}:${port}`) || listening.has(`0.0.0.0:${port}`);
      // An accepted socket's local end listens; a socket connected to a listener of its own
      // namespace is the connecting end. Anything else is oriented later from what the site serves.
      const localIsClient = listens(s.local, s.localPort)
        ? false
        : listens(s.remote, s.remotePort)
          ? true
          : undefined;
      out.push(deltaOf({ ...s, netns }, localIsClient, sent, received));
    }
    for (const k of keys) {
      if (seen.has(k)) continue;
      const e = this.#last.get(k);
      if (!e || ++e.missing >= MISSING_LIMIT) {
        this.#last.delete(k);
        keys.delete(k);
      }
    }
    return out;
  }

  /** Final totals of a socket that closed: what it carried since the last read. */
  closed(s: SocketTotals, localIsClient: boolean | undefined): SocketDelta | undefined {
    const k = keyOf(s);
    const prev = this.#last.get(k);
    this.#last.delete(k);
    this.#byNetns.get(s.netns)?.delete(k);
    const { sent, received } = since(prev, s);
    if (sent === 0 && received === 0 && s.rttUs === undefined) return undefined;
    return deltaOf(s, localIsClient, sent, received);
  }

  /** Forget a namespace that no longer exists (its instance is gone). */
  dropNetns(netns: number): void {
    for (const k of this.#byNetns.get(netns) ?? []) this.#last.delete(k);
    this.#byNetns.delete(netns);
  }

  get size(): number {
    return this.#last.size;
  }
}

/** Where the other end of a socket lives, seen from the socket's namespace. */
export type PeerPlace = 'same' | 'host' | 'instance' | 'remote';

/**
 * Which one socket of a connection carries its bytes, so a connection whose
 * two ends are both on this node is counted once, and always from the same
 * end: the host namespace's socket when there is one (it is read every
 * interval), the connecting socket when both ends share a namespace or are
 * both instances, the only socket there is otherwise.
 */
export function countsBytes(inHostNs: boolean, peer: PeerPlace, localIsClient: boolean): boolean {
  switch (peer) {
    case 'same':
      return localIsClient;
    case 'host':
      return inHostNs ? localIsClient : false;
    case 'instance':
      return inHostNs ? true : localIsClient;
    case 'remote':
      return true;
  }
}
