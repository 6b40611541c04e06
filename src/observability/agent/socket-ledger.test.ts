import { describe, expect, it } from 'vitest';
import { countsBytes, SocketLedger } from './socket-ledger.ts';
import { netnsInode, parseSs } from './tcp-info.ts';

const SS = [
  'LISTEN 0      511      0.0.0.0:8080       0.0.0.0:*   cubic cwnd:10',
  'LISTEN 0      511      [::]:9090       [::]:*   cubic cwnd:10',
  'ESTAB  0      0      10.213.0.1:8080 10.213.0.5:50000 cubic wscale:7,7 rto:204 rtt:0.052/0.02 mss:65483 bytes_sent:3000 bytes_retrans:200 bytes_acked:2801 bytes_received:1500 segs_out:9',
  'ESTAB  0      0      [::ffff:127.0.0.1]:3000 [::ffff:127.0.0.1]:41000 cubic rto:204 rtt:1.5/0.7 bytes_received:12',
  'ESTAB  0      0      [::1]:3000 [::1]:41001 cubic rtt:1.5/0.7 bytes_received:12',
  'TIME-WAIT 0      0      127.0.0.1:41104    127.0.0.1:34035',
  'CLOSE-WAIT 1      0      127.0.0.1:3000    127.0.0.1:41105 cubic rtt:0.1/0.05 bytes_sent:5 bytes_received:101',
  'SYN-SENT 0      1      10.213.0.1:40100 192.0.2.1:443 cubic rto:1000 backoff:1',
].join('\n');

describe('ss tcp_info', () => {
  it('reads IPv4 (and v4-mapped) sockets with payload bytes and RTT, skipping IPv6', () => {
    const socks = parseSs(SS);
    expect(socks.map((s) => `${s.state} ${s.local}:${s.localPort}`)).toEqual([
      'LISTEN 0.0.0.0:8080',
      'ESTAB 10.213.0.1:8080',
      'ESTAB 127.0.0.1:3000',
      'TIME-WAIT 127.0.0.1:41104',
      'CLOSE-WAIT 127.0.0.1:3000',
      'SYN-SENT 10.213.0.1:40100',
    ]);
    // Payload sent excludes retransmissions; bytes_acked (which counts SYN and FIN) is not used.
    expect(socks[1]).toMatchObject({
      remote: '10.213.0.5',
      remotePort: 50000,
      sent: 2800,
      received: 1500,
      rttUs: 52,
    });
    expect(socks[2]).toMatchObject({ sent: 0, received: 12, rttUs: 1500 });
    expect(socks[3]).toMatchObject({ sent: 0, received: 0, rttUs: undefined });
    // The peer's FIN is not payload.
    expect(socks[4]).toMatchObject({ sent: 5, received: 100 });
  });

  it('reads a namespace inode', () => {
    expect(netnsInode('net:[4026531833]')).toBe(4026531833);
    expect(() => netnsInode('mnt:x')).toThrow(/not a network namespace/);
  });
});

const sock = (localPort: number, sent: number, received: number, state = 'ESTAB') => ({
  state,
  local: '10.213.0.1',
  localPort,
  remote: '10.213.0.5',
  remotePort: 50000 + localPort,
  sent,
  received,
  rttUs: 50,
});

describe('socket ledger', () => {
  it('reports growth since the last read, then the rest at close, never the baseline', () => {
    const l = new SocketLedger();
    expect(l.read(7, [sock(8080, 1000, 500)], { baseline: true })).toEqual([]);
    const d1 = l.read(7, [sock(8080, 1300, 600), sock(8081, 10, 20)], { baseline: false });
    expect(d1.map((d) => [d.localPort, d.sent, d.received])).toEqual([
      [8080, 300, 100],
      [8081, 10, 20],
    ]);
    // Unchanged: nothing to report.
    expect(l.read(7, [sock(8080, 1300, 600), sock(8081, 10, 20)], { baseline: false })).toEqual([]);
    const c = l.closed({ netns: 7, ...sock(8080, 1450, 600) }, false);
    expect(c).toMatchObject({ sent: 150, received: 0, localIsClient: false });
    // A socket never read (opened and closed between two reads) reports all it carried.
    expect(l.closed({ netns: 7, ...sock(8090, 42, 0) }, true)).toMatchObject({ sent: 42, received: 0 });
    // Same 4-tuple in another namespace is another socket.
    expect(l.closed({ netns: 8, ...sock(8081, 10, 20) }, undefined)).toMatchObject({
      sent: 10,
      received: 20,
    });
  });

  it('orients by the namespace own listeners', () => {
    const l = new SocketLedger();
    const client = { ...sock(50000, 5, 6), local: '10.213.0.5', remote: '10.213.0.1', remotePort: 8080 };
    const [srv, cli] = l.read(
      1,
      [{ ...sock(8080, 0, 0), state: 'LISTEN', remote: '0.0.0.0', remotePort: 0 }, sock(8080, 6, 5), client],
      { baseline: false },
    );
    expect(srv?.localIsClient).toBe(false);
    expect(cli?.localIsClient).toBe(true);
  });

  it('takes a smaller counter as a new socket on a reused 4-tuple and forgets sockets gone from reads', () => {
    const l = new SocketLedger();
    l.read(1, [sock(8080, 1000, 1000)], { baseline: false });
    expect(l.read(1, [sock(8080, 30, 40)], { baseline: false })[0]).toMatchObject({ sent: 30, received: 40 });
    expect(l.size).toBe(1);
    for (let i = 0; i < 3; i++) l.read(1, [], { baseline: false });
    expect(l.size).toBe(0);
    l.read(2, [sock(8080, 1, 1)], { baseline: true });
    l.dropNetns(2);
    expect(l.known(2)).toBe(false);
    expect(l.size).toBe(0);
  });
});

describe('which socket counts a connection', () => {
  it('counts each kind of connection from exactly one of its sockets', () => {
    // instance -> gateway: the gateway's accepted socket in the host namespace.
    expect(countsBytes(true, 'instance', false)).toBe(true);
    expect(countsBytes(false, 'host', true)).toBe(false);
    // gateway -> instance: the gateway's connecting socket.
    expect(countsBytes(true, 'instance', true)).toBe(true);
    expect(countsBytes(false, 'host', false)).toBe(false);
    // Both ends in one namespace (loopback, host to host): the connecting socket.
    expect(countsBytes(true, 'same', true)).toBe(true);
    expect(countsBytes(true, 'same', false)).toBe(false);
    // Instance straight to instance: the connecting one.
    expect(countsBytes(false, 'instance', true)).toBe(true);
    expect(countsBytes(false, 'instance', false)).toBe(false);
    // The other end is elsewhere: the only socket there is.
    expect(countsBytes(false, 'remote', true)).toBe(true);
    expect(countsBytes(true, 'remote', false)).toBe(true);
  });
});
