/**
 * A tiny HTTP service frame shared by the bank services: routing with `:params`,
 * JSON in and out, `/healthz` (readiness) and `/livez`, `/admin/fault`, fault
 * injection on every other route, trace context, and a graceful SIGTERM
 * (readiness fails first, then in-flight requests finish).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { FaultInjector, faultFromEnv, parseFaultSettings } from './fault.ts';
import { continueTrace, type TraceContext } from './trace.ts';

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface RequestContext {
  req: http.IncomingMessage;
  url: URL;
  params: Record<string, string>;
  trace: TraceContext;
  /** Parsed JSON body; throws HttpError(400) on malformed JSON. */
  json(): Promise<unknown>;
}

export type Handler = (ctx: RequestContext) => Promise<Reply> | Reply;

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path with `:name` segments, e.g. `/accounts/:id`. */
  path: string;
  handler: Handler;
}

/** Throw from a handler to answer with this status and `{ error }`. */
export class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export interface ServiceOptions {
  /** Service name, used in logs and the `X-Bulwark-Caller` header of its calls. */
  name: string;
  routes: Route[];
  /** @default Number(process.env.PORT) or 8080 */
  port?: number;
  /** @default process.env.HOST or '0.0.0.0' */
  host?: string;
  /** Largest accepted request body. @default 1 MiB */
  maxBodyBytes?: number;
  /** Longest wait for in-flight requests after SIGTERM. @default 5000 */
  drainMs?: number;
}

export interface RunningService {
  port: number;
  faults: FaultInjector;
  close(): Promise<void>;
}

const json = (res: http.ServerResponse, r: Reply): void => {
  const body = r.body === undefined ? '' : JSON.stringify(r.body);
  res.writeHead(r.status, {
    ...(body ? { 'content-type': 'application/json' } : {}),
    'content-length': Buffer.byteLength(body),
    ...r.headers,
  });
  res.end(body);
};

function compile(path: string): (p: string) => Record<string, string> | undefined {
  const names: string[] = [];
  const re = new RegExp(
    `^${path.replace(/:([A-Za-z]+)/g, (_, n: string) => {
      names.push(n);
      return '([^/]+)';
    })}$`,
  );
  return (p) => {
    const m = re.exec(p);
    if (!m) return undefined;
    return Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(m[i + 1] ?? '')]));
  };
}

async function readBody(req: http.IncomingMessage, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > maxBytes) throw new HttpError(413, `request body larger than ${maxBytes} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function startService(opts: ServiceOptions): Promise<RunningService> {
  const maxBodyBytes = opts.maxBodyBytes ?? 1024 * 1024;
  const drainMs = opts.drainMs ?? 5000;
  const faults = new FaultInjector();
  const routes = opts.routes.map((r) => ({ ...r, match: compile(r.path) }));
  let draining = false;
  const log = process.env.BANK_LOG === '1';

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const started = performance.now();
    const url = new URL(req.url ?? '/', 'http://localhost');
    const trace = continueTrace(req.headers.traceparent);
    let reply: Reply;
    try {
      reply = await dispatch(req, url, trace);
    } catch (err) {
      reply =
        err instanceof HttpError
          ? { status: err.status, body: { error: err.message } }
          : { status: 500, body: { error: `internal error: ${(err as Error).message}` } };
    }
    json(res, reply);
    if (log) {
      const ms = (performance.now() - started).toFixed(1);
      console.log(
        JSON.stringify({
          svc: opts.name,
          method: req.method,
          path: url.pathname,
          status: reply.status,
          ms,
          trace: trace.traceId,
        }),
      );
    }
  };

  const dispatch = async (req: http.IncomingMessage, url: URL, trace: TraceContext): Promise<Reply> => {
    if (url.pathname === '/admin/fault') {
      if (req.method === 'GET') return { status: 200, body: faults.status() };
      if (req.method !== 'POST') throw new HttpError(405, 'use GET or POST');
      let body: unknown;
      try {
        body = JSON.parse(await readBody(req, maxBodyBytes));
      } catch {
        throw new HttpError(400, 'body must be JSON like {"mode":"slow","delayMs":500}');
      }
      const s = parseFaultSettings(body);
      if (typeof s === 'string') throw new HttpError(400, s);
      faults.set(s);
      return { status: 200, body: faults.status() };
    }
    const fault = faults.forRequest();
    if (fault?.kind === 'error') return { status: 500, body: { error: 'injected fault: error' } };
    if (fault?.kind === 'slow') await sleep(fault.delayMs);
    if (url.pathname === '/livez') return { status: 200, body: { status: 'alive' } };
    if (url.pathname === '/healthz') {
      return draining
        ? { status: 503, body: { status: 'draining' } }
        : { status: 200, body: { status: 'ready' } };
    }
    for (const r of routes) {
      const params = r.match(url.pathname);
      if (!params) continue;
      if (r.method !== req.method) continue;
      let parsed: unknown;
      return await r.handler({
        req,
        url,
        params,
        trace,
        json: async () => {
          if (parsed !== undefined) return parsed;
          const text = await readBody(req, maxBodyBytes);
          try {
            parsed = text === '' ? {} : JSON.parse(text);
          } catch {
            throw new HttpError(400, 'request body must be JSON');
          }
          return parsed;
        },
      });
    }
    return routes.some((r) => r.match(url.pathname))
      ? { status: 405, body: { error: `method ${req.method} not allowed on ${url.pathname}` } }
      : { status: 404, body: { error: `no route for ${req.method} ${url.pathname}` } };
  };

  const server = http.createServer((req, res) => void handle(req, res));
  server.keepAliveTimeout = 65_000; // longer than the gateway's idle timeout, so it closes first
  const port = opts.port ?? Number(process.env.PORT ?? 8080);
  const host = opts.host ?? process.env.HOST ?? '0.0.0.0';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });

  const close = async (): Promise<void> => {
    draining = true;
    faults.stop();
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.closeIdleConnections();
    await Promise.race([closed, sleep(drainMs)]);
    server.closeAllConnections();
  };

  const envFault = faultFromEnv(process.env);
  if (typeof envFault === 'string') throw new Error(`BANK_FAULT: ${envFault}`);
  if (envFault) faults.set(envFault);

  return { port: (server.address() as AddressInfo).port, faults, close };
}

/** Entry-point helper: start, log the address, drain on SIGTERM/SIGINT. */
export async function runMain(opts: ServiceOptions): Promise<void> {
  const svc = await startService(opts);
  console.log(`${opts.name} listening on :${svc.port}`);
  const stop = (sig: string): void => {
    console.log(`${opts.name}: ${sig}, draining`);
    void svc.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
