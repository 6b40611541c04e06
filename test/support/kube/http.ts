/**
 * Minimal Kubernetes REST client for tests: node:https with the cluster's CA
 * and bearer token (global fetch cannot take a per-request CA). Returns the
 * status and the parsed JSON body; never throws on HTTP errors, only on
 * transport failures and timeouts, so tests can assert on 404/409/410.
 */
import https from 'node:https';

export interface KubeTarget {
  server: string;
  token: string;
  caCertPem: string;
}

export interface KubeResponse<T = KubeObject> {
  status: number;
  body: T;
  text: string;
}

/** Loosely typed Kubernetes object: tests index into it and assert. */
export type KubeObject = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface KubeRequestOptions {
  method?: string;
  body?: unknown;
  /** @default 'application/json' ('application/apply-patch+yaml' for server-side apply, etc.) */
  contentType?: string;
  /** @default 10000 */
  timeoutMs?: number;
}

export async function kubeRequest<T = KubeObject>(
  target: KubeTarget,
  path: string,
  opts: KubeRequestOptions = {},
): Promise<KubeResponse<T>> {
  const url = new URL(path, target.server);
  const payload =
    opts.body === undefined
      ? undefined
      : typeof opts.body === 'string'
        ? opts.body
        : JSON.stringify(opts.body);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return await new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: opts.method ?? (payload === undefined ? 'GET' : 'POST'),
        ca: target.caCertPem,
        headers: {
          authorization: `Bearer ${target.token}`,
          accept: 'application/json',
          ...(payload === undefined
            ? {}
            : {
                'content-type': opts.contentType ?? 'application/json',
                'content-length': Buffer.byteLength(payload),
              }),
        },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // not JSON (e.g. /readyz answers "ok")
          }
          resolve({ status: res.statusCode ?? 0, body: body as T, text });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`${req.method} ${url.href} timed out after ${timeoutMs} ms`)),
    );
    req.on('error', reject);
    req.end(payload);
  });
}

export interface KubeWatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: KubeObject;
}

export interface KubeWatch {
  /** HTTP status of the watch response (200 even when the stream then reports a 410 ERROR event). */
  status: number;
  events: KubeWatchEvent[];
  /** Resolves with the first event matching `pred` (or rejects after `timeoutMs`). */
  next(pred: (e: KubeWatchEvent) => boolean, timeoutMs?: number): Promise<KubeWatchEvent>;
  close(): void;
}

/** Open a watch (`path` should carry `watch=1` and usually `resourceVersion=`); events are newline-delimited JSON. */
export async function kubeWatch(target: KubeTarget, path: string): Promise<KubeWatch> {
  const url = new URL(path, target.server);
  const events: KubeWatchEvent[] = [];
  const waiters = new Set<() => void>();
  return await new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        ca: target.caCertPem,
        headers: { authorization: `Bearer ${target.token}`, accept: 'application/json' },
      },
      (res) => {
        let buf = '';
        res.on('data', (c: Buffer) => {
          buf += c.toString();
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line) events.push(JSON.parse(line) as KubeWatchEvent);
          }
          for (const w of waiters) w();
        });
        res.on('error', () => undefined);
        resolve({
          status: res.statusCode ?? 0,
          events,
          next: (pred, timeoutMs = 10_000) =>
            new Promise((res2, rej2) => {
              const check = (): void => {
                const hit = events.find(pred);
                if (hit) {
                  waiters.delete(check);
                  clearTimeout(timer);
                  res2(hit);
                }
              };
              const timer = setTimeout(() => {
                waiters.delete(check);
                rej2(
                  new Error(
                    `watch ${url.pathname}: no matching event within ${timeoutMs} ms; got ${events.length}`,
                  ),
                );
              }, timeoutMs);
              waiters.add(check);
              check();
            }),
          close: () => req.destroy(),
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}
