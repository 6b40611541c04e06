/**
 * The fault scene survives the control plane: a quarantined instance of a
 * third-party server (python http.server) is re-adopted, still quarantined
 * with its incident, after a SIGKILL of the control plane; and `quarantine
 * delete` then removes only the quarantined process, never its healthy
 * replacement (which a reconciler counting the leaving instance took for a
 * duplicate of its ordinal).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { manifestOf, workloadNamed } from '../../bench/chaos/workloads.ts';
import type { Incident } from '../../src/model/incidents.ts';
import type { InstanceStatus } from '../../src/runtime/driver.ts';
import { sleep, waitFor } from '../../src/util/time.ts';
import { startControlPlane, type ControlPlaneProcess } from '../support/control-plane-process.ts';

const root = process.getuid?.() === 0;

describe.skipIf(!root)('quarantine across a control-plane SIGKILL (root)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bw-qrestart-'));
  let cp: ControlPlaneProcess | undefined;
  let stoppedPid: number | undefined;
  afterAll(async () => {
    if (stoppedPid) {
      try {
        process.kill(stoppedPid, 'SIGCONT');
      } catch {
        // gone
      }
    }
    await cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the quarantined instance and its incident, and deletes only it afterwards', async () => {
    const dataDir = path.join(dir, 'bulwark');
    cp = await startControlPlane({ dataDir });
    const instances = async (): Promise<InstanceStatus[]> =>
      (await cp!.api<{ items: InstanceStatus[] }>('GET', '/api/v1/instances')).body.items;
    const incidents = async (): Promise<Incident[]> =>
      (await cp!.api<{ items: Incident[] }>('GET', '/api/v1/incidents?project=chaos')).body.items;
    const applied = await cp.api(
      'POST',
      '/api/v1/apply',
      manifestOf(workloadNamed('python'), 'chaos', path.join(dir, 'w'), 3),
      true,
    );
    expect(applied.status).toBe(200);
    await waitFor('3 ready', async () => (await instances()).filter((i) => i.ready).length === 3, {
      timeoutMs: 60_000,
    });

    const target = (await instances())[0]!;
    stoppedPid = target.pid;
    process.kill(target.pid!, 'SIGSTOP');
    await waitFor(
      'quarantined and replaced',
      async () => {
        const list = await instances();
        return (
          list.find((i) => i.id === target.id)?.phase === 'quarantined' &&
          list.filter((i) => i.ready && i.id !== target.id).length === 3
        );
      },
      { timeoutMs: 30_000 },
    );
    const [inc] = (await incidents()).filter((i) => i.instanceId === target.id);
    expect(inc).toMatchObject({ signature: 'stopped', action: { kind: 'isolate' } });

    // SIGKILL mid-scene, restart on the same data dir and ports.
    const { token, gatewayPort } = cp;
    const port = Number(new URL(cp.url).port);
    await cp.kill('SIGKILL');
    cp = await startControlPlane({ dataDir, token, port, gatewayPort });
    await sleep(3000); // a few reconcile passes and isolation ticks
    const after = await instances();
    expect(after.find((i) => i.id === target.id)).toMatchObject({ phase: 'quarantined', pid: target.pid });
    expect(after.filter((i) => i.ready)).toHaveLength(3); // no extra replacement started
    const again = (await incidents()).find((i) => i.id === inc!.id);
    expect(again?.state === 'isolated' || again?.state === 'mitigated').toBe(true);

    // quarantine delete: the quarantined process goes, the three in traffic stay as they are.
    const ready = after
      .filter((i) => i.ready)
      .map((i) => i.id)
      .sort();
    process.kill(target.pid!, 'SIGCONT');
    const del = await cp.api('POST', `/api/v1/instances/${encodeURIComponent(target.id)}/quarantine/delete`);
    expect(del.status).toBe(200);
    await waitFor(
      'quarantined instance removed',
      async () => !(await instances()).some((i) => i.id === target.id),
      {
        timeoutMs: 30_000,
      },
    );
    await sleep(2000);
    expect((await instances()).map((i) => i.id).sort()).toEqual(ready);
    const closed = (await incidents()).find((i) => i.id === inc!.id);
    expect(closed?.state).toBe('resolved');
  }, 240_000);
});
