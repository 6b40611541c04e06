/**
 * OTLP export against a real OpenTelemetry Collector: a span per gateway
 * request reaches the collector, with the trace structure a tracing back end
 * needs (the gateway's own traces rooted at the gateway span, a caller's trace
 * continued), and the control plane's status counts what was exported. Runs
 * the demo's accounts -> ledger call through the gateway (root: network
 * namespaces, like the other end-to-end tests).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlaneProcess } from '../support/control-plane-process.ts';
import { httpRequest } from '../support/http.ts';
import { startCollector, type Collector, type ReceivedSpan } from '../support/otel-collector.ts';
import { waitFor } from '../../src/util/time.ts';

const MANIFEST = `
apiVersion: bulwark.io/v1
kind: Project
metadata: { name: bank }
spec: { tenant: retail }
---
apiVersion: bulwark.io/v1
kind: App
metadata: { name: accounts, project: bank }
spec:
  workloads:
    - name: api
      type: service
      replicas: 1
      run: { command: [node, examples/bank/accounts.ts] }
      ports: [{ name: http, port: 8080 }]
      health:
        readiness: { http: { path: /healthz, port: http }, intervalMs: 500 }
---
apiVersion: bulwark.io/v1
kind: App
metadata: { name: ledger, project: bank }
spec:
  workloads:
    - name: api
      type: service
      replicas: 1
      run: { command: [node, examples/bank/ledger.ts] }
      ports: [{ name: http, port: 8080 }]
      health:
        readiness: { http: { path: /healthz, port: http }, intervalMs: 500 }
`;

let collector: Collector;
let cp: ControlPlaneProcess;
let dataDir: string;

beforeAll(async () => {
  collector = await startCollector();
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-otlp-'));
  cp = await startControlPlane({
    dataDir,
    // The standard variable; the flag form is --otlp-endpoint.
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, BULWARK_EBPF_AGENT: 'off' },
  });
  const res = await cp.api('POST', '/api/v1/apply', MANIFEST, true);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  await waitFor(
    'accounts and ledger ready',
    async () => {
      const r = await cp.api<{ items: { ready: boolean }[] }>('GET', '/api/v1/instances');
      return r.body.items.filter((i) => i.ready).length === 2;
    },
    { timeoutMs: 60_000, intervalMs: 300 },
  );
}, 120_000);

afterAll(async () => {
  // Deletes the apps and waits for their instances to be gone before SIGTERM (which keeps
  // instances and HAProxy running, by design), then stops HAProxy: nothing outlives the file.
  await cp?.stop();
  await collector?.stop();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
}, 60_000);

const balance = (headers: Record<string, string> = {}) =>
  httpRequest(`${cp.gatewayUrl}/accounts/acc-1`, {
    headers: { host: 'api.accounts.bank', ...headers },
    timeoutMs: 10_000,
  });

const spansOf = (traceId: string): ReceivedSpan[] => collector.spans().filter((s) => s.traceId === traceId);

describe('OTLP export of gateway spans to an OpenTelemetry Collector', () => {
  it("continues a caller's trace: both hops through the gateway, under the caller's span", async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    const r = await balance({ traceparent: `00-${traceId}-${callerSpan}-01` });
    expect(r.status, r.body).toBe(200);
    const spans = await waitFor(
      'two spans of the trace',
      () => (spansOf(traceId).length >= 2 ? spansOf(traceId) : undefined),
      {
        timeoutMs: 15_000,
      },
    );
    const accounts = spans.find((s) => s.name === 'GET api.accounts.bank');
    const ledger = spans.find((s) => s.name === 'GET api.ledger.bank');
    expect(accounts, JSON.stringify(spans)).toMatchObject({
      parentId: callerSpan,
      kind: 'Server',
      resource: { 'service.name': 'bulwark-gateway', 'bulwark.site': 'local' },
      attributes: {
        'http.request.method': 'GET',
        'http.response.status_code': '200',
        'url.path': '/accounts/acc-1',
      },
    });
    expect(accounts!.attributes['bulwark.instance']).toMatch(/^bank\.accounts\.api-0-/);
    // The second hop's parent is the accounts process's own span (it continues the trace).
    expect(ledger, JSON.stringify(spans)).toBeDefined();
    expect([callerSpan, accounts!.id, '']).not.toContain(ledger!.parentId);
    // The accounts instance names itself (X-Bulwark-Caller) with its service name.
    expect(ledger!.attributes['bulwark.caller']).toBe('api.accounts.bank');
  }, 60_000);

  it('roots the traces the gateway starts at the gateway span, the parent the instance saw', async () => {
    for (let i = 0; i < 5; i++) expect((await balance()).status).toBe(200);
    // Recognising its own contexts means recomputing HAProxy's xxh64 of the request uuid: a root
    // span (no parent) exists only if that matched what HAProxy really generated.
    const roots = await waitFor(
      'five root spans',
      () => {
        const r = collector.spans().filter((s) => s.name === 'GET api.accounts.bank' && s.parentId === '');
        return r.length >= 5 ? r : undefined;
      },
      { timeoutMs: 15_000 },
    );
    for (const root of roots) {
      const ledger = await waitFor('the ledger hop of the trace', () =>
        spansOf(root.traceId).find((s) => s.name === 'GET api.ledger.bank'),
      );
      expect(ledger.parentId).not.toBe('');
      expect(ledger.parentId).not.toBe(root.id);
    }
  }, 60_000);

  it('reports the export in the site status', async () => {
    const st = await cp.api<{ sites: Record<string, { observability: { otlp: Record<string, unknown> } }> }>(
      'GET',
      '/api/v1/status',
    );
    expect(st.body.sites.local!.observability.otlp).toMatchObject({
      endpoint: `${collector.url}/v1/traces`,
      state: 'ok',
      dropped: 0,
    });
    expect(st.body.sites.local!.observability.otlp.exported as number).toBeGreaterThanOrEqual(12);
  });

  it('refuses a bad collector URL at start, naming the flag', async () => {
    const { execFileSync } = await import('node:child_process');
    let err = '';
    try {
      execFileSync(
        process.execPath,
        ['src/cli/main.ts', 'server', '--otlp-endpoint', 'collector/v1/traces'],
        {
          encoding: 'utf8',
          stdio: 'pipe',
          timeout: 20_000,
        },
      );
    } catch (e) {
      err = String((e as { stderr?: string }).stderr);
    }
    expect(err).toContain("--otlp-endpoint 'collector/v1/traces' is not a URL");
  });
});
