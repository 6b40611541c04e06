/**
 * A small typed Kubernetes API client on node:https: JSON requests, server-side
 * apply, streaming watches and text subresources (logs). The credentials come
 * from @kubernetes/client-node (credentials.ts: exec plugins, token files,
 * OIDC, in-cluster, proxies, tls-server-name), asked again for every request;
 * the transport stays here because Bulwark needs ten kinds and four verbs, a
 * watch is a line stream we parse ourselves, and every timeout and error
 * message is ours to choose. A 401 is retried once with freshly loaded
 * credentials (a rotated token file, an exec plugin's new token).
 */
import https from 'node:https';
import { KubeCredentials, type RequestAuth } from './credentials.ts';
import type { KubeConnection } from './kubeconfig.ts';
import type { KubeList, KubeObject, WatchEvent } from './types.ts';

export class KubeApiError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string, message: string) {
    super(message);
    this.name = 'KubeApiError';
    this.status = status;
    this.reason = reason;
  }
}

interface ResourceInfo {
  apiVersion: string;
  plural: string;
  namespaced: boolean;
}

/** The kinds the driver manages or reads. */
export const RESOURCES = {
  Namespace: { apiVersion: 'v1', plural: 'namespaces', namespaced: false },
  Pod: { apiVersion: 'v1', plural: 'pods', namespaced: true },
  Service: { apiVersion: 'v1', plural: 'services', namespaced: true },
  Node: { apiVersion: 'v1', plural: 'nodes', namespaced: false },
  Deployment: { apiVersion: 'apps/v1', plural: 'deployments', namespaced: true },
  StatefulSet: { apiVersion: 'apps/v1', plural: 'statefulsets', namespaced: true },
  ReplicaSet: { apiVersion: 'apps/v1', plural: 'replicasets', namespaced: true },
  Job: { apiVersion: 'batch/v1', plural: 'jobs', namespaced: true },
  PodDisruptionBudget: { apiVersion: 'policy/v1', plural: 'poddisruptionbudgets', namespaced: true },
  EndpointSlice: { apiVersion: 'discovery.k8s.io/v1', plural: 'endpointslices', namespaced: true },
  Event: { apiVersion: 'v1', plural: 'events', namespaced: true },
} satisfies Record<string, ResourceInfo>;
export type KindName = keyof typeof RESOURCES;

/** `/api/v1/namespaces/ns/pods/name` and friends; no namespace on a namespaced kind = all namespaces. */
export function resourcePath(kind: KindName, namespace?: string, name?: string): string {
  const r: ResourceInfo = RESOURCES[kind];
  const base = r.apiVersion.includes('/') ? `/apis/${r.apiVersion}` : `/api/${r.apiVersion}`;
  const ns = r.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${base}${ns}/${r.plural}${name ? `/${encodeURIComponent(name)}` : ''}`;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  /** @default 15000 */
  timeoutMs?: number;
}

export interface KubeClientOptions {
  /** Field manager for server-side apply. @default "bulwark" */
  fieldManager?: string;
  /** @default 15000 */
  requestTimeoutMs?: number;
}

function qs(query: RequestOptions['query']): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}

export class KubeClient {
  readonly server: string;
  readonly fieldManager: string;
  readonly credentials: KubeCredentials;
  private readonly timeoutMs: number;

  /** A KubeConnection is taken as static credentials; the client owns (and closes) them. */
  constructor(creds: KubeCredentials | KubeConnection, opts: KubeClientOptions = {}) {
    this.credentials =
      creds instanceof KubeCredentials ? creds : new KubeCredentials({ kind: 'static', connection: creds });
    this.server = this.credentials.server;
    this.fieldManager = opts.fieldManager ?? 'bulwark';
    this.timeoutMs = opts.requestTimeoutMs ?? 15_000;
  }

  /**
   * Run `once` with fresh credentials; a 401 drops the cached ones and tries once more (a
   * 401 is decided before the server acts, so even a PATCH is safe to repeat).
   */
  private async authed<T>(once: (auth: RequestAuth) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const auth = await this.credentials.forRequest();
      try {
        return await once(auth);
      } catch (err) {
        if (!(err instanceof KubeApiError) || err.status !== 401) throw err;
        this.credentials.invalidate(auth.generation);
        if (attempt > 0)
          throw new KubeApiError(
            401,
            err.reason,
            `${err.message} (credentials: ${this.credentials.describe}, ${this.credentials.auth}; revoked, expired or unknown to this cluster)`,
          );
      }
    }
  }

  private open(
    auth: RequestAuth,
    method: string,
    path: string,
    o: RequestOptions,
    onResponse: (res: import('node:http').IncomingMessage) => void,
    onError: (err: Error) => void,
  ): import('node:http').ClientRequest {
    const url = new URL(this.server + path + qs(o.query));
    const body = o.body === undefined ? undefined : JSON.stringify(o.body);
    const req = https.request(
      url,
      {
        method,
        agent: auth.agent,
        headers: {
          ...auth.headers,
          accept: 'application/json',
          ...(body !== undefined
            ? {
                'content-type': o.contentType ?? 'application/json',
                'content-length': Buffer.byteLength(body),
              }
            : {}),
        },
      },
      onResponse,
    );
    req.on('error', onError);
    if (body !== undefined) req.write(body);
    req.end();
    return req;
  }

  /** One request; resolves with the body (parsed JSON unless `raw`), rejects with KubeApiError on non-2xx. */
  request<T = unknown>(method: string, path: string, o: RequestOptions & { raw?: boolean } = {}): Promise<T> {
    return this.authed((auth) => this.requestOnce<T>(auth, method, path, o));
  }

  private requestOnce<T>(
    auth: RequestAuth,
    method: string,
    path: string,
    o: RequestOptions & { raw?: boolean },
  ): Promise<T> {
    const timeoutMs = o.timeoutMs ?? this.timeoutMs;
    return new Promise<T>((resolve, reject) => {
      const req = this.open(
        auth,
        method,
        path,
        o,
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('error', reject);
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              if (o.raw) return resolve(text as T);
              try {
                resolve((text ? JSON.parse(text) : undefined) as T);
              } catch {
                reject(new Error(`${method} ${path}: response is not JSON: ${text.slice(0, 200)}`));
              }
              return;
            }
            reject(toApiError(method, path, status, text));
          });
        },
        (err) => reject(new Error(`${method} ${this.server}${path}: ${err.message}`)),
      );
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    });
  }

  get<T extends KubeObject>(kind: KindName, namespace: string | undefined, name: string): Promise<T> {
    return this.request<T>('GET', resourcePath(kind, namespace, name));
  }

  /** GET that resolves undefined on 404. */
  async tryGet<T extends KubeObject>(
    kind: KindName,
    namespace: string | undefined,
    name: string,
  ): Promise<T | undefined> {
    try {
      return await this.get<T>(kind, namespace, name);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return undefined;
      throw err;
    }
  }

  list<T extends KubeObject>(
    kind: KindName,
    namespace?: string,
    query: RequestOptions['query'] = {},
  ): Promise<KubeList<T>> {
    return this.request<KubeList<T>>('GET', resourcePath(kind, namespace), { query });
  }

  /**
   * Server-side apply: the object states every field Bulwark owns; fields
   * others own (the ReplicaSet controller's pod labels, the scheduler's
   * nodeName) are left alone, and `force` takes over fields another manager
   * set, which is what a declarative controller wants.
   */
  apply<T extends KubeObject>(obj: T, opts: { force?: boolean } = {}): Promise<T> {
    const kind = obj.kind as KindName;
    if (!(kind in RESOURCES)) throw new Error(`apply: unsupported kind ${obj.kind}`);
    return this.request<T>('PATCH', resourcePath(kind, obj.metadata.namespace, obj.metadata.name), {
      body: obj,
      // A JSON document is valid YAML, so the apply-patch content type takes it as is.
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: this.fieldManager, force: opts.force ?? true },
    });
  }

  /** DELETE; resolves false if it was already gone. */
  async delete(
    kind: KindName,
    namespace: string | undefined,
    name: string,
    o: {
      propagationPolicy?: 'Background' | 'Foreground' | 'Orphan';
      gracePeriodSeconds?: number;
      preconditions?: { uid?: string };
    } = {},
  ): Promise<boolean> {
    try {
      await this.request('DELETE', resourcePath(kind, namespace, name), {
        body: {
          apiVersion: 'v1',
          kind: 'DeleteOptions',
          ...(o.propagationPolicy ? { propagationPolicy: o.propagationPolicy } : {}),
          ...(o.gracePeriodSeconds !== undefined ? { gracePeriodSeconds: o.gracePeriodSeconds } : {}),
          ...(o.preconditions ? { preconditions: o.preconditions } : {}),
        },
      });
      return true;
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return false;
      throw err;
    }
  }

  /**
   * Stream a watch: calls `onEvent` per event until the server ends the
   * stream (resolves), the signal aborts (resolves) or the request fails
   * (rejects; a 410 Gone rejects with status 410).
   */
  watch<T extends KubeObject>(
    kind: KindName,
    namespace: string | undefined,
    query: RequestOptions['query'],
    onEvent: (ev: WatchEvent<T>) => void,
    signal: AbortSignal,
  ): Promise<void> {
    // A silent half-open connection must not hang an informer forever: the server ends
    // the stream at timeoutSeconds, so no data for longer than that is a dead connection.
    const idleMs = Number(query?.timeoutSeconds ?? 300) * 1000 + 30_000;
    return this.streamLines(
      resourcePath(kind, namespace),
      { ...query, watch: 1 },
      (line) => onEvent(JSON.parse(line) as WatchEvent<T>),
      signal,
      idleMs,
    );
  }

  /**
   * GET a streaming response line by line (watches, `log?follow=true`). Resolves when the
   * server ends it or the signal aborts; rejects on failure or when `onLine` throws.
   */
  async streamLines(
    path: string,
    query: RequestOptions['query'],
    onLine: (line: string) => void,
    signal: AbortSignal,
    idleMs = 330_000,
  ): Promise<void> {
    // A 401 comes before the first line, so the retry in authed() delivers no line twice.
    await this.authed((auth) => this.streamOnce(auth, path, query, onLine, signal, idleMs));
  }

  private streamOnce(
    auth: RequestAuth,
    path: string,
    query: RequestOptions['query'],
    onLine: (line: string) => void,
    signal: AbortSignal,
    idleMs: number,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) return resolve();
      let settled = false;
      const done = (err?: Error): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', abort);
        if (err && !signal.aborted) reject(err);
        else resolve();
      };
      const req = this.open(
        auth,
        'GET',
        path,
        { query },
        (res) => {
          const status = res.statusCode ?? 0;
          res.setEncoding('utf8');
          if (status < 200 || status >= 300) {
            let text = '';
            res.on('data', (c: string) => (text += c));
            res.on('end', () => done(toApiError('GET', path, status, text)));
            return;
          }
          let buf = '';
          res.on('data', (c: string) => {
            buf += c;
            let nl: number;
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl).replace(/\r$/, '');
              buf = buf.slice(nl + 1);
              if (!line.trim()) continue;
              try {
                onLine(line);
              } catch (err) {
                done(err as Error);
                req.destroy();
                return;
              }
            }
          });
          res.on('end', () => {
            if (buf.trim()) {
              try {
                onLine(buf);
              } catch (err) {
                return done(err as Error);
              }
            }
            done();
          });
          res.on('error', (err) => done(err));
          res.on('aborted', () => done(new Error('stream aborted by the server')));
        },
        (err) => done(new Error(`GET ${this.server}${path}: ${err.message}`)),
      );
      req.setTimeout(idleMs, () => req.destroy(new Error(`stream idle for ${idleMs} ms`)));
      const abort = (): void => {
        req.destroy();
        done();
      };
      signal.addEventListener('abort', abort);
    });
  }

  /** Stop reusing connections (open watches are closed by their signals). */
  close(): void {
    this.credentials.close();
  }
}

function toApiError(method: string, path: string, status: number, text: string): KubeApiError {
  let reason = 'Unknown';
  let message = text.slice(0, 500);
  try {
    const st = JSON.parse(text) as { reason?: string; message?: string };
    reason = st.reason ?? reason;
    message = st.message ?? message;
  } catch {
    // not a Status object: keep the raw text
  }
  return new KubeApiError(status, reason, `${method} ${path}: ${status} ${reason}: ${message}`);
}
