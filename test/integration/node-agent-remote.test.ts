/**
 * `bulwark agent` as its own process, reporting to a control plane whose
 * in-process agent is off (BULWARK_EBPF_AGENT=off): the setup of a node that
 * is not the control plane's. Real parts: the control plane and the agent as
 * processes, bpftrace, HAProxy, the demo bank in network namespaces.
 *
 * - The agent fetches the site's inventory, reports, and its flows become the
 *   site's L4 edges (gateway <-> instances), with connections and bytes.
 * - A bad report is refused whole with the field named; an unknown site is 404.
 * - The control plane SIGKILLed and restarted on the same port: the agent
 *   queues meanwhile and reports again afterwards, without being restarted.
 *
 * Needs root and bpftrace; skips with the reason otherwise.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLoad } from '../../examples/bank/load.ts';
import { checkAgentCapability } from '../../src/observability/agent/capability.ts';
import type { RemoteAgentStatus } from '../../src/observability/agent/remote-agents.ts';
import type { Topology } from '../../src/observability/topology/types.ts';
import type { InstanceStatus } from '../../src/runtime/driver.ts';
import { sleep, waitFor } from '../../src/util/time.ts';
import { waitBankReady } from '../support/bank.ts';
import { REPO_ROOT, startControlPlane, type ControlPlaneProcess } from '../support/control-plane-process.ts';

const cap = await checkAgentCapability();
const root = process.getuid?.() === 0;
const why = !root ? 'needs root' : !cap.available ? cap.reason : undefined;
const NODE = 'test-node-1';

describe.skipIf(why !== undefined)(`bulwark agent on another node (${why ?? 'root + bpftrace'})`, () => {
  let cp: ControlPlaneProcess;
  let dataDir: string;
  let agent: ChildProcess | undefined;
  let agentLog = '';

  const agents = async (): Promise<RemoteAgentStatus[]> =>
    (await cp.api<{ items: RemoteAgentStatus[] }>('GET', '/api/v1/observability/agents')).body.items;
  const instances = async (): Promise<InstanceStatus[]> =>
    (await cp.api<{ items: InstanceStatus[] }>('GET', '/api/v1/instances')).body.items;

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-remote-agent-'));
    cp = await startControlPlane({ dataDir, env: { BULWARK_EBPF_AGENT: 'off' } });
    const applied = await cp.api(
      'POST',
      '/api/v1/apply',
      fs.readFileSync(path.join(REPO_ROOT, 'examples/bank/bank.yaml'), 'utf8'),
      true,
    );
    expect(applied.status, JSON.stringify(applied.body)).toBe(200);
    await waitBankReady(cp);
    agent = spawn(
      process.execPath,
      [path.join(REPO_ROOT, 'src/cli/main.ts'), 'agent', '--site', 'local', '--node', NODE],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, BULWARK_SERVER: cp.url, BULWARK_TOKEN: cp.token },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const keep = (d: Buffer): void => void (agentLog = (agentLog + d.toString()).slice(-20_000));
    agent.stdout?.on('data', keep);
    agent.stderr?.on('data', keep);
    await waitFor(
      'remote agent running',
      async () => {
        if (agent?.exitCode !== null) throw new Error(`agent exited: ${agentLog}`);
        return (await agents()).some((a) => a.node === NODE && a.state === 'running');
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
  }, 300_000);

  afterAll(async () => {
    if (agent && agent.exitCode === null) {
      const exited = new Promise<void>((r) => agent!.once('exit', () => r()));
      agent.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
      if (agent.exitCode === null) agent.kill('SIGKILL');
    }
    if (!cp) return;
    await cp.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  it('its flows are the L4 edges of the site: gateway <-> instances with connections and bytes', async () => {
    const inproc = await cp.api<{ sites: Record<string, { state: string }> }>(
      'GET',
      '/api/v1/observability/agent',
    );
    expect(inproc.body.sites.local?.state).toBe('stopped'); // nothing else sees the kernel here
    const result = await runLoad({
      url: cp.gatewayUrl,
      host: 'api.gateway.bank',
      rps: 20,
      durationS: 8,
      replayShare: 0,
      timeoutMs: 5000,
    });
    expect(result.ok).toBeGreaterThan(0);
    await sleep(2500);
    const t = (await cp.api<Topology>('GET', '/api/v1/topology?window=15s')).body;
    const l4 = t.edges.filter((e) => e.layers.includes('l4'));
    const gw = t.nodes.find((n) => n.kind === 'external' && n.label.includes('gateway'));
    expect(gw, 'gateway node').toBeDefined();
    for (const inst of (await instances()).filter((i) => i.project === 'bank')) {
      const toInst = l4.find((e) => e.from === gw!.id && e.to === `instance:${inst.id}`);
      expect(toInst, `L4 edge gateway -> ${inst.id} in ${l4.map((e) => e.id).join(', ')}`).toBeDefined();
      expect(toInst!.metrics.bytesToServer ?? 0).toBeGreaterThan(0);
    }
    // Callers of the gateway among the instances (accounts -> ledger goes through it).
    const fromInst = l4.filter((e) => e.to === gw!.id && e.from.startsWith('instance:'));
    expect(fromInst.length).toBeGreaterThan(0);
    const [me] = (await agents()).filter((a) => a.node === NODE);
    expect(me).toMatchObject({ site: 'local', state: 'running' });
    expect(me!.reports).toBeGreaterThan(5);
  });

  it('refuses a bad report whole, naming the field; an unknown site is 404', async () => {
    const bad = await cp.api<{ error: { details: { path: string; fix?: string }[] } }>(
      'POST',
      '/api/v1/observability/agents/reports',
      {
        site: 'local',
        node: NODE,
        status: { state: 'running', intervals: 1, restarts: 0 },
        interval: {
          at: new Date().toISOString(),
          intervalMs: 1000,
          flows: [{ client: '10.0.0.1', server: 'x', port: 70000 }],
        },
      },
    );
    expect(bad.status).toBe(400);
    const paths = bad.body.error.details.map((d) => d.path);
    expect(paths).toEqual(expect.arrayContaining(['interval.flows[0].server', 'interval.flows[0].port']));
    const unknown = await cp.api('GET', '/api/v1/observability/agents/inventory?site=nowhere');
    expect(unknown.status).toBe(404);
    const noAuth = await fetch(`${cp.url}/api/v1/observability/agents/inventory?site=local`);
    expect(noAuth.status).toBe(401);
  });

  it('keeps running through a control-plane SIGKILL and reports again after its restart', async () => {
    const port = Number(new URL(cp.url).port);
    await cp.kill('SIGKILL');
    await waitFor('agent noticed', () => /unreachable/.test(agentLog), { timeoutMs: 15_000 });
    expect(agent?.exitCode).toBeNull();
    cp = await startControlPlane({
      dataDir,
      port,
      gatewayPort: cp.gatewayPort,
      token: cp.token,
      env: { BULWARK_EBPF_AGENT: 'off' },
    });
    // The new process knows nothing of the node until the agent reports again.
    await waitFor(
      'agent reports to the restarted control plane',
      async () => (await agents()).some((a) => a.node === NODE && a.state === 'running'),
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    expect(agentLog).toMatch(/reachable again/);
    expect(agent?.exitCode).toBeNull();
  }, 120_000);
});
