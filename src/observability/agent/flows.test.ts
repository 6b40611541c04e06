import { describe, expect, it } from 'vitest';
import { BpftraceOutputReader, u32ToIpv4 } from './bpftrace-output.ts';
import { ConnectionTracker, emptyFlow, flowsFromInterval, orient } from './flows.ts';

// 10.213.0.5 and 10.213.0.1 as the little-endian u32 bpftrace prints for network-order addresses.
const ip = (s: string): number => s.split('.').reduceRight((acc, b) => acc * 256 + Number(b), 0);
const INST = ip('10.213.0.5');
const HOST = ip('10.213.0.1');

function interval(lines: object[]): ReturnType<BpftraceOutputReader['line']> {
  const r = new BpftraceOutputReader();
  let last;
  for (const l of [...lines, { type: 'printf', data: 'tick 123\n' }]) last = r.line(JSON.stringify(l));
  return last;
}

describe('bpftrace output', () => {
  it('groups maps up to a tick into one interval and reads comm', () => {
    const ev = interval([
      { type: 'map', data: { '@open': { [`${INST},${HOST},8080,42`]: 2 } } },
      { type: 'map', data: { '@comm': { '42': 'node' } } },
    ]);
    expect(ev?.kind).toBe('interval');
    if (ev?.kind !== 'interval') return;
    expect(ev.interval.maps.open).toEqual({ [`${INST},${HOST},8080,42`]: 2 });
    expect(ev.interval.comm.get(42)).toBe('node');
    expect(ev.interval.tickNs).toBe(123);
  });

  it('reports attach and passes other lines as messages', () => {
    const r = new BpftraceOutputReader();
    expect(r.line('{"type": "attached_probes", "data": {"probes": 9}}')).toEqual({
      kind: 'attached',
      probes: 9,
    });
    expect(r.line('not json')).toEqual({ kind: 'message', text: 'not json' });
    expect(r.line('')).toBeUndefined();
  });

  it('decodes addresses', () => {
    expect(u32ToIpv4(16777343)).toBe('127.0.0.1');
    expect(u32ToIpv4(INST)).toBe('10.213.0.5');
  });
});

describe('flows', () => {
  const noServers = (): boolean => false;

  it('counts a local connection once although both of its sockets report bytes', () => {
    const ev = interval([
      { type: 'map', data: { '@open': { [`${INST},${HOST},8080,42`]: 1 } } },
      { type: 'map', data: { '@accept': { [`${INST},${HOST},8080`]: 1 } } },
    ]);
    if (ev?.kind !== 'interval') throw new Error('no interval');
    const sock = { netns: 1, rttUs: undefined };
    const client = { ...sock, local: '10.213.0.5', localPort: 50000, remote: '10.213.0.1', remotePort: 8080 };
    const server = { ...sock, local: '10.213.0.1', localPort: 8080, remote: '10.213.0.5', remotePort: 50000 };
    const [f] = flowsFromInterval(
      ev.interval,
      noServers,
      [
        { ...client, localIsClient: true, sent: 100, received: 300, rttUs: 40 },
        // The accepted socket's view of the same bytes, plus the FIN's sequence number.
        { ...server, localIsClient: false, sent: 300, received: 101, rttUs: 60 },
      ],
      (_d, localIsClient) => localIsClient,
    );
    expect(f).toMatchObject({
      client: '10.213.0.5',
      server: '10.213.0.1',
      port: 8080,
      opened: 1,
      accepted: 1,
      bytesToServer: 100,
      bytesToClient: 300,
      rttUs: 50,
      clientPids: [42],
    });
  });

  it('orients a socket of unknown side before counting its bytes', () => {
    const raw = { tickNs: 0, maps: {}, comm: new Map<number, string>() };
    const isServer = (a: string, p: number): boolean => a === '10.213.0.1' && p === 8080;
    const [f] = flowsFromInterval(raw, isServer, [
      {
        netns: 1,
        local: '10.213.0.1',
        localPort: 8080,
        remote: '192.0.2.9',
        remotePort: 40000,
        localIsClient: undefined,
        sent: 7,
        received: 3,
        rttUs: undefined,
      },
    ]);
    expect(f).toMatchObject({
      client: '192.0.2.9',
      server: '10.213.0.1',
      port: 8080,
      bytesToServer: 3,
      bytesToClient: 7,
    });
    expect(f?.rttUs).toBeUndefined();
  });

  it('orients sockets older than the agent by the known servers, else by the lower port', () => {
    const isServer = (a: string, p: number): boolean => a === '10.213.0.1' && p === 40000;
    expect(orient('10.213.0.5', 50000, '10.213.0.1', 40000, isServer)).toMatchObject({
      client: '10.213.0.5',
      server: '10.213.0.1',
      port: 40000,
      localIsClient: true,
    });
    expect(orient('10.213.0.1', 8080, '10.213.0.5', 51000, noServers)).toMatchObject({
      client: '10.213.0.5',
      port: 8080,
      localIsClient: false,
    });
  });

  it('tracks established connections from opens, closes and a seed', () => {
    const t = new ConnectionTracker((a) => a.startsWith('10.213.'));
    t.seed('10.213.0.5', '10.213.0.1', 8080, true);
    t.seed('10.213.0.5', '10.213.0.1', 8080, false); // the server socket of the same connection
    const base = emptyFlow('10.213.0.5', '10.213.0.1', 8080);
    t.apply({ ...base, opened: 3, closedClient: 1 });
    expect(t.established('10.213.0.5', '10.213.0.1', 8080)).toBe(3);
    t.apply({ ...base, opened: 0, closedClient: 5 });
    expect(t.established('10.213.0.5', '10.213.0.1', 8080)).toBe(0);
    // A remote client is counted from the server socket.
    t.seed('192.0.2.7', '10.213.0.1', 8080, false);
    expect(t.flows()).toEqual([{ client: '192.0.2.7', server: '10.213.0.1', port: 8080, established: 1 }]);
  });
});
