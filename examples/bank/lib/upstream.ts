/**
 * Calls to other bank services go THROUGH THE SITE GATEWAY, never straight to
 * an instance: base URL `BULWARK_GATEWAY_URL`, the target named by the Host
 * header `<workload>.<app>.<project>`, the caller named by `X-Bulwark-Caller`,
 * and the trace continued by `traceparent`. Timeouts are per call so a slow
 * dependency cannot hold a request forever.
 */
import http from 'node:http';
import { traceparentOf, type TraceContext } from './trace.ts';
import { HttpError, type Reply } from './http.ts';

export interface UpstreamOptions {
  /** Host header of the target, e.g. `api.ledger.bank`. */
  service: string;
  /** This service's name for `X-Bulwark-Caller`. */
  caller: string;
  /** Site gateway, e.g. `http://10.213.0.1:8080`. */
  gatewayUrl: string;
  /** @default 2000 */
  timeoutMs?: number;
}

export interface UpstreamReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

/** A failed call (no answer): `status` is what the caller should answer with (502 or 504). */
export class UpstreamError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

// One keep-alive pool per process: the gateway is the only peer.
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

export class Upstream {
  readonly #opts: Required<UpstreamOptions>;
  readonly #base: URL;

  constructor(opts: UpstreamOptions) {
    this.#opts = { timeoutMs: 2000, ...opts };
    this.#base = new URL(opts.gatewayUrl);
  }

  async call(
    method: string,
    path: string,
    o: { trace?: TraceContext; body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<UpstreamReply> {
    const timeoutMs = o.timeoutMs ?? this.#opts.timeoutMs;
    const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
    const headers: Record<string, string> = {
      host: this.#opts.service,
      'x-bulwark-caller': this.#opts.caller,
      accept: 'application/json',
      ...(o.trace ? { traceparent: traceparentOf(o.trace) } : {}),
      ...(payload !== undefined
        ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }
        : {}),
      ...o.headers,
    };
    const what = `${method} ${this.#opts.service}${path}`;
    return await new Promise<UpstreamReply>((resolve, reject) => {
      const req = http.request(
        {
          protocol: this.#base.protocol,
          hostname: this.#base.hostname,
          port: this.#base.port,
          method,
          path,
          headers,
          agent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (e) => reject(new UpstreamError(502, `${what}: ${e.message}`)));
          res.on('end', () => {
            clearTimeout(timer);
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown = text;
            try {
              body = text ? JSON.parse(text) : undefined;
            } catch {
              // not JSON (e.g. a gateway error page): keep the text
            }
            resolve({ status: res.statusCode ?? 502, headers: res.headers, body });
          });
        },
      );
      const timer = setTimeout(() => {
        req.destroy();
        reject(new UpstreamError(504, `${what}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(new UpstreamError(502, `${what}: ${e.message}`));
      });
      req.end(payload);
    });
  }
}

/**
 * Build the upstream for `<envVar>` (e.g. `LEDGER_SERVICE=api.ledger.bank`),
 * failing at start-up with the variable's name when the gateway is unknown.
 */
export function upstreamFromEnv(envVar: string, fallbackService: string, env = process.env): Upstream {
  const gatewayUrl = env.BULWARK_GATEWAY_URL;
  if (!gatewayUrl) {
    throw new Error(
      'BULWARK_GATEWAY_URL is not set: services call each other through the site gateway, e.g. http://10.213.0.1:8080',
    );
  }
  return new Upstream({
    service: env[envVar] || fallbackService,
    caller: env.BULWARK_SERVICE || 'unknown',
    gatewayUrl,
    ...(env.BANK_UPSTREAM_TIMEOUT_MS ? { timeoutMs: Number(env.BANK_UPSTREAM_TIMEOUT_MS) } : {}),
  });
}

/** Turn a failed call into the status the caller should see (502/504). */
export async function guarded(fn: () => Promise<Reply>): Promise<Reply> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof UpstreamError) throw new HttpError(err.status, err.message);
    throw err;
  }
}
