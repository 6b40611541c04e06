/**
 * The controller's decision when a match arrives for a process that is
 * already dead but whose exit the driver has not reported yet (the local
 * driver polls exits every 200 ms; HAProxy's failed attempts on the dead
 * server arrive sooner). Fakes for store, driver and data plane: this is the
 * controller's own logic, the real parts are in test/integration/isolation.test.ts.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../util/logger.ts';
import type { DataPlane } from '../../dataplane/dataplane.ts';
import type { DriverEvent, InstanceStatus, RuntimeDriver } from '../../runtime/driver.ts';
import type { Store } from '../../store/store.ts';
import { waitFor } from '../../util/time.ts';
import type { Incident } from '../../model/incidents.ts';
import { classifyTermination } from '../signals/request.ts';
import type { RequestSignal, Signal } from '../signals/types.ts';
import { instance } from '../sources/testing.ts';
import { hostProcessGone, IsolationController, type SignalSink } from './isolation-controller.ts';

const quiet: Logger = { info() {}, warn() {}, error() {}, debug() {}, child: () => quiet };

function setup(gone: Set<string>) {
  const insts = new Map<string, InstanceStatus>(
    ['a', 'b', 'c', 'd'].map((id, i) => [id, instance(id, { ordinal: i, pid: 1000 + i })]),
  );
  const listeners: ((ev: DriverEvent) => void)[] = [];
  const incidents = new Map<string, Incident>();
  const maint: string[] = [];
  let sink: SignalSink | undefined;
  const driver = {
    list: () => [...insts.values()],
    get: (id: string) => insts.get(id),
    watch: (l: (ev: DriverEvent) => void) => {
      listeners.push(l);
      return () => undefined;
    },
    stats: () => undefined,
    quarantine: async (id: string) => {
      insts.set(id, { ...insts.get(id)!, phase: 'quarantined' });
    },
  } as unknown as RuntimeDriver;
  const store = {
    list: async () => [],
    listIncidents: async () => [...incidents.values()],
    putIncident: async (i: Incident) => {
      incidents.set(i.id, i);
    },
  } as unknown as Store;
  const aborted: string[] = [];
  const dataplane = {
    setServerState: async (_b: string, server: string) => {
      maint.push(server);
    },
    abortServerConnections: async (_b: string, server: string) => {
      aborted.push(server);
      return 3;
    },
  } as unknown as DataPlane;
  const ctl = new IsolationController({
    site: 'test',
    store,
    driver,
    dataplane,
    reconciler: { holdOut() {}, trigger() {} },
    feed: {
      start: (s) => {
        sink = s;
      },
      stop: async () => undefined,
    },
    evidenceDir: os.tmpdir(),
    log: quiet,
    collectEvidence: async () => ({ dir: '/tmp/none', parts: {}, durationMs: 0 }) as never,
    processGone: (inst) => gone.has(inst.id),
  });
  let t = Date.now();
  const failed = (id: string, terminationState = 'SC--'): void => {
    t += 20;
    const s: RequestSignal = {
      type: 'request',
      at: t,
      startedAt: t - 5,
      method: 'GET',
      status: 0,
      totalMs: 5,
      serverMs: 5,
      retries: 0,
      terminationState,
      outcome: classifyTermination(terminationState, 0),
    };
    sink!.signal(id, s);
  };
  const exit = (id: string): void => {
    const s: Signal = { type: 'exit', at: Date.now(), reason: 'signaled', code: null, signal: 'SIGKILL' };
    sink!.signal(id, s);
  };
  const stopped = (id: string): void => {
    sink!.signal(id, { type: 'stopped', at: Date.now() });
  };
  const probeFailed = (id: string, timedOut: boolean): void => {
    sink!.signal(id, {
      type: 'probe',
      at: Date.now(),
      ok: false,
      latencyMs: timedOut ? 400 : 2,
      error: timedOut ? 'no answer within 400 ms' : 'connect ECONNREFUSED',
      ...(timedOut ? { timedOut: true } : {}),
    });
  };
  const setReady = (id: string, ready: boolean): void => {
    insts.set(id, { ...insts.get(id)!, ready, phase: ready ? 'ready' : 'starting' });
  };
  return { ctl, incidents, maint, aborted, failed, exit, stopped, probeFailed, setReady };
}

describe('IsolationController: a match on a process that already died', () => {
  let ctl: IsolationController | undefined;
  afterEach(async () => {
    await ctl?.stop();
    ctl = undefined;
  });

  it('leaves a 5xx streak of a dead process to the crash rule: one restart incident, signature crash', async () => {
    const env = setup(new Set(['a']));
    ctl = env.ctl;
    await ctl.start();
    for (let i = 0; i < 3; i++) env.failed('a');
    await new Promise((r) => setTimeout(r, 50));
    expect([...env.incidents.values()]).toEqual([]);
    expect(env.maint).toEqual([]);
    env.exit('a');
    await waitFor('crash incident', () => env.incidents.size > 0, { timeoutMs: 2000 });
    const [inc] = [...env.incidents.values()];
    expect(inc).toMatchObject({ signature: 'crash', action: { kind: 'restart' }, instanceId: 'a' });
    expect(env.maint).toEqual(['a']);
  });

  it('isolates the same streak of a live process as connection failures', async () => {
    const env = setup(new Set());
    ctl = env.ctl;
    await ctl.start();
    for (let i = 0; i < 3; i++) env.failed('a');
    await waitFor('isolation incident', () => env.incidents.size > 0, { timeoutMs: 2000 });
    const [inc] = [...env.incidents.values()];
    expect(inc).toMatchObject({ signature: 'connect-failures', action: { kind: 'isolate' } });
    // It refuses connections: it holds no request, there is nothing to abort.
    expect(env.aborted).toEqual([]);
  });

  it('closes the gateway connections of a stopped process so the requests it holds are retried', async () => {
    const env = setup(new Set());
    ctl = env.ctl;
    await ctl.start();
    env.stopped('a');
    await waitFor('isolation incident', () => env.incidents.size > 0, { timeoutMs: 2000 });
    const [inc] = [...env.incidents.values()];
    expect(inc).toMatchObject({ signature: 'stopped', action: { kind: 'isolate' } });
    expect(env.maint).toEqual(['a']);
    expect(env.aborted).toEqual(['a']);
    // A second pass catches requests that were assigned to it just before the maint.
    await waitFor('second pass', () => env.aborted.length === 2, { timeoutMs: 1000 });
    expect(env.aborted).toEqual(['a', 'a']);
    // One 'isolated' event, naming both steps.
    expect(inc!.timeline.filter((e) => e.event === 'isolated').map((e) => e.detail)).toEqual([
      'out of traffic (server in maint): web.app.proj/a; 3 gateway connection(s) to the unresponsive instance closed: the requests it held are retried on other instances',
    ]);
  });
});

describe("IsolationController: a survivor swamped by a lost peer's load", () => {
  let ctl: IsolationController | undefined;
  afterEach(async () => {
    await ctl?.stop();
    ctl = undefined;
  });

  /** 'a' crashes and restarts (out of traffic, not ready yet); then 'b' fails three probes (or connections). */
  async function afterCrash(timedOut: boolean, how: 'probes' | 'connections' = 'probes') {
    const env = setup(new Set(['a']));
    ctl = env.ctl;
    await ctl.start();
    env.exit('a');
    await waitFor('crash incident', () => env.incidents.size > 0, { timeoutMs: 2000 });
    env.setReady('a', false);
    for (let i = 0; i < 3; i++)
      if (how === 'probes') env.probeFailed('b', timedOut);
      else env.failed('b', timedOut ? 'sC--' : 'SC--');
    await waitFor('a second incident', () => env.incidents.size > 1, { timeoutMs: 2000 });
    return { env, inc: [...env.incidents.values()].find((i) => i.instanceId === 'b')! };
  }

  it('probes that time out while the replacement is not serving yet: alert, kept in traffic', async () => {
    const { env, inc } = await afterCrash(true);
    expect(inc).toMatchObject({ signature: 'probe-failures', action: { kind: 'alert' } });
    expect(inc.action.reason).toMatch(/the load they shed, not a fault of its own/);
    expect(env.maint).toEqual(['a']);
  });

  it('connections that time out (a full accept backlog) meanwhile: alert; refused ones: isolated', async () => {
    const slow = await afterCrash(true, 'connections');
    expect(slow.inc).toMatchObject({ signature: 'connect-failures', action: { kind: 'alert' } });
    expect(slow.env.maint).toEqual(['a']);
    await ctl?.stop();
    const refused = await afterCrash(false, 'connections');
    expect(refused.inc).toMatchObject({ signature: 'connect-failures', action: { kind: 'isolate' } });
    expect(refused.env.maint).toEqual(['a', 'b']);
  });

  it('probes that are refused are a fault of its own: isolated even then', async () => {
    const { env, inc } = await afterCrash(false);
    expect(inc).toMatchObject({ signature: 'probe-failures', action: { kind: 'isolate' } });
    expect(env.maint).toEqual(['a', 'b']);
  });
});

describe('hostProcessGone', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'proc-'));
  const stat = (pid: number, state: string): void => {
    mkdirSync(path.join(root, String(pid)), { recursive: true });
    const rest = Array.from({ length: 30 }, (_, i) => String(i)).join(' ');
    writeFileSync(path.join(root, String(pid), 'stat'), `${pid} (node main.ts) ${state} ${rest}`);
  };

  it('is true for a missing or zombie process, false for a running or stopped one and without a pid', () => {
    stat(10, 'S');
    stat(11, 'Z');
    stat(12, 'T');
    expect(hostProcessGone(instance('x', { pid: 10 }), root)).toBe(false);
    expect(hostProcessGone(instance('x', { pid: 11 }), root)).toBe(true);
    expect(hostProcessGone(instance('x', { pid: 12 }), root)).toBe(false);
    expect(hostProcessGone(instance('x', { pid: 13 }), root)).toBe(true);
    expect(hostProcessGone(instance('x'), root)).toBe(false);
    // The real /proc: this process runs.
    expect(hostProcessGone(instance('x', { pid: process.pid }))).toBe(false);
  });
});
