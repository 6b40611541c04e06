/**
 * Operator intent survives a restart of the demo: `npm start` creates the
 * manifest's resources only when they are missing; an App changed by
 * `bulwark scale` is kept, and the difference is reported with the command
 * that would reset it. Against a real control plane.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { manifestOf, workloadNamed } from '../../bench/chaos/workloads.ts';
import { ApiClient } from '../../src/cli/client.ts';
import { applyDemo } from '../../src/main/demo-apply.ts';
import type { AppResource } from '../../src/model/types.ts';
import { startControlPlane, type ControlPlaneProcess } from '../support/control-plane-process.ts';

describe('the demo apply keeps what an operator changed', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bw-demo-intent-'));
  let cp: ControlPlaneProcess | undefined;
  afterAll(async () => {
    await cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates what is missing, keeps a scaled app as scaled and says how to reset it', async () => {
    cp = await startControlPlane({
      dataDir: path.join(dir, 'bulwark'),
      unprivileged: process.getuid?.() !== 0,
    });
    const api = new ApiClient({ server: cp.url, token: cp.token, source: 'test' });
    const yaml = manifestOf(workloadNamed('python'), 'intent', path.join(dir, 'w'), 1);
    const lines: string[] = [];
    const io = { out: (s: string) => lines.push(s), err: (s: string) => lines.push(s) };

    await applyDemo(api, io, 'demo.yaml', yaml, 120_000);
    expect(lines.join('\n')).toMatch(/created Project\/intent, App\/intent\/python from demo\.yaml/);

    const scaled = await cp.api<AppResource>('POST', '/api/v1/projects/intent/apps/python/scale', {
      replicas: 2,
    });
    expect(scaled.status).toBe(200);
    lines.length = 0;
    await applyDemo(api, io, 'demo.yaml', yaml, 120_000);
    const out = lines.join('\n');
    expect(out).not.toMatch(/created/);
    expect(out).toMatch(/App\/intent\/python differs from demo\.yaml; kept as it is/);
    expect(out).toMatch(/replicas: now 2, the manifest says 1/);
    expect(out).toMatch(/to reset the demo to the manifest: \.\/bin\/bulwark apply -f demo\.yaml/);
    const app = await cp.api<AppResource>('GET', '/api/v1/projects/intent/apps/python');
    expect(app.body.spec.workloads[0]!.replicas).toBe(2);
  }, 240_000);
});
