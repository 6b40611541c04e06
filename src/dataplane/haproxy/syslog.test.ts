import dgram from 'node:dgram';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SyslogReceiver } from './syslog.ts';
import type { SyslogFrame } from './log-parser.ts';
import { waitFor } from '../../util/time.ts';

let receiver: SyslogReceiver | undefined;
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

describe('SyslogReceiver', () => {
  it('splits a TCP stream into newline and octet-counted frames, across chunk boundaries', async () => {
    receiver = await SyslogReceiver.create({ transport: 'tcp' });
    const got: SyslogFrame[] = [];
    receiver.onFrame((f) => got.push(f));
    const c = net.connect(receiver.port, '127.0.0.1');
    await new Promise((r) => c.once('connect', r));
    c.write('bwlog1 first\nbwlog1 sec');
    await new Promise((r) => setTimeout(r, 20));
    c.write('ond\n13 <134>bwlog1');
    await new Promise((r) => setTimeout(r, 20));
    c.write(' 3bwlog1 raw\n');
    await waitFor('frames', () => got.length === 4, { timeoutMs: 2000 });
    c.destroy();
    expect(got.map((f) => f.message)).toEqual(['bwlog1 first', 'bwlog1 second', 'bwlog1 3', 'bwlog1 raw']);
    expect(got[2]?.priority).toBe(134);
  });

  it('receives UDP datagrams', async () => {
    receiver = await SyslogReceiver.create({ transport: 'udp' });
    const got: SyslogFrame[] = [];
    receiver.onFrame((f) => got.push(f));
    const s = dgram.createSocket('udp4');
    s.send('<134>Nov 23 09:34:27 haproxy[7]: bwlog1 x\n', receiver.port, '127.0.0.1');
    await waitFor('datagram', () => got.length === 1, { timeoutMs: 2000 });
    s.close();
    expect(got[0]).toMatchObject({ app: 'haproxy', pid: 7, message: 'bwlog1 x' });
    expect(receiver.status()).toMatchObject({ transport: 'udp', frames: 1, unparsable: 0 });
  });
});
