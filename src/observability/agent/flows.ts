/**
 * Raw bpftrace maps -> flows `client -> server:port`, one record per flow and
 * interval, counted once even when both sockets of a connection live on this
 * host (east-west traffic through the site gateway always does).
 *
 * Which end is the server: sockets whose handshake the program saw carry
 * their side in the key. Older sockets (side 0) are normalised with the set
 * of known listening endpoints (instances' ports, the gateway binds, listening
 * sockets read from /proc at start-up), and failing that the lower port is
 * taken as the server's.
 */
import { u32ToIpv4, type RawInterval } from './bpftrace-output.ts';
import type { SocketDelta } from './socket-ledger.ts';

export interface FlowSample {
  client: string;
  server: string;
  port: number;
  /** Connections established this interval, seen from the connecting socket. */
  opened: number;
  /** Connections established this interval, seen from the accepting socket. */
  accepted: number;
  /** Connections that left ESTABLISHED this interval, seen from the client / server socket. */
  closedClient: number;
  closedServer: number;
  /** Sum of the lifetimes of client-side connections that closed (ms); with closedClient gives the mean. */
  lifetimeMsSum: number;
  /** connect() attempts that never got established (refused or timed out). */
  failed: number;
  /** Bytes client -> server and server -> client. */
  bytesToServer: number;
  bytesToClient: number;
  retransmits: number;
  /** Mean smoothed RTT of the flow's active sockets this interval, microseconds; undefined without samples. */
  rttUs: number | undefined;
  /** TCP resets on the flow (received or sent; the larger count, so a local pair is not counted twice). */
  resets: number;
  /** Client processes that called connect() on this flow this interval. */
  clientPids: number[];
}

export type IsServer = (ip: string, port: number) => boolean;

const flowKey = (client: string, server: string, port: number): string => `${client}|${server}|${port}`;

/** A flow with every counter at zero: the start of an accumulation, or a known flow quiet this interval. */
export function emptyFlow(client: string, server: string, port: number): FlowSample {
  return {
    client,
    server,
    port,
    opened: 0,
    accepted: 0,
    closedClient: 0,
    closedServer: 0,
    lifetimeMsSum: 0,
    failed: 0,
    bytesToServer: 0,
    bytesToClient: 0,
    retransmits: 0,
    rttUs: undefined,
    resets: 0,
    clientPids: [],
  };
}

interface Acc extends Omit<FlowSample, 'clientPids' | 'rttUs'> {
  clientPids: Set<number>;
  rstIn: number;
  rstOut: number;
  rttSum: number;
  rttN: number;
}

function nums(key: string): number[] {
  return key.split(',').map(Number);
}

/** Orient a raw (local, localPort, remote, remotePort) socket: which end serves? */
export function orient(
  local: string,
  lport: number,
  remote: string,
  rport: number,
  isServer: IsServer,
): { client: string; server: string; port: number; localIsClient: boolean } {
  const localServes = isServer(local, lport);
  const remoteServes = isServer(remote, rport);
  let localIsClient: boolean;
  if (localServes !== remoteServes) localIsClient = remoteServes;
  else localIsClient = rport <= lport;
  return localIsClient
    ? { client: local, server: remote, port: rport, localIsClient }
    : { client: remote, server: local, port: lport, localIsClient };
}

/**
 * One interval's flows from the program's maps (connections, failures,
 * retransmissions, resets) and the sockets' byte deltas (socket-ledger.ts).
 */
export function flowsFromInterval(
  raw: RawInterval,
  isServer: IsServer,
  sockets: readonly SocketDelta[] = [],
  /** Whether this socket's bytes are the connection's count (socket-ledger.ts countsBytes). */
  counts: (d: SocketDelta, localIsClient: boolean) => boolean = () => true,
): FlowSample[] {
  const flows = new Map<string, Acc>();
  const acc = (client: string, server: string, port: number): Acc => {
    const k = flowKey(client, server, port);
    let a = flows.get(k);
    if (!a) {
      const { rttUs: _rtt, clientPids: _pids, ...zero } = emptyFlow(client, server, port);
      a = {
        ...zero,
        clientPids: new Set(),
        rstIn: 0,
        rstOut: 0,
        rttSum: 0,
        rttN: 0,
      };
      flows.set(k, a);
    }
    return a;
  };
  const m = raw.maps;
  const each = (name: string, fn: (key: number[], v: number) => void): void => {
    for (const [k, v] of Object.entries(m[name] ?? {})) fn(nums(k), v);
  };
  const ip = u32ToIpv4;

  each('open', ([c, s, p, pid], v) => {
    const a = acc(ip(c!), ip(s!), p!);
    a.opened += v;
    if (pid) a.clientPids.add(pid);
  });
  each('accept', ([c, s, p], v) => void (acc(ip(c!), ip(s!), p!).accepted += v));
  each('close', ([c, s, p, side], v) => {
    const a = acc(ip(c!), ip(s!), p!);
    if (side === 1) a.closedClient += v;
    else a.closedServer += v;
  });
  each('close0', ([l, lp, r, rp], v) => {
    const o = orient(ip(l!), lp!, ip(r!), rp!, isServer);
    const a = acc(o.client, o.server, o.port);
    if (o.localIsClient) a.closedClient += v;
    else a.closedServer += v;
  });
  each('lifems', ([c, s, p], v) => void (acc(ip(c!), ip(s!), p!).lifetimeMsSum += v));
  each('fail', ([c, s, p, pid], v) => {
    const a = acc(ip(c!), ip(s!), p!);
    a.failed += v;
    if (pid) a.clientPids.add(pid);
  });
  for (const d of sockets) {
    const o =
      d.localIsClient === undefined
        ? orient(d.local, d.localPort, d.remote, d.remotePort, isServer)
        : d.localIsClient
          ? { client: d.local, server: d.remote, port: d.remotePort, localIsClient: true }
          : { client: d.remote, server: d.local, port: d.localPort, localIsClient: false };
    const a = acc(o.client, o.server, o.port);
    // Either end's smoothed RTT is a sample of the path; bytes come from one end only.
    if (d.rttUs !== undefined) {
      a.rttSum += d.rttUs;
      a.rttN += 1;
    }
    if (!counts(d, o.localIsClient)) continue;
    if (o.localIsClient) {
      a.bytesToServer += d.sent;
      a.bytesToClient += d.received;
    } else {
      a.bytesToClient += d.sent;
      a.bytesToServer += d.received;
    }
  }
  each('retrans', ([c, s, p], v) => void (acc(ip(c!), ip(s!), p!).retransmits += v));
  each('retrans0', ([l, lp, r, rp], v) => {
    const o = orient(ip(l!), lp!, ip(r!), rp!, isServer);
    acc(o.client, o.server, o.port).retransmits += v;
  });
  each('rstin', ([l, lp, r, rp], v) => {
    const o = orient(ip(l!), lp!, ip(r!), rp!, isServer);
    acc(o.client, o.server, o.port).rstIn += v;
  });
  each('rstout', ([l, lp, r, rp], v) => {
    const o = orient(ip(l!), lp!, ip(r!), rp!, isServer);
    acc(o.client, o.server, o.port).rstOut += v;
  });

  return [...flows.values()].map((a) => ({
    client: a.client,
    server: a.server,
    port: a.port,
    opened: a.opened,
    accepted: a.accepted,
    closedClient: a.closedClient,
    closedServer: a.closedServer,
    lifetimeMsSum: a.lifetimeMsSum,
    failed: a.failed,
    // One socket per connection carries its bytes (the `counts` rule), so these are plain sums.
    bytesToServer: a.bytesToServer,
    bytesToClient: a.bytesToClient,
    retransmits: a.retransmits,
    rttUs: a.rttN > 0 ? a.rttSum / a.rttN : undefined,
    resets: Math.max(a.rstIn, a.rstOut),
    clientPids: [...a.clientPids],
  }));
}

/**
 * Established connections per flow, kept from the open/close counts and
 * seeded from the socket tables at start (connections older than the agent).
 * A connection between two local sockets is counted from its client socket;
 * one whose client is elsewhere from the server socket.
 */
export class ConnectionTracker {
  readonly #client = new Map<string, number>();
  readonly #server = new Map<string, number>();
  readonly #isLocal: (ip: string) => boolean;

  constructor(isLocal: (ip: string) => boolean) {
    this.#isLocal = isLocal;
  }

  seed(client: string, server: string, port: number, localIsClient: boolean): void {
    const m = localIsClient ? this.#client : this.#server;
    const k = flowKey(client, server, port);
    m.set(k, (m.get(k) ?? 0) + 1);
  }

  apply(f: FlowSample): void {
    const k = flowKey(f.client, f.server, f.port);
    const upd = (m: Map<string, number>, d: number): void => {
      const n = Math.max(0, (m.get(k) ?? 0) + d);
      if (n === 0) m.delete(k);
      else m.set(k, n);
    };
    if (f.opened || f.closedClient) upd(this.#client, f.opened - f.closedClient);
    if (f.accepted || f.closedServer) upd(this.#server, f.accepted - f.closedServer);
  }

  established(client: string, server: string, port: number): number {
    const k = flowKey(client, server, port);
    return this.#isLocal(client) ? (this.#client.get(k) ?? 0) : (this.#server.get(k) ?? 0);
  }

  /** Every flow with at least one established connection. */
  flows(): { client: string; server: string; port: number; established: number }[] {
    const keys = new Set([...this.#client.keys(), ...this.#server.keys()]);
    const out: { client: string; server: string; port: number; established: number }[] = [];
    for (const k of keys) {
      const [client = '', server = '', port = '0'] = k.split('|');
      const n = this.established(client, server, Number(port));
      if (n > 0) out.push({ client, server, port: Number(port), established: n });
    }
    return out;
  }

  clear(): void {
    this.#client.clear();
    this.#server.clear();
  }
}
