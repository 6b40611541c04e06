import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SyslogReceiver } from './syslog.ts';
import { waitFor } from '../../util/time.ts';

let receiver: SyslogReceiver | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A socket path in a fresh directory, removed after the test. */
function socketPath(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bw-rx-'));
  dirs.push(dir);
  return path.join(dir, 'log.sock');
}

describe('SyslogReceiver', () => {
  it('splits a TCP stream into newline and octet-counted frames, across chunk boundaries', async () => {
    receiver = await SyslogReceiver.create({ transport: 'tcp' });
    const got: string[] = [];
    receiver.onMessage((m) => got.push(m));
    const c = net.connect(receiver.port, '127.0.0.1');
    await new Promise((r) => c.once('connect', r));
    c.write('bwlog1 first\nbwlog1 sec');
    await new Promise((r) => setTimeout(r, 20));
    c.write('ond\n13 <134>bwlog1');
    await new Promise((r) => setTimeout(r, 20));
    c.write(' 3bwlog1 raw\n');
    await waitFor('frames', () => got.length === 4, { timeoutMs: 2000 });
    c.destroy();
    expect(got).toEqual(['bwlog1 first', 'bwlog1 second', 'bwlog1 3', 'bwlog1 raw']);
  });

  it('receives a stream on a Unix socket only its owner may open, and removes the socket on close', async () => {
    const sock = socketPath();
    receiver = await SyslogReceiver.create({ transport: 'unix', path: sock });
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    const got: string[] = [];
    receiver.onMessage((m) => got.push(m));
    const c = net.connect(sock);
    await new Promise((r) => c.once('connect', r));
    c.write('11 bwlog1 unixbwlog1 newline\n');
    await waitFor('unix frames', () => got.length === 2, { timeoutMs: 2000 });
    c.destroy();
    expect(got).toEqual(['bwlog1 unix', 'bwlog1 newline']);
    expect(receiver.status()).toMatchObject({ transport: 'unix', path: sock, frames: 2 });
    await receiver.close();
    receiver = undefined;
    expect(() => statSync(sock)).toThrow(/ENOENT/);
  });

  it('replaces a stale socket left by a killed receiver, and refuses a live one or a file', async () => {
    const sock = socketPath();
    const other = net.createServer();
    await new Promise<void>((r) => other.listen(sock, r));
    await expect(SyslogReceiver.create({ transport: 'unix', path: sock })).rejects.toThrow(
      /is a socket another process listens on/,
    );
    await new Promise<void>((r) => other.close(() => r()));
    rmSync(sock, { force: true });
    // What SIGKILL leaves: a socket file nobody listens on (a process bound it and died).
    execFileSync('python3', [
      '-c',
      `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(sock)})`,
    ]);
    expect(statSync(sock).isSocket()).toBe(true);
    receiver = await SyslogReceiver.create({ transport: 'unix', path: sock });
    const got: string[] = [];
    receiver.onMessage((m) => got.push(m));
    const c = net.connect(sock);
    await new Promise((r) => c.once('connect', r));
    c.write('bwlog1 after stale\n');
    await waitFor('frame after stale socket', () => got.length === 1, { timeoutMs: 2000 });
    c.destroy();
    await receiver.close();
    receiver = undefined;
    writeFileSync(sock, 'not a socket');
    await expect(SyslogReceiver.create({ transport: 'unix', path: sock })).rejects.toThrow(
      /exists and is not a socket: remove it or choose another work directory/,
    );
  });

  it('refuses a unix transport without a usable path, and a path with another transport', async () => {
    await expect(SyslogReceiver.create({ transport: 'unix' })).rejects.toThrow(
      /path is required with transport unix/,
    );
    await expect(SyslogReceiver.create({ transport: 'unix', path: 'rel.sock' })).rejects.toThrow(
      /path must be an absolute path/,
    );
    await expect(SyslogReceiver.create({ transport: 'tcp', path: '/tmp/x.sock' })).rejects.toThrow(
      /path is only used with transport unix, not tcp/,
    );
  });

  it('receives UDP datagrams', async () => {
    receiver = await SyslogReceiver.create({ transport: 'udp' });
    const got: string[] = [];
    receiver.onMessage((m) => got.push(m));
    const s = dgram.createSocket('udp4');
    s.send('<134>Nov 23 09:34:27 haproxy[7]: bwlog1 x\n', receiver.port, '127.0.0.1');
    await waitFor('datagram', () => got.length === 1, { timeoutMs: 2000 });
    s.close();
    expect(got[0]).toBe('bwlog1 x');
    expect(receiver.status()).toMatchObject({ transport: 'udp', frames: 1, unparsable: 0 });
  });

  it('delivers every octet-counted line of a large burst written in odd-sized pieces', async () => {
    receiver = await SyslogReceiver.create({ transport: 'tcp' });
    const got: string[] = [];
    receiver.onMessage((m) => got.push(m));
    const lines = Array.from({ length: 20_000 }, (_, i) => `bwlog1 line ${i} "q ${i}"`);
    const stream = lines.map((l) => `${l.length} ${l}`).join('');
    const c = net.connect(receiver.port, '127.0.0.1');
    await new Promise((r) => c.once('connect', r));
    // Piece sizes that cut through lengths, spaces and messages.
    for (let i = 0, k = 0; i < stream.length; k++) {
      const n = [1, 7, 133, 4096, 65_537][k % 5] ?? 1;
      c.write(stream.slice(i, i + n));
      i += n;
    }
    await waitFor('burst', () => got.length === lines.length, { timeoutMs: 10_000 });
    c.destroy();
    expect(got).toEqual(lines);
    expect(receiver.status()).toMatchObject({ frames: lines.length, unparsable: 0 });
  });

  it('batches reads without holding a line back longer than readBatchMs (plus scheduling)', async () => {
    receiver = await SyslogReceiver.create({ transport: 'tcp', readBatchMs: 20 });
    const arrivals: number[] = [];
    receiver.onMessage(() => arrivals.push(Date.now()));
    const c = net.connect(receiver.port, '127.0.0.1');
    await new Promise((r) => c.once('connect', r));
    const sent: number[] = [];
    for (let i = 0; i < 10; i++) {
      sent.push(Date.now());
      c.write(`bwlog1 ${i}\n`);
      await new Promise((r) => setTimeout(r, 7));
    }
    await waitFor('lines', () => arrivals.length === 10, { timeoutMs: 2000 });
    c.destroy();
    const delays = arrivals.map((t, i) => t - (sent[i] ?? 0));
    expect(Math.max(...delays)).toBeLessThan(200);
  });

  it('keeps octet-counted framing exact when a line carries UTF-8 or invalid bytes', async () => {
    receiver = await SyslogReceiver.create({ transport: 'tcp' });
    const got: string[] = [];
    receiver.onMessage((m) => got.push(m));
    const frame = (b: Buffer): Buffer => Buffer.concat([Buffer.from(`${b.length} `), b]);
    const utf8 = Buffer.from('bwlog1 caller "zürich-€"');
    const invalid = Buffer.concat([Buffer.from('bwlog1 bad "'), Buffer.from([0xe9, 0xff]), Buffer.from('"')]);
    const after = Buffer.from('bwlog1 after');
    const all = Buffer.concat([frame(utf8), frame(invalid), frame(after)]);
    const c = net.connect(receiver.port, '127.0.0.1');
    await new Promise((r) => c.once('connect', r));
    // Split inside the multi-byte '€' so decoding must not depend on read boundaries.
    const cut = all.indexOf(Buffer.from('€')) + 1;
    c.write(all.subarray(0, cut));
    await new Promise((r) => setTimeout(r, 30));
    c.write(all.subarray(cut));
    await waitFor('frames', () => got.length === 3, { timeoutMs: 2000 });
    c.destroy();
    expect(got[0]).toBe('bwlog1 caller "zürich-€"');
    expect(got[1]?.startsWith('bwlog1 bad "')).toBe(true);
    expect(got[2]).toBe('bwlog1 after');
  });

  it('rejects readBatchMs out of range', async () => {
    await expect(SyslogReceiver.create({ readBatchMs: -1 })).rejects.toThrow(
      /readBatchMs must be an integer 0..1000/,
    );
  });

  it('yields to the event loop between slices of a large read and still delivers every line in order', async () => {
    receiver = await SyslogReceiver.create({ transport: 'tcp', sliceMs: 0.05, readBatchMs: 1000 });
    const lines = Array.from({ length: 5000 }, (_, i) => `bwlog1 sliced ${i} "${'x'.repeat(i % 97)}"`);
    const got: string[] = [];
    // Each line records how many timer turns the event loop has run so far.
    let turns = 0;
    const tick = setInterval(() => turns++, 0);
    const turnAt: number[] = [];
    receiver.onMessage((m) => {
      got.push(m);
      turnAt.push(turns);
    });
    const c = net.connect(receiver.port, '127.0.0.1');
    await new Promise((r) => c.once('connect', r));
    c.write(lines.map((l) => `${l.length} ${l}`).join(''));
    await waitFor('sliced burst', () => got.length === lines.length, { timeoutMs: 10_000 });
    clearInterval(tick);
    c.destroy();
    expect(got).toEqual(lines);
    expect(receiver.status().slices).toBeGreaterThan(0);
    // Other work ran while the burst was parsed: the lines span several event-loop turns.
    expect((turnAt.at(-1) ?? 0) - (turnAt[0] ?? 0)).toBeGreaterThan(1);
  });

  it('processes a whole read at once with sliceMs 0', async () => {
    receiver = await SyslogReceiver.create({ transport: 'tcp', sliceMs: 0 });
    const got: string[] = [];
    receiver.onMessage((m) => got.push(m));
    const lines = Array.from({ length: 5000 }, (_, i) => `bwlog1 whole ${i}`);
    const c = net.connect(receiver.port, '127.0.0.1');
    await new Promise((r) => c.once('connect', r));
    c.write(lines.map((l) => `${l.length} ${l}`).join(''));
    await waitFor('burst', () => got.length === lines.length, { timeoutMs: 10_000 });
    c.destroy();
    expect(got).toEqual(lines);
    expect(receiver.status().slices).toBe(0);
  });

  it('rejects sliceMs out of range', async () => {
    await expect(SyslogReceiver.create({ sliceMs: -1 })).rejects.toThrow(
      /sliceMs must be a number of milliseconds 0..100/,
    );
    await expect(SyslogReceiver.create({ sliceMs: Number.NaN })).rejects.toThrow(/sliceMs/);
  });
});
