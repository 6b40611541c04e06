/**
 * Shared parts of the isolation benchmark: the load generator, fault
 * injection into one instance, the isolation detector (HAProxy's own view of
 * the server, read from the stats socket) and the statistics. Bulwark and the
 * baselines go through exactly this code, so only detection differs.
 */
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { RuntimeApi } from '../../src/dataplane/haproxy/runtime-api.ts';
import { sleep } from '../../src/util/time.ts';

export const FAULTS = ['crash', 'hang', '5xx', 'slow', 'leak'] as const;
export type Fault = (typeof FAULTS)[number];

/** Latency the `slow` fault adds to every request (the demo's `delayMs`). */
export const SLOW_DELAY_MS = 500;
/** A request not answered within this is a client-visible error (the client gave up). */
export const CLIENT_TIMEOUT_MS = 2000;

/** Wall-clock milliseconds with sub-millisecond resolution, comparable with ISO times from other processes. */
export const now = (): number => performance.timeOrigin + performance.now();

/** One instance as the fault injector needs it. */
export interface Target {
  pid: number;
  /** Base URL of the instance itself (admin endpoint), not of the gateway. */
  url: string;
}

/** Inject `fault` into the instance; resolves with the injection time (the fault is in effect from then on). */
export async function inject(t: Target, fault: Fault): Promise<number> {
  switch (fault) {
    case 'crash':
      process.kill(t.pid, 'SIGKILL');
      return now();
    case 'hang':
      process.kill(t.pid, 'SIGSTOP');
      return now();
    case '5xx':
      return await setFault(t, { mode: 'error' });
    case 'slow':
      return await setFault(t, { mode: 'slow', delayMs: SLOW_DELAY_MS });
    case 'leak':
      return await setFault(t, { mode: 'leak' });
  }
}

/** POST /admin/fault; resolves when the instance acknowledged (the fault applies from then on). */
export async function setFault(t: Target, body: Record<string, unknown>): Promise<number> {
  const res = await fetch(`${t.url}/admin/fault`, {
    method: 'POST',
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(3000),
  });
  const text = await res.text();
  if (res.status !== 200) {
    throw new Error(`POST ${t.url}/admin/fault ${JSON.stringify(body)} answered ${res.status}: ${text}`);
  }
  return now();
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** GET /healthz on the instance answers 200 within 500 ms. */
export async function healthy(url: string): Promise<boolean> {
  const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(500) }).catch(() => undefined);
  await r?.text().catch(() => undefined);
  return r?.status === 200;
}

// ---------------------------------------------------------------- isolation detector

/** A server takes new requests only when its check/observe state is UP and it is neither in maint nor drained. */
export interface ServerView {
  up: boolean;
  /** e.g. `op=2 admin=ready` for messages. */
  detail: string;
}

/**
 * HAProxy 2.6 `srv_admin` bits that take a server out of traffic: SRV_ADMF_MAINT (0x23 = forced,
 * inherited, DNS maint) and SRV_ADMF_DRAIN (0x18). 0x04 (CMAINT, "was `disabled` in the config")
 * and 0x40 (HMAINT, FQDN set from the CLI) are markers only: a dynamic server added `disabled`
 * and enabled later keeps 0x04 while it takes traffic.
 */
const ADMIN_MAINT = 0x23;
const ADMIN_DRAIN = 0x18;

export class ServerWatcher {
  readonly api: RuntimeApi;
  readonly backend: string;

  constructor(socketPath: string, backend: string) {
    this.api = new RuntimeApi({ socketPath, timeoutMs: 3000 });
    this.backend = backend;
  }

  async servers(): Promise<Map<string, ServerView>> {
    const rows = await this.api.showServersState(this.backend);
    const out = new Map<string, ServerView>();
    for (const r of rows) {
      const admin = r.adminState & ADMIN_MAINT ? 'maint' : r.adminState & ADMIN_DRAIN ? 'drain' : 'ready';
      out.set(r.server, {
        up: r.opState === 2 && admin === 'ready' && r.userWeight > 0,
        detail: `op=${r.opState} admin=${admin} weight=${r.userWeight}`,
      });
    }
    return out;
  }

  /**
   * Poll every `intervalMs` until `server` is out of traffic (not UP) or `deadline`;
   * resolves with the time of the first answer that showed it out, or undefined.
   * A server that disappeared from the backend counts as out.
   */
  async waitOut(server: string, deadline: number, intervalMs = 10): Promise<number | undefined> {
    while (now() < deadline) {
      const s = (await this.servers()).get(server);
      if (!s?.up) return now();
      await sleep(intervalMs);
    }
    return undefined;
  }

  /** Names of the servers that are UP now. */
  async upServers(): Promise<string[]> {
    return [...(await this.servers())].filter(([, v]) => v.up).map(([k]) => k);
  }
}

// ---------------------------------------------------------------- load generator

export interface LoadOptions {
  /** Gateway base URL, e.g. http://127.0.0.1:8080. */
  url: string;
  /** Host header that routes to the service (fetch() would drop it, hence node:http). */
  host: string;
  rps: number;
  /** Share of requests that are POSTs with an Idempotency-Key. @default 0.2 */
  postShare?: number;
  /** @default CLIENT_TIMEOUT_MS */
  timeoutMs?: number;
  /** @default 1000 */
  maxInFlight?: number;
  /**
   * What to send, for workloads other than the demo ledger (third-party servers in
   * bench/chaos). @default GET /balances/acc-N and, postShare of the time, POST /entries
   */
  request?: () => LoadRequest;
}

export interface LoadRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

/** Result codes below 0 are failures without an HTTP answer. */
export const CODE_TIMEOUT = -1;
export const CODE_NET = -2;
export const CODE_DROPPED = -3;

/**
 * Open-loop load at a fixed rate (requests are sent on schedule whatever the
 * latency, so a stuck server cannot slow the client down and hide errors):
 * GET /balances/acc-N and POST /entries with a fresh Idempotency-Key, against
 * the demo ledger. Every request is recorded (start, duration, status).
 */
export class LoadGenerator {
  readonly opts: Required<LoadOptions>;
  readonly starts: number[] = [];
  readonly durations: number[] = [];
  readonly codes: number[] = [];
  readonly #agent: http.Agent;
  readonly #base: URL;
  #timer: NodeJS.Timeout | undefined;
  #inFlight = 0;
  #pending = new Set<Promise<void>>();

  constructor(opts: LoadOptions) {
    this.opts = {
      postShare: 0.2,
      timeoutMs: CLIENT_TIMEOUT_MS,
      maxInFlight: 1000,
      request: () => this.#ledgerRequest(),
      ...opts,
    };
    this.#base = new URL(opts.url);
    this.#agent = new http.Agent({ keepAlive: true, maxSockets: this.opts.maxInFlight });
  }

  start(): void {
    if (this.#timer) return;
    const tickMs = 5;
    let credit = 0;
    let last = now();
    this.#timer = setInterval(() => {
      const t = now();
      credit += ((t - last) * this.opts.rps) / 1000;
      last = t;
      // After a stall of the event loop, do not burst more than 100 ms worth of requests.
      credit = Math.min(credit, this.opts.rps / 10);
      while (credit >= 1) {
        credit -= 1;
        this.#send();
      }
    }, tickMs);
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.allSettled([...this.#pending]);
    this.#agent.destroy();
  }

  /** Requests started in [from, to) and how many of them failed as a client sees it (not 2xx). */
  count(from: number, to: number): { requests: number; errors: number; p99Ms: number } {
    let requests = 0;
    let errors = 0;
    const lat: number[] = [];
    for (let i = 0; i < this.starts.length; i++) {
      const s = this.starts[i] as number;
      if (s < from || s >= to) continue;
      requests++;
      const c = this.codes[i] as number;
      if (c < 200 || c >= 300) errors++;
      lat.push(this.durations[i] as number);
    }
    return { requests, errors, p99Ms: percentile(lat, 99) };
  }

  /** Non-2xx results by code among requests started in [from, to), for logs. */
  codesBetween(from: number, to: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (let i = 0; i < this.starts.length; i++) {
      const s = this.starts[i] as number;
      const c = this.codes[i] as number;
      if (s < from || s >= to || (c >= 200 && c < 300)) continue;
      const k =
        c === CODE_TIMEOUT ? 'timeout' : c === CODE_NET ? 'net' : c === CODE_DROPPED ? 'dropped' : String(c);
      out[k] = (out[k] ?? 0) + 1;
    }
    return out;
  }

  /** Failures by code over the whole run, for the log. */
  byCode(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const c of this.codes) {
      const k = c === CODE_TIMEOUT ? 'timeout' : c === CODE_NET ? 'net' : c === CODE_DROPPED ? 'dropped' : c;
      out[k] = (out[k] ?? 0) + 1;
    }
    return out;
  }

  #ledgerRequest(): LoadRequest {
    const account = `acc-${1 + Math.floor(Math.random() * 100)}`;
    if (Math.random() >= this.opts.postShare) return { method: 'GET', path: `/balances/${account}` };
    const key = randomUUID();
    // Credits only (positive amounts), so the ledger never refuses one for insufficient funds;
    // the entry id is the key, so a replay by HAProxy is a no-op.
    return {
      method: 'POST',
      path: '/entries',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ entries: [{ id: key, account, amountCents: 1, paymentId: key }] }),
    };
  }

  #record(start: number, code: number): void {
    this.starts.push(start);
    this.durations.push(now() - start);
    this.codes.push(code);
  }

  #send(): void {
    const start = now();
    if (this.#inFlight >= this.opts.maxInFlight) {
      this.#record(start, CODE_DROPPED);
      return;
    }
    const plan = this.opts.request();
    const body = plan.body;
    const headers: Record<string, string> = { host: this.opts.host, ...plan.headers };
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    this.#inFlight++;
    const p = new Promise<void>((resolve) => {
      let done = false;
      const finish = (code: number): void => {
        if (done) return;
        done = true;
        this.#inFlight--;
        this.#record(start, code);
        resolve();
      };
      const req = http.request(
        {
          protocol: this.#base.protocol,
          hostname: this.#base.hostname,
          port: this.#base.port,
          method: plan.method,
          path: plan.path,
          headers,
          agent: this.#agent,
        },
        (res) => {
          res.resume();
          res.on('end', () => finish(res.statusCode ?? 0));
          res.on('error', () => finish(CODE_NET));
        },
      );
      req.setTimeout(this.opts.timeoutMs, () => {
        finish(CODE_TIMEOUT);
        req.destroy();
      });
      req.on('error', () => finish(CODE_NET));
      req.end(body);
    });
    this.#pending.add(p);
    void p.then(() => this.#pending.delete(p));
  }
}

// ---------------------------------------------------------------- statistics

/** Nearest-rank percentile; Infinity entries (not isolated) sort last. NaN for no samples. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

/** One fault injection and what the system did about it. */
export interface Injection {
  system: string;
  fault: Fault;
  server: string;
  injectedAt: number;
  /** Injection to out-of-traffic in HAProxy; undefined = not within the window. */
  isolateMs?: number;
  windowMs: number;
  /** Bulwark only: detection to replacement ready, from the incident. */
  replacementReadyMs?: number;
  /** Bulwark only: the incident's signature, or why there was none. */
  note?: string;
  /** End of the error-accounting window: isolation + settle time, or the window's end. */
  windowEndAt: number;
  /** Requests started during [injection, window end) and the client-visible errors among them
   * (filled by `account` once the run is over, so requests still in flight at the window end count). */
  requests: number;
  errors: number;
  p99LatencyMs: number;
}

/** Fill the request counts of each injection from the load generator's records. */
export function account(injections: Injection[], load: LoadGenerator): void {
  for (const i of injections) {
    const c = load.count(i.injectedAt, i.windowEndAt);
    i.requests = c.requests;
    i.errors = c.errors;
    i.p99LatencyMs = c.p99Ms;
  }
}

export function describe(i: Injection): string {
  const iso =
    i.isolateMs === undefined ? `not isolated in ${i.windowMs} ms` : `isolated ${i.isolateMs.toFixed(0)} ms`;
  const rep =
    i.replacementReadyMs === undefined ? '' : `, replacement ready +${i.replacementReadyMs.toFixed(0)} ms`;
  return `${i.system} ${i.fault} on ${i.server}: ${iso}${rep}, ${i.errors}/${i.requests} errors, p99 ${i.p99LatencyMs.toFixed(0)} ms${i.note ? ` (${i.note})` : ''}`;
}
