/**
 * End to end on real processes: the four services on loopback free ports,
 * calling each other through a tiny Host-routing proxy that stands in for the
 * site gateway (and records what callers send it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/util/ports.ts';
import { waitFor } from '../../src/util/time.ts';
import { parseManifests } from '../../src/model/validate.ts';
import type { AppResource } from '../../src/model/types.ts';
import { runLoad } from './load.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../..');
const SERVICES = ['gateway', 'accounts', 'payments', 'ledger'] as const;
type Svc = (typeof SERVICES)[number];

interface Started {
  child: ChildProcess;
  port: number;
  stderr: () => string;
  exited: Promise<number | null>;
}

const children: ChildProcess[] = [];
let dataDir = '';
let proxy: http.Server;
let proxyPort = 0;
const ports = {} as Record<Svc, number>;
const seenByProxy: { host: string; caller: string; traceparent: string; path: string }[] = [];

async function startSvc(svc: Svc, extraEnv: Record<string, string> = {}): Promise<Started> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(here, `${svc}.ts`)], {
    cwd: repoRoot,
    env: {
      PATH: process.env.PATH ?? '',
      PORT: String(port),
      HOST: '127.0.0.1',
      BULWARK_GATEWAY_URL: `http://127.0.0.1:${proxyPort}`,
      BULWARK_SERVICE: svc,
      ACCOUNTS_SERVICE: 'api.accounts.bank',
      PAYMENTS_SERVICE: 'api.payments.bank',
      LEDGER_SERVICE: 'api.ledger.bank',
      BANK_DATA_DIR: dataDir,
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  child.stdout!.resume();
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, port, stderr: () => err, exited };
}

/** Answers are JSON of several shapes; tests read the fields they check. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyJson = any;

async function request(
  port: number,
  method: string,
  p: string,
  o: { body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<{ status: number; body: AnyJson; headers: http.IncomingHttpHeaders; ms: number }> {
  const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
  const started = performance.now();
  return await new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: p,
        agent: false,
        timeout: o.timeoutMs ?? 5000,
        headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...o.headers },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => {
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // keep text
          }
          resolve({
            status: res.statusCode ?? 0,
            body,
            headers: res.headers,
            ms: performance.now() - started,
          });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(payload);
  });
}

async function ready(port: number): Promise<void> {
  await waitFor(
    `service on :${port} ready`,
    async () => (await request(port, 'GET', '/healthz', { timeoutMs: 500 })).status === 200,
    {
      timeoutMs: 15_000,
    },
  );
}

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'bank-test-'));
  // The site gateway stand-in: route by Host `api.<app>.bank` to that service's port.
  proxy = http.createServer((req, res) => {
    const host = req.headers.host ?? '';
    const app = /^api\.([a-z]+)\.bank$/.exec(host)?.[1] as Svc | undefined;
    seenByProxy.push({
      host,
      caller: String(req.headers['x-bulwark-caller'] ?? ''),
      traceparent: String(req.headers.traceparent ?? ''),
      path: req.url ?? '',
    });
    const port = app ? ports[app] : undefined;
    if (!port) {
      res.writeHead(503).end('no such service');
      return;
    }
    const up = http.request(
      { host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => res.writeHead(502).end('upstream error'));
    req.pipe(up);
  });
  proxyPort = await freePort();
  await new Promise<void>((r) => proxy.listen(proxyPort, '127.0.0.1', r));
  for (const svc of SERVICES) {
    const s = await startSvc(svc);
    ports[svc] = s.port;
  }
  for (const svc of SERVICES) await ready(ports[svc]);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await new Promise<void>((r) => proxy?.close(() => r()));
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const balance = async (id: string): Promise<number> =>
  (await request(ports.gateway, 'GET', `/api/accounts/${id}`)).body.balanceCents as number;

describe('bank end to end', () => {
  it('moves money from one account to another through gateway, accounts, payments and ledger', async () => {
    const [a, b] = [await balance('acc-1'), await balance('acc-2')];
    const r = await request(ports.gateway, 'POST', '/api/payments', {
      body: { from: 'acc-1', to: 'acc-2', amountCents: 250 },
      headers: {
        'idempotency-key': 'k-e2e-1',
        traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      },
    });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ from: 'acc-1', to: 'acc-2', amountCents: 250, status: 'completed' });
    expect(await balance('acc-1')).toBe(a - 250);
    expect(await balance('acc-2')).toBe(b + 250);
  });

  it('calls every hop through the gateway by service name, naming the caller and continuing the trace', () => {
    const hops = seenByProxy.filter((s) => s.traceparent.includes('4bf92f3577b34da6a3ce929d0e0e4736'));
    expect(hops.map((h) => `${h.caller} -> ${h.host}`)).toEqual([
      'gateway -> api.accounts.bank',
      'accounts -> api.payments.bank',
      'payments -> api.ledger.bank',
    ]);
    // Each hop has its own span id.
    expect(new Set(hops.map((h) => h.traceparent)).size).toBe(3);
  });

  it('never charges twice for the same Idempotency-Key and rejects reusing it for another payment', async () => {
    const send = (amountCents: number) =>
      request(ports.gateway, 'POST', '/api/payments', {
        body: { from: 'acc-3', to: 'acc-4', amountCents },
        headers: { 'idempotency-key': 'k-idem-1' },
      });
    const before = await balance('acc-3');
    const results = await Promise.all([send(100), send(100), send(100)]);
    // Concurrent duplicates: one does the work, the others replay or are told to retry.
    expect(results.filter((r) => r.status === 201).length).toBeGreaterThanOrEqual(1);
    expect(results.every((r) => r.status === 201 || r.status === 409)).toBe(true);
    const again = await send(100);
    expect(again.status).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body.id).toBe(results.find((r) => r.status === 201)!.body.id);
    expect(await balance('acc-3')).toBe(before - 100);
    const other = await send(999);
    expect(other.status).toBe(422);
    expect(await balance('acc-3')).toBe(before - 100);
  });

  it('answers 400 naming the header when Idempotency-Key is missing, 422 on insufficient funds', async () => {
    const r = await request(ports.gateway, 'POST', '/api/payments', {
      body: { from: 'acc-5', to: 'acc-6', amountCents: 1 },
    });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatch(/Idempotency-Key header is required/);
    const broke = await request(ports.gateway, 'POST', '/api/payments', {
      body: { from: 'acc-5', to: 'acc-6', amountCents: 10_000_000 },
      headers: { 'idempotency-key': 'k-broke' },
    });
    expect(broke.status).toBe(422);
    expect(broke.body.error).toBe('insufficient funds on acc-5');
  });

  it('answers 404 for an unknown account', async () => {
    expect((await request(ports.gateway, 'GET', '/api/accounts/nobody')).status).toBe(404);
  });

  it('runLoad drives the system without errors and reports latency percentiles', async () => {
    const r = await runLoad({
      url: `http://127.0.0.1:${ports.gateway}`,
      rps: 60,
      durationS: 1.5,
      accounts: 50,
    });
    expect(r.sent).toBeGreaterThanOrEqual(80);
    expect(r.errors).toBe(0);
    expect(r.ok).toBe(r.sent);
    expect(r.payments).toBeGreaterThan(0);
    expect(r.p50Ms).toBeGreaterThan(0);
    expect(r.p99Ms).toBeGreaterThanOrEqual(r.p50Ms);
  });
});

describe('fault injection', () => {
  // Each mode gets its own ledger process (it needs no upstream), so faults do not leak between tests.
  const fresh = async (env: Record<string, string> = {}): Promise<Started> => {
    const s = await startSvc('ledger', env);
    if (!env.BANK_FAULT) await ready(s.port);
    return s;
  };
  const setFault = (port: number, body: unknown) => request(port, 'POST', '/admin/fault', { body });

  it('error answers 500 to everything but /admin, and none restores service', async () => {
    const s = await fresh();
    expect((await setFault(s.port, { mode: 'error' })).status).toBe(200);
    expect((await request(s.port, 'GET', '/healthz')).status).toBe(500);
    expect((await request(s.port, 'GET', '/balances/acc-1')).status).toBe(500);
    expect((await request(s.port, 'GET', '/admin/fault')).body).toMatchObject({ mode: 'error', rate: 1 });
    await setFault(s.port, { mode: 'none' });
    expect((await request(s.port, 'GET', '/balances/acc-1')).status).toBe(200);
    s.child.kill('SIGKILL');
  });

  it('slow adds delayMs of latency', async () => {
    const s = await fresh();
    await setFault(s.port, { mode: 'slow', delayMs: 300 });
    const r = await request(s.port, 'GET', '/livez');
    expect(r.status).toBe(200);
    expect(r.ms).toBeGreaterThanOrEqual(290);
    s.child.kill('SIGKILL');
  });

  it('crash makes the process exit with code 1, also when set through BANK_FAULT', async () => {
    const s = await fresh();
    await setFault(s.port, { mode: 'crash' });
    expect(await s.exited).toBe(1);
    const e = await fresh({ BANK_FAULT: 'crash' });
    expect(await e.exited).toBe(1);
  });

  it('hang keeps the process alive but unresponsive', async () => {
    const s = await fresh();
    await setFault(s.port, { mode: 'hang' });
    await new Promise((r) => setTimeout(r, 100));
    await expect(request(s.port, 'GET', '/livez', { timeoutMs: 500 })).rejects.toThrow('timeout');
    expect(s.child.exitCode).toBeNull();
    s.child.kill('SIGKILL');
    await s.exited;
  });

  it('oom-log prints a Java OutOfMemoryError with a stack trace and keeps answering', async () => {
    const s = await fresh();
    await setFault(s.port, { mode: 'oom-log' });
    await waitFor('OOM line on stderr', () =>
      s.stderr().includes('java.lang.OutOfMemoryError: Java heap space'),
    );
    expect(s.stderr()).toMatch(
      /OutOfMemoryError: Java heap space\n\tat java\.base\/java\.util\.Arrays\.copyOf/,
    );
    expect((await request(s.port, 'GET', '/healthz')).status).toBe(200);
    s.child.kill('SIGKILL');
  });

  const rssMiB = (s: Started): number =>
    Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${s.child.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

  it('a fast leak (mibPerSecond 100) grows resident memory by about 10 MiB per 100 ms', async () => {
    const s = await fresh();
    const before = rssMiB(s);
    await setFault(s.port, { mode: 'leak', mibPerSecond: 100 });
    await new Promise((r) => setTimeout(r, 800));
    expect(rssMiB(s) - before).toBeGreaterThan(40);
    const st = (await request(s.port, 'GET', '/admin/fault')).body;
    expect(st).toMatchObject({ mode: 'leak', mibPerSecond: 100 });
    expect(st.leakedBytes).toBeGreaterThan(40 * 1024 * 1024);
    s.child.kill('SIGKILL');
  });

  it('leaks 20 MiB/s by default, measured in resident memory over 1 s', async () => {
    const s = await fresh();
    await setFault(s.port, { mode: 'leak' });
    // Measure from a first leaked chunk on, so start-up of the timer does not count.
    await new Promise((r) => setTimeout(r, 250));
    const [rss0, t0] = [rssMiB(s), performance.now()];
    await new Promise((r) => setTimeout(r, 1000));
    const rate = (rssMiB(s) - rss0) / ((performance.now() - t0) / 1000);
    expect(rate).toBeGreaterThan(10);
    expect(rate).toBeLessThan(35);
    expect((await request(s.port, 'GET', '/admin/fault')).body.mibPerSecond).toBe(20);
    s.child.kill('SIGKILL');
  });

  it('takes the leak rate from BANK_FAULT_LEAK_MIB_PER_S and refuses a bad one naming it', async () => {
    const s = await fresh({ BANK_FAULT: 'leak', BANK_FAULT_LEAK_MIB_PER_S: '5' });
    await ready(s.port);
    expect((await request(s.port, 'GET', '/admin/fault')).body).toMatchObject({
      mode: 'leak',
      mibPerSecond: 5,
    });
    s.child.kill('SIGKILL');
    const bad = await fresh({ BANK_FAULT: 'leak', BANK_FAULT_LEAK_MIB_PER_S: 'fast' });
    expect(await bad.exited).not.toBe(0);
    expect(bad.stderr()).toContain('BANK_FAULT_LEAK_MIB_PER_S must be a number > 0 and <= 1000');
  });

  it('rejects a leak rate out of range with the allowed range', async () => {
    const s = await fresh();
    for (const mibPerSecond of [0, 1001, '20']) {
      const r = await setFault(s.port, { mode: 'leak', mibPerSecond });
      expect(r.status).toBe(400);
      expect(r.body.error).toBe(
        `mibPerSecond must be a number > 0 and <= 1000 (MiB leaked per second; 20 is a realistic leak, 100 a fast one) (got ${JSON.stringify(mibPerSecond)})`,
      );
    }
    expect((await request(s.port, 'GET', '/admin/fault')).body.mode).toBe('none');
    s.child.kill('SIGKILL');
  });

  it('exits 0 on SIGTERM once in-flight requests are done', async () => {
    const s = await fresh();
    await setFault(s.port, { mode: 'slow', delayMs: 400 });
    const inFlight = request(s.port, 'GET', '/balances/acc-1');
    await new Promise((r) => setTimeout(r, 100));
    s.child.kill('SIGTERM');
    expect((await inFlight).status).toBe(200);
    expect(await s.exited).toBe(0);
  });

  it('rejects an unknown mode with the list of modes', async () => {
    const s = await fresh();
    const r = await setFault(s.port, { mode: 'explode' });
    expect(r.status).toBe(400);
    expect(r.body.error).toBe('mode must be one of none, crash, hang, error, slow, leak, oom-log');
    s.child.kill('SIGKILL');
  });
});

describe('bank.yaml', () => {
  it('validates and runs each service with node from the repository root', () => {
    const resources = parseManifests(readFileSync(path.join(here, 'bank.yaml'), 'utf8'), 'bank.yaml');
    expect(resources.map((r) => `${r.kind}/${r.metadata.name}`)).toEqual([
      'Project/bank',
      'App/gateway',
      'App/accounts',
      'App/payments',
      'App/ledger',
    ]);
    for (const app of resources.filter((r): r is AppResource => r.kind === 'App')) {
      const w = app.spec.workloads[0]!;
      expect(w.run?.command).toEqual(['node', `examples/bank/${app.metadata.name}.ts`]);
      expect(readFileSync(path.join(repoRoot, w.run!.command[1]!), 'utf8')).toContain('runMain');
    }
  });
});
