/**
 * The node agent against the real kernel: bpftrace attached to the TCP
 * tracepoints, connections made by this test on loopback, and the agent's
 * flows checked against what the test itself did (connections opened and
 * still open, bytes each way from live reads and at close, counted once, a
 * refused connect). Skips with the reason when
 * eBPF cannot run here (not root, no bpftrace).
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkAgentCapability } from '../../src/observability/agent/capability.ts';
import { NodeAgent, type AgentFlow, type AgentInterval } from '../../src/observability/agent/node-agent.ts';
import { sleep, waitFor } from '../../src/util/time.ts';

const cap = await checkAgentCapability();

describe('node agent without eBPF', () => {
  it('reports why it cannot run and does not throw', async () => {
    const agent = NodeAgent.create({
      bpftrace: '/nonexistent/bpftrace',
      inventory: () => ({ instances: [], gatewayBinds: [], gatewayNodeId: 'external:gw' }),
    });
    const st = await agent.start();
    expect(st.state).toBe('unavailable');
    expect(st.reason).toMatch(process.getuid?.() === 0 ? /bpftrace is not installed/ : /needs root/);
    await agent.stop();
    expect(agent.status().state).toBe('unavailable');
  });
});

describe.skipIf(!cap.available)(`node agent with bpftrace (${cap.reason ?? 'available'})`, () => {
  let agent: NodeAgent;
  let server: net.Server;
  let port = 0;
  const intervals: AgentInterval[] = [];
  const sockets: net.Socket[] = [];

  beforeAll(async () => {
    server = net.createServer((s) => {
      sockets.push(s);
      s.on('data', (d) => s.write(Buffer.alloc(d.length * 2, 'y')));
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
    // The test's server plays an instance so the flow is attributed rather than dropped as host noise.
    agent = NodeAgent.create({
      inventory: () => ({
        instances: [
          {
            id: 'test.echo.api-0-aaaaaa',
            project: 'test',
            app: 'echo',
            ip: '127.0.0.1',
            ports: { http: port },
          },
        ],
        gatewayBinds: [],
        gatewayNodeId: 'external:gw',
      }),
    });
    agent.onInterval((iv) => intervals.push(iv));
    await agent.start();
    const st = await agent.ready(90_000);
    expect(st.state, st.reason).toBe('running');
    // One interval after attaching, so the seed of older connections is done.
    await waitFor('first interval', () => intervals.length > 0, { timeoutMs: 10_000 });
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    for (const s of sockets) s.destroy();
    await new Promise((r) => server?.close(r));
  });

  const flowsTo = (since: number, p: number): AgentFlow[] =>
    intervals.slice(since).flatMap((iv) => iv.flows.filter((f) => f.server === '127.0.0.1' && f.port === p));

  it('sees connections open, bytes both ways, the established count and the close', async () => {
    const mark = intervals.length;
    const clients: net.Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const c = net.connect(port, '127.0.0.1');
      await new Promise<void>((r) => c.once('connect', () => r()));
      c.write(Buffer.alloc(1000, 'x'));
      clients.push(c);
    }
    await sleep(2500);
    const flows = flowsTo(mark, port);
    expect(flows.reduce((s, f) => s + f.opened, 0)).toBe(3);
    expect(flows.reduce((s, f) => s + f.bytesToServer, 0)).toBe(3000);
    expect(flows.reduce((s, f) => s + f.bytesToClient, 0)).toBe(6000);
    expect(flows.at(-1)?.established).toBe(3);
    expect(flows.at(-1)?.to).toMatchObject({ kind: 'instance', instanceId: 'test.echo.api-0-aaaaaa' });
    expect(flows.some((f) => f.clientPids.includes(process.pid))).toBe(true);

    // More bytes on the same long-lived connections: only the growth is reported.
    for (const c of clients) c.write(Buffer.alloc(500, 'x'));
    await sleep(2500);
    const before = intervals.length;
    for (const c of clients) c.destroy();
    await waitFor(
      'connections closed',
      () => intervals.slice(before).some((iv) => !iv.flows.some((f) => f.port === port && f.established > 0)),
      { timeoutMs: 5000 },
    );
    await sleep(1500);
    // Live reads and the totals at close add up to what was sent, once (both sockets are local).
    const all = flowsTo(mark, port);
    expect(all.reduce((s, f) => s + f.bytesToServer, 0)).toBe(4500);
    expect(all.reduce((s, f) => s + f.bytesToClient, 0)).toBe(9000);
    expect(all.some((f) => f.rttUs !== undefined && f.rttUs > 0)).toBe(true);
  });

  it('counts the bytes of a connection that opens and closes between two reads', async () => {
    const mark = intervals.length;
    const c = net.connect(port, '127.0.0.1');
    await new Promise<void>((r) => c.once('connect', () => r()));
    let got = 0;
    const done = new Promise<void>((r) =>
      c.on('data', (d) => {
        got += d.length;
        if (got >= 1400) r();
      }),
    );
    c.write(Buffer.alloc(700, 'x'));
    await done;
    c.end();
    await sleep(2500);
    const flows = flowsTo(mark, port);
    expect(flows.reduce((s, f) => s + f.opened, 0)).toBe(1);
    expect(flows.reduce((s, f) => s + f.bytesToServer, 0)).toBe(700);
    expect(flows.reduce((s, f) => s + f.bytesToClient, 0)).toBe(1400);
    expect(agent.status().socketReads).toMatchObject({ failures: 0 });
  });

  it('counts a refused connect as one failed connection, none opened', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const deadPort = (closed.address() as net.AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const mark = intervals.length;
    const c = net.connect(deadPort, '127.0.0.1');
    await new Promise<void>((r) => c.once('error', () => r()));
    await sleep(2500);
    // The client address is the test "instance" (127.0.0.1), so the flow is attributed and shipped.
    const flows = flowsTo(mark, deadPort);
    expect(flows.reduce((s, f) => s + f.failed, 0)).toBe(1);
    expect(flows.reduce((s, f) => s + f.opened, 0)).toBe(0);
    expect(flows[0]?.from).toMatchObject({ kind: 'instance' });
    expect(flows[0]?.to).toMatchObject({ kind: 'external', nodeId: `external:127.0.0.1:${deadPort}` });
  });
});
