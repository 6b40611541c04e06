/**
 * Syslog receiver on loopback for HAProxy's logs, over TCP (default) or UDP.
 *
 * TCP is fed by HAProxy's ring forwarder: many lines per read, newline or
 * RFC 6587 octet-counting framed. UDP gets one datagram per line; Node pays a
 * callback and a buffer per datagram (measured ~16 us per line), which on a
 * 2-core machine competes with HAProxy itself, hence TCP by default.
 *
 * Reads are batched: after a small read the socket stops reading for
 * `readBatchMs`, so the kernel collects the lines of that interval and the
 * next read takes them all at once. Without this the forwarder's small writes
 * were read ~10 lines at a time and the per-read cost (syscall, stream
 * machinery, a 'data' event) was as large as parsing the lines.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { parseSyslogFrame } from './log-parser.ts';

export interface SyslogReceiverOptions {
  /** @default '127.0.0.1' */
  host?: string;
  /** 0 = pick a free port. @default 0 */
  port?: number;
  /** @default 'tcp' */
  transport?: 'tcp' | 'udp';
  /** Kernel receive buffer for UDP. @default 4 MiB */
  recvBufferBytes?: number;
  /** Longest accepted frame; longer input closes the connection. @default 65536 */
  maxFrameBytes?: number;
  /**
   * TCP: after a read smaller than `batchReadBytes`, wait this long before
   * reading again. Bounds the delay a line can get from batching; 0 reads
   * as soon as data arrives. @default 10
   */
  readBatchMs?: number;
}

const HIGH_BYTE = /[\x80-\xff]/;

/**
 * 25 ms, not 10: measured with bench/dataplane/receiver.ts at 25k lines/s,
 * 4.0 -> 3.3 µs of receiver CPU per line (fewer reads, pauses and resumes),
 * for a delivery delay of p50 25 / p99 50 ms, inside isolation's ~100 ms. On a
 * machine where the receiver shares a core with the instances that CPU is
 * their throughput (bench/dataplane, pinned layout).
 */
export const DEFAULT_READ_BATCH_MS = 25;

/** A read at least this large means lines are queued: keep reading without a pause. */
const BATCH_READ_BYTES = 32 * 1024;

export interface SyslogReceiverStatus {
  host: string;
  port: number;
  transport: 'tcp' | 'udp';
  frames: number;
  unparsable: number;
  connections: number;
}

export class SyslogReceiver {
  readonly host: string;
  readonly transport: 'tcp' | 'udp';
  private udp: dgram.Socket | undefined;
  private tcp: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly listeners = new Set<(message: string) => void>();
  private readonly maxFrameBytes: number;
  private readonly readBatchMs: number;
  private frames = 0;
  private unparsable = 0;
  private boundPort = 0;
  /** The TCP data being drained has bytes >= 0x80 (some line needs UTF-8 decoding). */
  private highBytes = false;

  constructor(
    host: string,
    transport: 'tcp' | 'udp',
    maxFrameBytes: number,
    readBatchMs = DEFAULT_READ_BATCH_MS,
  ) {
    this.host = host;
    this.transport = transport;
    this.maxFrameBytes = maxFrameBytes;
    if (!Number.isInteger(readBatchMs) || readBatchMs < 0 || readBatchMs > 1000)
      throw new Error(`readBatchMs must be an integer 0..1000, got ${readBatchMs}`);
    this.readBatchMs = readBatchMs;
  }

  static async create(opts: SyslogReceiverOptions = {}): Promise<SyslogReceiver> {
    const host = opts.host ?? '127.0.0.1';
    const r = new SyslogReceiver(
      host,
      opts.transport ?? 'tcp',
      opts.maxFrameBytes ?? 65536,
      opts.readBatchMs ?? DEFAULT_READ_BATCH_MS,
    );
    if (r.transport === 'udp') {
      const socket = dgram.createSocket({
        type: host.includes(':') ? 'udp6' : 'udp4',
        recvBufferSize: opts.recvBufferBytes ?? 4 << 20,
      });
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(opts.port ?? 0, host, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      r.udp = socket;
      r.boundPort = socket.address().port;
      socket.on('message', (buf) => r.onText(buf.toString('utf8')));
    } else {
      // highWaterMark 1: a paused socket stops reading from the kernel after
      // one more read instead of buffering up to 64 KiB in Node (see readBatchMs).
      const server = net.createServer({ highWaterMark: 1 }, (s) => r.onConnection(s));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port ?? 0, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      r.tcp = server;
      r.boundPort = (server.address() as net.AddressInfo).port;
    }
    return r;
  }

  get port(): number {
    return this.boundPort;
  }

  status(): SyslogReceiverStatus {
    return {
      host: this.host,
      port: this.boundPort,
      transport: this.transport,
      frames: this.frames,
      unparsable: this.unparsable,
      connections: this.sockets.size,
    };
  }

  /** Each message (syslog header, if any, removed), in arrival order. */
  onMessage(listener: (message: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private onConnection(socket: net.Socket): void {
    this.sockets.add(socket);
    let timer: NodeJS.Timeout | undefined;
    socket.on('close', () => {
      this.sockets.delete(socket);
      clearTimeout(timer);
    });
    socket.on('error', () => socket.destroy());
    let pending = '';
    // latin1: one char per byte, so RFC 6587 octet counts index the string
    // exactly even when a header value carries UTF-8 or invalid bytes (with
    // utf8 decoding such a line shifted every later frame of the stream).
    // Lines with high bytes are decoded as UTF-8 again in onText.
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      const buf = pending.length === 0 ? chunk : pending + chunk;
      this.highBytes = HIGH_BYTE.test(buf);
      pending = this.drain(buf);
      if (pending.length > this.maxFrameBytes) {
        this.unparsable++;
        socket.destroy();
        return;
      }
      if (this.readBatchMs > 0 && chunk.length < BATCH_READ_BYTES && timer === undefined) {
        socket.pause();
        timer = setTimeout(() => {
          timer = undefined;
          socket.resume();
        }, this.readBatchMs);
      }
    });
  }

  /** Emit every complete frame in `buf` (latin1: one char per byte); return the incomplete rest. */
  private drain(buf: string): string {
    let pos = 0;
    while (pos < buf.length) {
      const c = buf.charCodeAt(pos);
      if (c >= 48 && c <= 57) {
        // Octet counting: `<len> <frame>`; the length is read in place (no slice, no Number()).
        let sp = pos;
        let len = 0;
        while (sp < buf.length) {
          const d = buf.charCodeAt(sp);
          if (d < 48 || d > 57) break;
          len = len * 10 + (d - 48);
          sp++;
        }
        if (sp >= buf.length) break;
        if (buf.charCodeAt(sp) !== 32 || len <= 0 || len > this.maxFrameBytes) {
          // Not a length after all: a raw line starting with a digit.
          const nl = buf.indexOf('\n', pos);
          if (nl < 0) break;
          this.onText(buf.slice(pos, nl));
          pos = nl + 1;
          continue;
        }
        if (buf.length < sp + 1 + len) break;
        this.onText(buf.slice(sp + 1, sp + 1 + len));
        pos = sp + 1 + len;
      } else {
        const nl = buf.indexOf('\n', pos);
        if (nl < 0) break;
        if (nl > pos) this.onText(buf.slice(pos, nl));
        pos = nl + 1;
      }
    }
    return buf.slice(pos);
  }

  private onText(text: string): void {
    this.frames++;
    if (text.length === 0) {
      this.unparsable++;
      return;
    }
    let message = text;
    if (this.highBytes && HIGH_BYTE.test(text)) message = Buffer.from(text, 'latin1').toString('utf8');
    // `format raw` (what Bulwark renders) has no header: skip the syslog parser.
    if (message.charCodeAt(0) === 60) {
      const frame = parseSyslogFrame(message);
      if (!frame) {
        this.unparsable++;
        return;
      }
      message = frame.message;
    }
    for (const l of this.listeners) l(message);
  }

  async close(): Promise<void> {
    if (this.udp) await new Promise<void>((r) => this.udp?.close(() => r()));
    if (this.tcp) {
      for (const s of this.sockets) s.destroy();
      await new Promise<void>((r) => this.tcp?.close(() => r()));
    }
  }
}
