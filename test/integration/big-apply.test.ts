/**
 * A big apply does not stall the control plane (issue 15 item 9): a real
 * `bulwark server` takes 1500 Apps in two requests (1000, the per-request
 * limit, then 500) while a probe GETs the health route, one App and
 * /api/v1/status back to back; all of them keep answering within 100 ms at
 * p99, every App lands, and GET /api/v1/applies shows the apply moving. One
 * more than the limit is refused, naming the limit and the fix. The full
 * 10,000-App run is bench/big-apply.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { batchYaml, bigApply, stopQuietly } from '../../bench/big-apply/scenario.ts';
import { MANIFEST_LIMITS } from '../../src/model/input-limits.ts';
import { startControlPlane, type ControlPlaneProcess } from '../support/control-plane-process.ts';

const APPS = 1500;
const P99_MS = 100;

describe('a big apply (1500 apps) keeps health and reads answering', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bw-bigapply-test-'));
  let cp: ControlPlaneProcess | undefined;
  afterAll(async () => {
    if (cp) await stopQuietly(cp);
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers health and reads within 100 ms p99 while 1500 apps are applied, and stores them all', async () => {
    cp = await startControlPlane({ dataDir: path.join(dir, 'data'), unprivileged: true });
    const r = await bigApply(cp, APPS, { idleMs: 1000 });
    const summary = JSON.stringify({ idle: r.idle, during: r.during, batchMs: r.batchMs });
    expect(r.storedApps, summary).toBe(APPS);
    for (const route of ['health', 'read', 'status'] as const) {
      expect(r.during[route].errors, `${route}: ${summary}`).toBe(0);
      // Enough samples for a p99 to mean something: the probe was not itself starved.
      expect(r.during[route].count, `${route}: ${summary}`).toBeGreaterThan(100);
      expect(r.during[route].p99, `${route}: ${summary}`).toBeLessThan(P99_MS);
    }
    expect(r.progress.snapshots, JSON.stringify(r.progress)).toBeGreaterThan(0);
    expect(r.progress.phases, JSON.stringify(r.progress)).toContain('writing');
    expect(r.progress.distinctDone, JSON.stringify(r.progress)).toBeGreaterThan(2);

    const applies = await cp.api<{
      running: unknown[];
      finished: { phase: string; total: number; created: number; unchanged: number }[];
    }>('GET', '/api/v1/applies');
    expect(applies.body.running).toEqual([]);
    expect(applies.body.finished.slice(0, 2).map((a) => [a.phase, a.total, a.created, a.unchanged])).toEqual([
      ['done', APPS - 1000, APPS - 1000, 0],
      // a0 was there before (the read route's app).
      ['done', 1000, 999, 1],
    ]);
  }, 240_000);

  it('refuses one resource more than the per-request limit, saying to split the apply', async () => {
    expect(cp).toBeDefined();
    const over = MANIFEST_LIMITS.maxResources + 1;
    const res = await cp!.api<{ message: string; details?: { path: string; fix: string }[] }>(
      'POST',
      '/api/v1/apply',
      batchYaml(100_000, 100_000 + over, false),
      true,
    );
    expect(res.status, JSON.stringify(res.body)).toBe(422);
    const text = JSON.stringify(res.body);
    expect(text).toContain(String(MANIFEST_LIMITS.maxResources));
    expect(text.toLowerCase()).toMatch(/split|several|smaller/);
    const stored = await cp!.api<{ items: unknown[] }>('GET', '/api/v1/apps?project=big');
    expect(stored.body.items).toHaveLength(APPS);
  });
});
