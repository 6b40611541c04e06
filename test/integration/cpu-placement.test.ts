/**
 * `bulwark server --gateway-cpus L --control-plane-cpus L` on a real control
 * plane process: the server (with the gateway's request-log receiver), HAProxy
 * and the local instances each end up on the CPUs the placement gives them
 * (read back from /proc), the layout bench/dataplane measures the gateway in.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppResource } from '../../src/model/types.ts';
import type { InstanceStatus } from '../../src/runtime/driver.ts';
import { affinityOf } from '../../src/util/cpus.ts';
import { waitFor } from '../../src/util/time.ts';
import { REPO_ROOT, startControlPlane, type ControlPlaneProcess } from '../support/control-plane-process.ts';
import { httpRequest } from '../support/http.ts';

const cpus = os.cpus().length;
const platform = cpus - 1;
const rest = Array.from({ length: cpus - 1 }, (_, c) => c);
const bank = fs.readFileSync(path.join(REPO_ROOT, 'examples/bank/bank.yaml'), 'utf8').split(/^---$/m);
// The project and the ledger, which calls no other service.
const manifest = [bank[0], bank.find((d) => /^ {2}name: ledger$/m.test(d))].join('---');

let dataDir: string;
let cp: ControlPlaneProcess | undefined;

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-cpus-'));
  cp = await startControlPlane({
    dataDir,
    unprivileged: true,
    extraArgs: ['--gateway-cpus', String(platform), '--control-plane-cpus', String(platform)],
  });
}, 120_000);

afterAll(async () => {
  if (!cp) return;
  // Deletes the apps and waits for their instances, then stops the server, HAProxy and the site's cgroup.
  await cp.stop();
  try {
    execFileSync('pkill', ['-KILL', '-f', dataDir], { stdio: 'ignore' });
  } catch {
    // nothing left: the clean case
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
}, 60_000);

describe.runIf(cpus >= 2)('CPU placement of the local site', () => {
  it('puts the control plane and HAProxy on the platform CPU and the instances on the others', async () => {
    const c = cp!;
    expect(affinityOf(c.pid)).toEqual([platform]);
    const haproxy = execFileSync('pgrep', ['-f', `haproxy.*${dataDir}`], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map(Number);
    expect(haproxy.length).toBeGreaterThan(0);
    for (const pid of haproxy) expect(affinityOf(pid), `haproxy ${pid}`).toEqual([platform]);

    const applied = await c.api('POST', '/api/v1/apply', manifest, true);
    expect(applied.status, JSON.stringify(applied.body)).toBe(200);
    const list = await waitFor(
      'ledger ready',
      async () => {
        const r = await c.api<AppResource>('GET', '/api/v1/projects/bank/apps/ledger');
        if (r.body.status?.conditions?.find((x) => x.type === 'Ready')?.status !== 'True') return undefined;
        const res = await c.api<{ items: InstanceStatus[] }>('GET', '/api/v1/instances');
        return res.body.items.filter((i) => i.app === 'ledger');
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    expect(list.length).toBeGreaterThan(0);
    for (const inst of list) expect(affinityOf(inst.pid!), inst.id).toEqual(rest);
    // And it serves through the pinned gateway.
    const res = await httpRequest(`${c.gatewayUrl}/healthz`, { headers: { host: 'api.ledger.bank' } });
    expect(res.status).toBe(200);
  }, 120_000);
});
