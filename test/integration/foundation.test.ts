/**
 * The foundation's acceptance test, end to end against real parts: the
 * control plane as a real process, PGlite on disk, real instance processes
 * (in their own network namespaces and cgroups when run as root), a real
 * HAProxy carrying the traffic.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppResource } from '../../src/model/types.ts';
import type { InstanceStatus } from '../../src/runtime/driver.ts';
import { sleep, waitFor } from '../../src/util/time.ts';
import {
  instanceProcesses,
  REPO_ROOT,
  startControlPlane,
  type ControlPlaneProcess,
} from '../support/control-plane-process.ts';
import { httpRequest } from '../support/http.ts';

const isRoot = process.getuid?.() === 0;
const manifest = fs.readFileSync(path.join(REPO_ROOT, 'examples/bank/bank.yaml'), 'utf8');
const APPS = ['gateway', 'accounts', 'payments', 'ledger'];

let dataDir: string;
let cp: ControlPlaneProcess;

async function instances(app?: string): Promise<InstanceStatus[]> {
  const res = await cp.api<{ items: InstanceStatus[] }>('GET', '/api/v1/instances');
  expect(res.status).toBe(200);
  return res.body.items.filter((i) => !app || i.app === app);
}

async function allReady(): Promise<boolean> {
  for (const a of APPS) {
    const r = await cp.api<AppResource>('GET', `/api/v1/projects/bank/apps/${a}`);
    const ready = r.body.status?.conditions?.find((c) => c.type === 'Ready');
    if (r.body.status?.observedGeneration !== r.body.metadata.generation || ready?.status !== 'True')
      return false;
  }
  return true;
}

/** Drive `n` requests through the gateway, half GET balance, half POST payment with an Idempotency-Key. */
async function traffic(n: number, concurrency = 8): Promise<{ ok: number; errors: string[] }> {
  let next = 0;
  let ok = 0;
  const errors: string[] = [];
  const worker = async (w: number) => {
    while (next < n) {
      const i = next++;
      const post = i % 2 === 1;
      try {
        const res = await httpRequest(`${cp.gatewayUrl}${post ? '/api/payments' : '/api/accounts/acc-1'}`, {
          method: post ? 'POST' : 'GET',
          headers: {
            host: 'gateway.bank',
            ...(post
              ? { 'content-type': 'application/json', 'idempotency-key': `t-${w}-${i}-${Date.now()}` }
              : {}),
          },
          ...(post ? { body: JSON.stringify({ from: 'acc-1', to: 'acc-2', amountCents: 1 }) } : {}),
        });
        const body = res.body;
        if (res.status < 400) ok++;
        else errors.push(`${post ? 'POST' : 'GET'} ${res.status} ${body.slice(0, 160)}`);
      } catch (err) {
        errors.push(String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  return { ok, errors };
}

/** What the site's HAProxy was given, for failure messages. */
function gatewayState(): string {
  const dir = path.join(dataDir, 'sites', 'local', 'haproxy');
  try {
    const gens = fs.readdirSync(dir).filter((f) => f.startsWith('gen-'));
    const last = gens.sort((a, b) => Number(a.slice(4)) - Number(b.slice(4))).at(-1);
    return `generations ${gens.join(',')}; ${last}/hosts.map:\n${last ? fs.readFileSync(path.join(dir, last, 'hosts.map'), 'utf8') : ''}`;
  } catch (err) {
    return `no HAProxy state: ${String(err)}`;
  }
}

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-it-'));
  cp = await startControlPlane({ dataDir });
}, 120_000);

afterAll(async () => {
  // A graceful stop keeps instances and HAProxy (by design): stop() deletes every app (ledger2
  // of the scaling test too), waits for their instances to go, then stops the server and HAProxy.
  await cp?.stop();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
}, 120_000);

describe('foundation: demo bank end to end', () => {
  it('applies the demo and gets every app Ready', async () => {
    const res = await cp.api<{ results: { action: string }[] }>('POST', '/api/v1/apply', manifest, true);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.results.every((r) => r.action === 'created')).toBe(true);
    await waitFor('all apps ready', allReady, { timeoutMs: 90_000, intervalMs: 500 });
    const again = await cp.api<{ results: { action: string }[] }>('POST', '/api/v1/apply', manifest, true);
    expect(again.body.results.every((r) => r.action === 'unchanged')).toBe(true);
  }, 120_000);

  it('carries 1,000 requests through HAProxy with 0 errors', async () => {
    const res = await traffic(1000);
    // Normal traffic on a busy machine must not look like a fault to isolation.
    const incidents = await cp.api<{ items: { signature: string; evidenceSummary: string }[] }>(
      'GET',
      '/api/v1/incidents',
    );
    expect(incidents.body.items.map((i) => `${i.signature}: ${i.evidenceSummary}`)).toEqual([]);
    expect(res.errors.slice(0, 5), gatewayState()).toEqual([]);
    expect(res.ok).toBe(1000);
  }, 120_000);

  it.runIf(isRoot)(
    'runs each instance in its own network namespace with its own IP, under cgroup limits',
    async () => {
      const list = await instances();
      const ips = new Set(list.map((i) => i.ip));
      expect(ips.size).toBe(list.length);
      for (const inst of list) {
        expect(inst.ip).not.toBe('127.0.0.1');
        expect(inst.isolation.netns).toBeTruthy();
        const ns = execFileSync('ip', ['netns', 'identify', String(inst.pid)])
          .toString()
          .trim();
        expect(ns).toBe(inst.isolation.netns);
        expect(inst.isolation.cgroup).toBeTruthy();
        const limit = fs.readFileSync(
          `/sys/fs/cgroup/memory/${inst.isolation.cgroup}/memory.limit_in_bytes`,
          'utf8',
        );
        // bank.yaml: the ledger 256Mi (room for a busy heap), the others 128Mi.
        expect(Number(limit), inst.app).toBe((inst.app === 'ledger' ? 256 : 128) * 1024 * 1024);
        const procs = fs.readFileSync(`/sys/fs/cgroup/memory/${inst.isolation.cgroup}/cgroup.procs`, 'utf8');
        expect(procs.split('\n')).toContain(String(inst.pid));
      }
    },
  );

  it('scales a service 2 -> 5 -> 2 and keeps serving', async () => {
    for (const replicas of [5, 2]) {
      const res = await cp.api<AppResource>('POST', '/api/v1/projects/bank/apps/accounts/scale', {
        replicas,
      });
      expect(res.status).toBe(200);
      await waitFor(
        `accounts at ${replicas} ready instances`,
        async () => {
          const list = await instances('accounts');
          return list.length === replicas && list.every((i) => i.ready) && (await allReady());
        },
        { timeoutMs: 60_000, intervalMs: 300 },
      );
      await waitFor(
        `${replicas} accounts processes`,
        () =>
          instanceProcesses(cp.gatewayPort).filter((p) => p.instanceId.startsWith('bank.accounts.'))
            .length === replicas,
      );
      const t = await traffic(100);
      expect(t.errors).toEqual([]);
    }
  }, 150_000);

  it('replaces an instance that is SIGKILLed', async () => {
    const [victim] = await instances('payments');
    expect(victim?.pid).toBeGreaterThan(0);
    process.kill(victim!.pid!, 'SIGKILL');
    const back = await waitFor(
      'payments instance back and ready',
      async () => {
        const now = (await instances('payments')).find((i) => i.id === victim!.id);
        return now && now.ready && now.pid !== victim!.pid ? now : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    expect(back.restarts).toBeGreaterThan(victim!.restarts);
    expect(back.lastExit?.reason).toBe('signaled');
  }, 60_000);

  it('converges after the control plane is SIGKILLed, with no orphan or duplicate process', async () => {
    const before = await instances();
    const pidsBefore = new Map(before.map((i) => [i.id, i.pid]));
    await cp.kill('SIGKILL');
    // Workloads keep serving while the control plane is down (HAProxy and the shims are separate processes).
    const during = await traffic(50, 4);
    expect(during.errors).toEqual([]);
    cp = await startControlPlane({
      dataDir,
      port: Number(new URL(cp.url).port),
      gatewayPort: cp.gatewayPort,
      token: cp.token,
    });
    await waitFor('apps ready after restart', allReady, { timeoutMs: 60_000, intervalMs: 500 });
    const after = await instances();
    expect(after.map((i) => i.id).sort()).toEqual([...pidsBefore.keys()].sort());
    for (const i of after) expect(i.pid).toBe(pidsBefore.get(i.id));
    const procs = instanceProcesses(cp.gatewayPort);
    expect(procs.map((p) => p.instanceId).sort()).toEqual(after.map((i) => i.id).sort());
    const t = await traffic(100);
    expect(t.errors).toEqual([]);
  }, 120_000);

  it('recovers from a SIGKILL in the middle of an apply: converges, no duplicates', async () => {
    const extra = manifest.replace(/name: ledger\b/, 'name: ledger2');
    const applying = cp.api('POST', '/api/v1/apply', extra, true).catch(() => undefined);
    await sleep(30);
    await cp.kill('SIGKILL');
    await applying;
    cp = await startControlPlane({
      dataDir,
      port: Number(new URL(cp.url).port),
      gatewayPort: cp.gatewayPort,
      token: cp.token,
    });
    // Whatever landed before the kill converges; the client re-applies (idempotent) and everything settles.
    const res = await cp.api<{ results: { action: string }[] }>('POST', '/api/v1/apply', extra, true);
    expect(res.status).toBe(200);
    await waitFor(
      'ledger2 ready',
      async () => {
        const r = await cp.api<AppResource>('GET', '/api/v1/projects/bank/apps/ledger2');
        return (
          r.body.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' && (await allReady())
        );
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    const list = await instances();
    const procs = instanceProcesses(cp.gatewayPort);
    expect(procs.map((p) => p.instanceId).sort()).toEqual(list.map((i) => i.id).sort());
    expect((await instances('ledger2')).length).toBe(2);
    const del = await cp.api('DELETE', '/api/v1/projects/bank/apps/ledger2');
    expect(del.status).toBe(200);
    await waitFor(
      'ledger2 processes gone',
      () => instanceProcesses(cp.gatewayPort).every((p) => !p.instanceId.startsWith('bank.ledger2.')),
      { timeoutMs: 30_000 },
    );
  }, 150_000);

  it.runIf(isRoot)(
    'OOM-kills an instance that outgrows its memory limit, reports it and restarts it with backoff',
    async () => {
      // This test is about the runtime's OOM handling: with isolation on, the memory-leak
      // signature would quarantine the instance before the kernel kills it.
      const noIsolation = manifest.replace(
        /(name: ledger\n  project: bank\nspec:\n)/,
        '$1  isolation:\n    enabled: false\n',
      );
      expect(noIsolation).not.toBe(manifest);
      const applied = await cp.api('POST', '/api/v1/apply', noIsolation, true);
      expect(applied.status, JSON.stringify(applied.body)).toBe(200);
      // The policy reaches the isolation controller through the change feed: give it a moment.
      await sleep(1000);
      const [victim] = await instances('ledger');
      const port = Object.values(victim!.ports)[0];
      const res = await fetch(`http://${victim!.ip}:${port}/admin/fault`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ mode: 'leak', mibPerSecond: 100 }),
      });
      expect(res.status).toBe(200);
      const after = await waitFor(
        'ledger instance OOM-killed and restarted',
        async () => {
          const now = (await instances('ledger')).find((i) => i.id === victim!.id);
          return now && now.lastExit?.reason === 'oom-killed' && now.restarts > victim!.restarts
            ? now
            : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      expect(after.lastExit?.message).toMatch(/memory|oom/i);
      await waitFor('ledger ready again', async () => (await instances('ledger')).every((i) => i.ready), {
        timeoutMs: 30_000,
      });
    },
    90_000,
  );
});
