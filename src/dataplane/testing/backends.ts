/**
 * Tiny real HTTP backends on loopback for data plane tests and benchmarks.
 * Each answers `<name> <method> <url>` and counts the requests it saw.
 */
import http from 'node:http';
import type net from 'node:net';

/**
 * `http-500`: answers 500 (a failing instance); `hang`: reads the request and
 * never answers (a deadlock); `reset-after-read`: crashes mid-request.
 */
export type BackendBehaviour = 'ok' | 'reset-after-read' | 'http-500' | 'hang';

export interface TestBackend {
  name: string;
  port: number;
  /** Requests fully read (including ones answered by a reset). */
  readonly hits: number;
  /** Headers of the last request. */
  readonly lastHeaders: http.IncomingHttpHeaders | undefined;
  behaviour: BackendBehaviour;
  /** Stop listening and cut every connection: the instance is gone (connection refused from now on). */
  kill(): Promise<void>;
  close(): Promise<void>;
}

export async function startBackend(name: string, behaviour: BackendBehaviour = 'ok'): Promise<TestBackend> {
  const sockets = new Set<net.Socket>();
  let hits = 0;
  let lastHeaders: http.IncomingHttpHeaders | undefined;
  const state = { behaviour };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      hits++;
      lastHeaders = req.headers;
      if (state.behaviour === 'reset-after-read') {
        // The request was delivered, then the instance dies before answering.
        req.socket.destroy();
        return;
      }
      if (state.behaviour === 'hang') return;
      if (state.behaviour === 'http-500') res.statusCode = 500;
      res.setHeader('content-type', 'text/plain');
      res.end(`${name} ${req.method} ${req.url}`);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return {
    name,
    port,
    get hits() {
      return hits;
    },
    get lastHeaders() {
      return lastHeaders;
    },
    get behaviour() {
      return state.behaviour;
    },
    set behaviour(b: BackendBehaviour) {
      state.behaviour = b;
    },
    kill: close,
    close,
  };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

/**
 * One request through the gateway (node:http, because fetch does not let a
 * caller set Host); never throws: status 0 and the error on network failure.
 */
export function request(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; body: string; error?: string }> {
  return new Promise((resolve) => {
    const req = http.request(
      url,
      { method: init.method ?? 'GET', headers: init.headers, agent, timeout: 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', (err) => resolve({ status: 0, body: '', error: err.message }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: 0, body: '', error: err.message }));
    req.end(init.body);
  });
}
