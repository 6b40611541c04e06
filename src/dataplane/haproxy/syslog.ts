/**
 * Syslog receiver for HAProxy's logs, on a Unix stream socket (what
 * HaproxyDataPlane uses by default), loopback TCP (the default here, which
 * needs no path) or UDP.
 *
 * The stream transports are fed by HAProxy's ring forwarder: many lines per
 * read, newline or RFC 6587 octet-counting framed. UDP gets one datagram per line; Node pays a
 * callback and a buffer per datagram (measured ~16 us per line), which on a
 * 2-core machine competes with HAProxy itself, hence a stream by default.
 *
 * Reads are batched: after a small read the socket stops reading for
 * `readBatchMs`, so the kernel collects the lines of that interval and the
 * next read takes them all at once. Without this the forwarder's small writes
 * were read ~10 lines at a time and the per-read cost (syscall, stream
 * machinery, a 'data' event) was as large as parsing the lines.
 *
 * A batch is then processed in slices of `sliceMs` of CPU with a timer
 * between them, so the process sleeps and the kernel runs whatever shares its
 * core: one 25 ms batch at 34k lines/s is ~2.5 ms of parsing, and run in one
 * go it stalls the app instances on that core for as long, which is what put
 * the gateway's p99 above a plain HAProxy's (bench/dataplane, pinned layout).
 * Slicing stops when one read has taken `readBatchMs` of wall time, or a
 * run of back-to-back reads SLICE_BATCH_LIMIT times that: past that the
 * receiver is behind and drains at full speed (slicing never caps throughput).
 */
import dgram from 'node:dgram';
import { chmodSync, lstatSync, rmSync } from 'node:fs';
import net from 'node:net';
import { parseSyslogFrame } from './log-parser.ts';
import { assertUnixSocketPath } from './unix-socket-path.ts';

export type SyslogTransport = 'tcp' | 'udp' | 'unix';

export interface SyslogReceiverOptions {
  /** tcp/udp. @default '127.0.0.1' */
  host?: string;
  /** tcp/udp: 0 = pick a free port. @default 0 */
  port?: number;
  /** @default 'tcp' */
  transport?: SyslogTransport;
  /**
   * unix: the socket's absolute path (created mode 0600, replaced when a
   * stale socket of a previous run is there, removed on close).
   */
  path?: string;
  /** Kernel receive buffer for UDP. @default 4 MiB */
  recvBufferBytes?: number;
  /** Longest accepted frame; longer input closes the connection. @default 65536 */
  maxFrameBytes?: number;
  /**
   * TCP/unix: after a read smaller than `batchReadBytes`, wait this long before
   * reading again. Bounds the delay a line can get from batching; 0 reads
   * as soon as data arrives. @default DEFAULT_READ_BATCH_MS
   */
  readBatchMs?: number;
  /**
   * TCP/unix: longest run of line processing before yielding the CPU (a 1 ms
   * timer); 0 processes a whole read at once. @default DEFAULT_SLICE_MS
   */
  sliceMs?: number;
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

/**
 * 0.1 ms: well under the p99 of a request through the gateway (~1-2 ms on
 * this 2-core machine). Measured in one bench/dataplane run against 0.25 ms
 * (both as targets of the same rounds, receiver on the gateway's core):
 * 0.1 ms gave the gateway ~6 % more throughput (4 of 5 rounds) at a similar
 * p99; the receiver bench put its hold p99 at 0.63 ms (0.25 ms: 1.09) for
 * ~0.2 µs more CPU per line and a record delay p99 of 56 ms (48).
 */
export const DEFAULT_SLICE_MS = 0.1;

/**
 * Slicing stops for the rest of a batch once the batch has run this many
 * readBatchMs without a small read: the receiver is behind, not just busy.
 * Measured at 34k lines/s (bench/dataplane): a batch of large reads lasts
 * ~20-30 ms while sliced, so a limit of 1 (tried) turned slicing off
 * in most batches and the p99 stalls came back; 8 leaves such batches sliced
 * and still bounds how far behind a flood can push the receiver.
 */
const SLICE_BATCH_LIMIT = 8;

/** Lines between clock reads while slicing (a clock read is ~50 ns, a line ~3 µs). */
const SLICE_CHECK_LINES = 16;

/** A read at least this large means lines are queued: keep reading without a pause. */
const BATCH_READ_BYTES = 32 * 1024;

export interface SyslogReceiverStatus {
  host: string;
  port: number;
  transport: SyslogTransport;
  /** unix: the socket path. */
  path?: string;
  frames: number;
  unparsable: number;
  connections: number;
  /** Times line processing yielded the CPU mid-read (see sliceMs). */
  slices: number;
}

export class SyslogReceiver {
  readonly host: string;
  readonly transport: SyslogTransport;
  /** unix: the socket path, else undefined. */
  readonly path: string | undefined;
  private udp: dgram.Socket | undefined;
  private tcp: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private readonly listeners = new Set<(message: string) => void>();
  private readonly maxFrameBytes: number;
  private readonly readBatchMs: number;
  private readonly sliceMs: number;
  private frames = 0;
  private slices = 0;
  private unparsable = 0;
  private boundPort = 0;
  /** The TCP data being drained (one connection's, set before each drain) has bytes >= 0x80. */
  private highBytes = false;

  constructor(
    host: string,
    transport: SyslogTransport,
    maxFrameBytes: number,
    readBatchMs = DEFAULT_READ_BATCH_MS,
    sliceMs = DEFAULT_SLICE_MS,
    socketPath?: string,
  ) {
    if (!['tcp', 'udp', 'unix'].includes(transport))
      throw new Error(`transport must be tcp, udp or unix, got '${String(transport)}'`);
    if (transport === 'unix') {
      if (socketPath === undefined) throw new Error('path is required with transport unix');
      assertUnixSocketPath('path', socketPath);
    } else if (socketPath !== undefined)
      throw new Error(`path is only used with transport unix, not ${transport}`);
    this.host = host;
    this.transport = transport;
    this.path = socketPath;
    this.maxFrameBytes = maxFrameBytes;
    if (!Number.isInteger(readBatchMs) || readBatchMs < 0 || readBatchMs > 1000)
      throw new Error(`readBatchMs must be an integer 0..1000, got ${readBatchMs}`);
    this.readBatchMs = readBatchMs;
    if (!Number.isFinite(sliceMs) || sliceMs < 0 || sliceMs > 100)
      throw new Error(`sliceMs must be a number of milliseconds 0..100 (0 = no slicing), got ${sliceMs}`);
    this.sliceMs = sliceMs;
  }

  static async create(opts: SyslogReceiverOptions = {}): Promise<SyslogReceiver> {
    const host = opts.host ?? '127.0.0.1';
    const r = new SyslogReceiver(
      host,
      opts.transport ?? 'tcp',
      opts.maxFrameBytes ?? 65536,
      opts.readBatchMs ?? DEFAULT_READ_BATCH_MS,
      opts.sliceMs ?? DEFAULT_SLICE_MS,
      opts.path,
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
      if (r.path !== undefined) await removeStaleSocket(r.path);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        const listening = (): void => {
          server.off('error', reject);
          resolve();
        };
        if (r.path !== undefined) server.listen(r.path, listening);
        else server.listen(opts.port ?? 0, host, listening);
      });
      r.tcp = server;
      if (r.path !== undefined) {
        // Only this process (and HAProxy, run as the same user) may feed records
        // that isolation and the access logs act on; a TCP port is open to any local user.
        chmodSync(r.path, 0o600);
      } else r.boundPort = (server.address() as net.AddressInfo).port;
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
      ...(this.path !== undefined ? { path: this.path } : {}),
      frames: this.frames,
      unparsable: this.unparsable,
      connections: this.sockets.size,
      slices: this.slices,
    };
  }

  /** Each message (syslog header, if any, removed), in arrival order. */
  onMessage(listener: (message: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private onConnection(socket: net.Socket): void {
    this.sockets.add(socket);
    /** The pause after a small read (readBatchMs), or the gap between slices of one read. */
    let timer: NodeJS.Timeout | undefined;
    /** Unprocessed input: an incomplete frame, or the rest of a read being sliced. */
    let pending = '';
    let slicing = false;
    let readAt = 0;
    let smallRead = false;
    /**
     * When the current batch began: its first read after a batching pause.
     * Large reads (lines queued in the kernel) continue the batch, so a
     * receiver that stays behind stops slicing and catches up.
     */
    let batchStart = -1;
    socket.on('close', () => {
      this.sockets.delete(socket);
      clearTimeout(timer);
    });
    socket.on('error', () => socket.destroy());
    let highBytes = false;
    const work = (): void => {
      const now = performance.now();
      const yieldAfter =
        this.sliceMs > 0 &&
        now - readAt < this.readBatchMs &&
        now - batchStart < SLICE_BATCH_LIMIT * this.readBatchMs
          ? this.sliceMs
          : 0;
      this.highBytes = highBytes;
      const { rest, more } = this.drain(pending, yieldAfter);
      pending = rest;
      if (more) {
        // Yield the core; the socket stays paused until this read is processed.
        slicing = true;
        this.slices++;
        socket.pause();
        clearTimeout(timer);
        timer = setTimeout(() => {
          timer = undefined;
          work();
        }, 1);
        return;
      }
      slicing = false;
      if (pending.length > this.maxFrameBytes) {
        this.unparsable++;
        socket.destroy();
        return;
      }
      if (timer !== undefined) return; // a read that raced a batching pause: that pause still runs
      if (!smallRead) {
        socket.resume(); // lines are queued: the batch goes on
        return;
      }
      batchStart = -1;
      // The batching pause counts from the read, so slicing does not add to a line's delay.
      const wait = this.readBatchMs - (performance.now() - readAt);
      if (this.readBatchMs > 0 && wait >= 1) {
        socket.pause();
        timer = setTimeout(() => {
          timer = undefined;
          socket.resume();
        }, wait);
      } else socket.resume();
    };
    // latin1: one char per byte, so RFC 6587 octet counts index the string
    // exactly even when a header value carries UTF-8 or invalid bytes (with
    // utf8 decoding such a line shifted every later frame of the stream).
    // Lines with high bytes are decoded as UTF-8 again in onText.
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      pending = pending.length === 0 ? chunk : pending + chunk;
      if (slicing) {
        // A read that raced pause(): the running slices take it too.
        highBytes ||= HIGH_BYTE.test(chunk);
        return;
      }
      highBytes = HIGH_BYTE.test(pending);
      readAt = performance.now();
      if (batchStart < 0) batchStart = readAt;
      smallRead = chunk.length < BATCH_READ_BYTES;
      work();
    });
  }

  /**
   * Emit the complete frames in `buf` (latin1: one char per byte) and return
   * the rest; with `yieldAfterMs` > 0, stop after about that long of work
   * with `more` set if complete frames may remain.
   */
  private drain(buf: string, yieldAfterMs: number): { rest: string; more: boolean } {
    let pos = 0;
    const deadline = yieldAfterMs > 0 ? performance.now() + yieldAfterMs : Infinity;
    let n = 0;
    while (pos < buf.length) {
      if (++n % SLICE_CHECK_LINES === 0 && performance.now() >= deadline)
        return { rest: buf.slice(pos), more: true };
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
    return { rest: buf.slice(pos), more: false };
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
      if (this.path !== undefined) rmSync(this.path, { force: true });
    }
  }
}

/**
 * A socket file left by a receiver that was killed stops listen() with
 * EADDRINUSE, so it is removed; a socket someone still listens on, or
 * anything that is not a socket, is not ours to remove.
 */
async function removeStaleSocket(p: string): Promise<void> {
  let st;
  try {
    st = lstatSync(p);
  } catch {
    return; // nothing there
  }
  if (!st.isSocket())
    throw new Error(`path '${p}' exists and is not a socket: remove it or choose another work directory`);
  const live = await new Promise<boolean>((resolve) => {
    const c = net.connect(p);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (live)
    throw new Error(
      `path '${p}' is a socket another process listens on (a second receiver for this work directory?): stop it or choose another work directory`,
    );
  rmSync(p, { force: true });
}
