/**
 * Load generator for the bank: an open-loop mix of balance reads and
 * payments (each with a fresh Idempotency-Key, a few replayed on purpose).
 *
 *   node examples/bank/load.ts --url http://127.0.0.1:8080 --rps 200 --duration 10 [--host api.gateway.bank]
 *       [--payments 0.3] [--replays 0.05] [--accounts 1000] [--timeout-ms 2000]
 *
 * Prints a line per second and a summary, then a final JSON line (`runLoad`'s result).
 * Only ever point it at addresses on this machine.
 */
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';

export interface LoadOptions {
  /** Base URL of the edge (the bank gateway or the site gateway). */
  url: string;
  /** Requests per second (open loop: sent on schedule, whatever the latency). */
  rps: number;
  durationS: number;
  /** Host header, e.g. `api.gateway.bank` when going through the site gateway. */
  host?: string;
  /** Share of requests that are payments. @default 0.3 */
  paymentShare?: number;
  /** Share of payments that resend an earlier Idempotency-Key. @default 0.05 */
  replayShare?: number;
  /** Accounts acc-1..acc-N to use. @default 100 */
  accounts?: number;
  /** @default 2000 */
  timeoutMs?: number;
  /** Requests in flight at most; beyond it a request counts as `dropped`. @default 512 */
  maxInFlight?: number;
  /** Called once a second with the running totals. */
  onProgress?: (r: LoadResult) => void;
}

export interface LoadResult {
  sent: number;
  ok: number;
  errors: number;
  dropped: number;
  byStatus: Record<string, number>;
  payments: number;
  replays: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  durationS: number;
  achievedRps: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

const round = (n: number): number => Math.round(n * 100) / 100;

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  if (!(opts.rps > 0)) throw new Error('rps must be > 0');
  if (!(opts.durationS > 0)) throw new Error('duration must be > 0 seconds');
  const base = new URL(opts.url);
  const paymentShare = opts.paymentShare ?? 0.3;
  const replayShare = opts.replayShare ?? 0.05;
  const accounts = opts.accounts ?? 100;
  const timeoutMs = opts.timeoutMs ?? 2000;
  const maxInFlight = opts.maxInFlight ?? 512;
  const agent = new http.Agent({ keepAlive: true, maxSockets: maxInFlight });
  const latencies: number[] = [];
  const byStatus: Record<string, number> = {};
  const recentKeys: { key: string; body: string }[] = [];
  let sent = 0;
  let ok = 0;
  let errors = 0;
  let dropped = 0;
  let payments = 0;
  let replays = 0;
  let inFlight = 0;
  const account = (): string => `acc-${1 + Math.floor(Math.random() * accounts)}`;
  const count = (k: string): void => void (byStatus[k] = (byStatus[k] ?? 0) + 1);

  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const headers: Record<string, string> = opts.host ? { host: opts.host } : {};
      let method = 'GET';
      let path = `/api/accounts/${account()}`;
      let body: string | undefined;
      if (Math.random() < paymentShare) {
        method = 'POST';
        path = '/api/payments';
        payments++;
        const prev =
          recentKeys.length > 0 && Math.random() < replayShare
            ? recentKeys[Math.floor(Math.random() * recentKeys.length)]
            : undefined;
        if (prev) replays++;
        const from = account();
        let to = account();
        while (to === from && accounts > 1) to = account();
        const entry = prev ?? {
          key: randomUUID(),
          body: JSON.stringify({ from, to, amountCents: 1 + Math.floor(Math.random() * 100) }),
        };
        if (!prev) {
          recentKeys.push(entry);
          if (recentKeys.length > 1000) recentKeys.shift();
        }
        body = entry.body;
        headers['idempotency-key'] = entry.key;
        headers['content-type'] = 'application/json';
        headers['content-length'] = String(Buffer.byteLength(body));
      }
      const started = performance.now();
      let done = false;
      const finish = (status: string): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        inFlight--;
        latencies.push(performance.now() - started);
        count(status);
        if (status.startsWith('2')) ok++;
        else errors++;
        resolve();
      };
      const req = http.request(
        { protocol: base.protocol, hostname: base.hostname, port: base.port, method, path, headers, agent },
        (res) => {
          res.resume();
          res.on('end', () => finish(String(res.statusCode)));
          res.on('error', () => finish('error'));
        },
      );
      const timer = setTimeout(() => {
        req.destroy();
        finish('timeout');
      }, timeoutMs);
      req.on('error', () => finish('error'));
      req.end(body);
    });

  const started = performance.now();
  const endAt = started + opts.durationS * 1000;
  const pending = new Set<Promise<void>>();
  let nextReport = started + 1000;
  const snapshot = (): LoadResult => {
    const sorted = [...latencies].sort((a, b) => a - b);
    const durationS = (performance.now() - started) / 1000;
    return {
      sent,
      ok,
      errors,
      dropped,
      byStatus: { ...byStatus },
      payments,
      replays,
      p50Ms: round(percentile(sorted, 50)),
      p99Ms: round(percentile(sorted, 99)),
      maxMs: round(sorted.at(-1) ?? 0),
      durationS: round(durationS),
      achievedRps: round(ok / Math.max(durationS, 0.001)),
    };
  };
  // Bounded by duration: a 5 ms tick sends whatever is due by the schedule.
  for (let now = performance.now(); now < endAt; now = performance.now()) {
    const due = Math.floor(((now - started) / 1000) * opts.rps) - sent - dropped;
    for (let i = 0; i < due; i++) {
      if (inFlight >= maxInFlight) {
        dropped++;
        continue;
      }
      sent++;
      inFlight++;
      const p = one();
      pending.add(p);
      void p.then(() => pending.delete(p));
    }
    if (now >= nextReport) {
      opts.onProgress?.(snapshot());
      nextReport += 1000;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(pending);
  agent.destroy();
  return snapshot();
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      rps: { type: 'string', default: '100' },
      duration: { type: 'string', default: '10' },
      host: { type: 'string' },
      payments: { type: 'string' },
      replays: { type: 'string' },
      accounts: { type: 'string' },
      'timeout-ms': { type: 'string' },
    },
  });
  if (!values.url) {
    console.error(
      'usage: node examples/bank/load.ts --url http://127.0.0.1:PORT --rps 200 --duration 10 [--host api.gateway.bank]',
    );
    process.exit(2);
  }
  const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
  const r = await runLoad({
    url: values.url,
    rps: Number(values.rps),
    durationS: Number(values.duration),
    ...(values.host ? { host: values.host } : {}),
    ...(values.payments ? { paymentShare: num(values.payments)! } : {}),
    ...(values.replays ? { replayShare: num(values.replays)! } : {}),
    ...(values.accounts ? { accounts: num(values.accounts)! } : {}),
    ...(values['timeout-ms'] ? { timeoutMs: num(values['timeout-ms'])! } : {}),
    onProgress: (p) =>
      console.log(
        `t=${p.durationS.toFixed(0)}s sent=${p.sent} ok=${p.ok} errors=${p.errors} p50=${p.p50Ms}ms p99=${p.p99Ms}ms`,
      ),
  });
  console.log(
    `done: ok=${r.ok} errors=${r.errors} dropped=${r.dropped} p50=${r.p50Ms}ms p99=${r.p99Ms}ms rps=${r.achievedRps} statuses=${JSON.stringify(r.byStatus)}`,
  );
  console.log(JSON.stringify(r));
}
