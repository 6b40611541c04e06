/**
 * Fetch wrapper for /api/v1: adds the bearer token, turns every non-2xx
 * answer into an ApiFailure carrying the API's error shape (code, message,
 * details with path / line / fix), and tells the app when the token is
 * refused so it can ask to sign in again.
 */
import type { ErrorDetail } from './types.ts';

const TOKEN_KEY = 'bulwark.token';

export class ApiFailure extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: ErrorDetail[];
  constructor(status: number, code: string, message: string, details: ErrorDetail[] = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
  /** The control plane did not answer at all (restarting, network). */
  get unreachable(): boolean {
    return this.status === 0;
  }
}

type Listener = () => void;
const unauthorizedListeners = new Set<Listener>();

export function onUnauthorized(l: Listener): () => void {
  unauthorizedListeners.add(l);
  return () => unauthorizedListeners.delete(l);
}

// sessionStorage: the token dies with the tab, is not sent anywhere by the
// browser on its own (unlike a cookie) and is not shared with other tabs.
export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}
export function setToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  /** Send `body` as YAML text instead of JSON. */
  yaml?: boolean;
  signal?: AbortSignal;
  /** Use this token instead of the stored one (sign-in check). */
  token?: string;
}

async function send(path: string, opts: RequestOptions): Promise<Response> {
  const token = opts.token ?? getToken();
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    headers['content-type'] = opts.yaml ? 'application/yaml' : 'application/json';
    body = opts.yaml ? String(opts.body) : JSON.stringify(opts.body);
  }
  let res: Response;
  try {
    res = await fetch(path, {
      method: opts.method ?? 'GET',
      headers,
      ...(body !== undefined ? { body } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiFailure(0, 'Unreachable', 'the control plane did not answer');
  }
  if (!res.ok) {
    let parsed: { error?: { code?: string; message?: string; details?: ErrorDetail[] } } = {};
    try {
      parsed = (await res.json()) as typeof parsed;
    } catch {
      // A proxy's HTML error page: keep the status.
    }
    const e = parsed.error ?? {};
    if (res.status === 401 && opts.token === undefined) unauthorizedListeners.forEach((l) => l());
    throw new ApiFailure(
      res.status,
      e.code ?? `HTTP${res.status}`,
      e.message ?? res.statusText,
      e.details ?? [],
    );
  }
  return res;
}

export async function api<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const res = await send(path, opts);
  const text = await res.text();
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    // A 200 that is not JSON: a proxy's page, or a console and a server that do not match.
    throw new ApiFailure(
      res.status,
      'BadResponse',
      `${path} answered ${res.status} with a body that is not JSON`,
    );
  }
}

/** Download an authenticated binary (evidence bundle) as a file. */
export async function download(path: string, filename: string): Promise<void> {
  const res = await send(path, {});
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
