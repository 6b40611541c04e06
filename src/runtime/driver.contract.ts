/**
 * The contract every RuntimeDriver runs (like hono's common router cases):
 *
 * ```ts
 * runDriverContract({
 *   name: 'local (unprivileged)',
 *   site: 'test',
 *   newDriver: () => LocalDriver.create({ ... }),
 *   app: { command: [process.execPath, 'src/runtime/local/testdata/app.ts'] },
 *   badApp: { command: ['no-such-binary-xyz'], badName: 'no-such-binary-xyz' },
 * });
 * ```
 *
 * The test app is `src/runtime/local/testdata/app.ts` (or an image with the
 * same behaviour for Kubernetes): an HTTP server on $PORT whose misbehaviour
 * is selected with APP_* environment variables (and which prints on demand
 * through /say). Assertions use only the
 * RuntimeDriver interface and the network (no signal or /proc read by pid), so
 * they hold for processes and pods alike; a status `pid` is compared only where
 * the driver declares `pids` (the slow-start case: the same run by its pid, by
 * its start time everywhere).
 *
 * Capability gates. Some environments cannot do everything: kwok-simulated
 * Kubernetes nodes run no container, so nothing answers on a pod IP, exits,
 * restarts or logs. The driver declares that in `capabilities()` (optional
 * fields `processes`, `logs`, `logStreams`, `quarantineSuspendsSupervision`;
 * absent = available), and the suite gates on the declaration, never on the driver's
 * kind. Gates apply to whole tests only: a gated test is reported as skipped
 * with the capability's reason (`ctx.skip(note)`, listed by the summary
 * reporter), never as passed. A check that needs a capability the rest of
 * its case does not is its own test, so each part passes or skips on its
 * own. The gated tests:
 *
 * | capability | tests gated |
 * |---|---|
 * | processes | the instance's env / ports / host IP (and after a replacement); a removed instance stops answering; a quarantined instance still answers; a removed quarantined instance stops answering; crash restart; crash-loop backoff; Never; OnFailure; liveness restart; slow start; start-failed naming the command/image |
 * | logs | logs tail per stream; followLogs |
 * | logStreams (and processes, logs) | followLogs (each line with its stream) |
 * | quarantineSuspendsSupervision (and processes) | a quarantined instance is neither liveness-killed nor restarted |
 */
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import type {
  DriverCapabilities,
  DriverEvent,
  InstanceSpec,
  InstanceStatus,
  RuntimeDriver,
} from './driver.ts';
import { sleep, waitFor } from '../util/time.ts';

export interface DriverContractOptions {
  name: string;
  site: string;
  /** A fresh driver per test; the contract closes it with `stopInstances: true`. */
  newDriver: () => Promise<RuntimeDriver>;
  /** How to run the test app: `command` (local) or `image` (Kubernetes). */
  app: Pick<InstanceSpec, 'command' | 'image' | 'cwd'>;
  /** Something that cannot start; `badName` must appear in the reported message. */
  badApp: Pick<InstanceSpec, 'command' | 'image'> & { badName: string };
  /** Multiplies every wait, for slower drivers. @default 1 */
  timeScale?: number;
  /** Tests to skip: test name -> the reason, reported as the skip's note. */
  skip?: Record<string, string>;
  /**
   * Capabilities this kind of driver lacks by design on every setup (gate -> why): the
   * tests that need one are not registered at all, and the caller's docs say why. A gate
   * for a capability the test setup merely lacks (kwok nodes) stays a reported skip.
   */
  never?: Partial<Record<Gate, string>>;
}

type Gate = 'processes' | 'logs' | 'logStreams' | 'quarantineSuspendsSupervision';

/** The reason a gate is closed, or undefined when the capability is available (or not declared). */
function closed(caps: DriverCapabilities, gate: Gate | 'pids'): string | undefined {
  const c = caps[gate];
  return c && !c.available ? `${gate} unavailable: ${c.reason ?? 'no reason given'}` : undefined;
}

export function runDriverContract(o: DriverContractOptions): void {
  const scale = o.timeScale ?? 1;
  const t = (ms: number): number => ms * scale;

  describe(`RuntimeDriver contract: ${o.name}`, () => {
    let driver: RuntimeDriver;
    const test = (name: string, fn: () => Promise<void>, needs: Gate[] = []): void => {
      if (needs.some((g) => o.never?.[g] !== undefined)) return;
      it(name, async (ctx: TestContext) => {
        const skipped = o.skip?.[name];
        if (skipped !== undefined) ctx.skip(`skipped by the caller: ${skipped}`);
        const caps = driver.capabilities();
        for (const g of needs) {
          const why = closed(caps, g);
          if (why) ctx.skip(`gated: ${why}`);
        }
        await fn();
      });
    };

    beforeEach(async () => {
      driver = await o.newDriver();
    });
    afterEach(async () => {
      await driver.close({ stopInstances: true });
    });

    const spec = (name: string, over: Partial<InstanceSpec> = {}): InstanceSpec => {
      const id = `ct-${name}-${randomBytes(3).toString('hex')}`;
      return {
        id,
        site: o.site,
        project: 'contract',
        app: 'app',
        workload: name,
        ordinal: 0,
        ...o.app,
        env: {},
        ports: [{ name: 'http', port: 8080 }],
        restartPolicy: 'Always',
        terminationGracePeriodMs: 2000,
        specHash: 'h1',
        ...over,
      };
    };
    const fast = { intervalMs: 100, timeoutMs: 500, failureThreshold: 2, successThreshold: 1 };
    const readiness = { http: { path: '/healthz', port: 'http' }, ...fast };
    const until = (what: string, id: string, pred: (s: InstanceStatus) => boolean, ms = 10_000) =>
      waitFor(
        what,
        () => {
          const s = driver.get(id);
          return s && pred(s) ? s : undefined;
        },
        { timeoutMs: t(ms) },
      );

    test('ensure starts an instance that turns ready through its readiness probe', async () => {
      const s = spec('ready', { env: { APP_READY_AFTER_MS: '300', GREETING: 'hi' }, readiness });
      const first = await driver.ensure(s);
      expect(first.phase).toBe('starting');
      expect(first.ready).toBe(false);
      const st = await until('ready', s.id, (x) => x.phase === 'ready');
      expect(st.ready).toBe(true);
      expect(st.ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      expect(st.ports.http).toBeGreaterThan(0);
      expect(driver.list().filter((x) => x.id === s.id)).toMatchObject([{ id: s.id, ready: true }]);
    });

    test(
      'the instance sees its env, PORT, BULWARK_PORT_<NAME> and BULWARK_HOST_IP',
      async () => {
        const s = spec('env', { env: { GREETING: 'hi' }, readiness });
        await driver.ensure(s);
        const st = await until('ready', s.id, (x) => x.phase === 'ready');
        const env = JSON.parse(await get(st.ip, st.ports.http!, '/env')) as Record<string, string>;
        expect(env.GREETING).toBe('hi');
        expect(env.BULWARK_INSTANCE_ID).toBe(s.id);
        expect(env.PORT).toBe(String(st.ports.http));
        expect(env.BULWARK_PORT_HTTP).toBe(String(st.ports.http));
        expect(env.BULWARK_HOST_IP).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
        // And a replacement with a changed spec sees the new env.
        await driver.ensure({ ...s, env: { GREETING: 'hello' }, specHash: 'h2' });
        const b = await until('replaced', s.id, (x) => x.phase === 'ready' && x.specHash === 'h2');
        const env2 = JSON.parse(await get(b.ip, b.ports.http!, '/env')) as Record<string, string>;
        expect(env2.GREETING).toBe('hello');
      },
      ['processes'],
    );

    test('ensure is idempotent for the same spec hash', async () => {
      const s = spec('idem', { readiness: { tcp: { port: 'http' }, ...fast } });
      await driver.ensure(s);
      const a = await until('ready', s.id, (x) => x.phase === 'ready');
      const b = await driver.ensure(s);
      expect(b.startedAt).toBe(a.startedAt);
      expect(b.restarts).toBe(0);
      expect(driver.list().filter((x) => x.id === s.id)).toHaveLength(1);
    });

    test('ensure with a changed spec hash replaces the instance', async () => {
      const s = spec('replace', { readiness, env: { V: '1' } });
      await driver.ensure(s);
      const a = await until('ready', s.id, (x) => x.phase === 'ready');
      await driver.ensure({ ...s, env: { V: '2' }, specHash: 'h2' });
      const b = await until('ready again', s.id, (x) => x.phase === 'ready' && x.specHash === 'h2');
      expect(b.restarts).toBe(0);
      expect(driver.list().filter((x) => x.id === s.id)).toHaveLength(1);
      expect(a.specHash).toBe('h1');
    });

    test('remove stops the instance, forgets it and is idempotent', async () => {
      const s = spec('remove', {
        readiness,
        env: { APP_IGNORE_SIGTERM: '1' },
        terminationGracePeriodMs: 300,
      });
      await driver.ensure(s);
      await until('ready', s.id, (x) => x.phase === 'ready');
      const events: DriverEvent[] = [];
      driver.watch((e) => events.push(e));
      const t0 = Date.now();
      await driver.remove(s.id);
      expect(Date.now() - t0).toBeLessThan(t(5000)); // SIGKILL after the 300 ms grace, not the default 10 s
      expect(driver.get(s.id)).toBeUndefined();
      expect(events.some((e) => e.type === 'removed' && e.id === s.id)).toBe(true);
      expect(driver.list().some((x) => x.id === s.id)).toBe(false);
      await driver.remove(s.id);
    });

    test(
      'a removed instance stops answering on its address',
      async () => {
        const s = spec('remove-addr', {
          readiness,
          env: { APP_IGNORE_SIGTERM: '1' },
          terminationGracePeriodMs: 300,
        });
        await driver.ensure(s);
        const st = await until('ready', s.id, (x) => x.phase === 'ready');
        // It answers first, so the refusal below is the removal's doing, not a wrong address.
        expect(await get(st.ip, st.ports.http!, '/live')).toBe('alive');
        await driver.remove(s.id);
        await expect(get(st.ip, st.ports.http!, '/live', 500)).rejects.toThrow();
      },
      ['processes'],
    );

    test(
      'a crashed instance is restarted and its restarts are counted',
      async () => {
        const s = spec('crash', { readiness });
        await driver.ensure(s);
        const st = await until('ready', s.id, (x) => x.phase === 'ready');
        await get(st.ip, st.ports.http!, '/crash');
        const after = await until('restarted and ready', s.id, (x) => x.restarts >= 1 && x.phase === 'ready');
        expect(after.lastExit?.reason).toBe('exited');
        expect(after.lastExit?.code).toBe(3);
      },
      ['processes'],
    );

    test(
      'a crash loop backs off instead of restarting hot',
      async () => {
        const s = spec('loop', { env: { APP_EXIT_AFTER_MS: '0' } });
        await driver.ensure(s);
        const b = await until('backoff', s.id, (x) => x.phase === 'backoff');
        expect(b.nextRestartAt).toBeDefined();
        expect(Date.parse(b.nextRestartAt!)).toBeGreaterThan(Date.parse(b.lastExit!.at));
        await sleep(t(3000));
        const later = driver.get(s.id)!;
        expect(later.restarts).toBeGreaterThanOrEqual(1);
        expect(later.restarts).toBeLessThanOrEqual(5);
      },
      ['processes'],
    );

    test(
      'Never policy leaves a failed instance failed, and exit 0 succeeded',
      async () => {
        const bad = spec('never-bad', {
          restartPolicy: 'Never',
          env: { APP_EXIT_AFTER_MS: '100', APP_EXIT_CODE: '5' },
        });
        const good = spec('never-ok', {
          restartPolicy: 'Never',
          env: { APP_EXIT_AFTER_MS: '100', APP_EXIT_CODE: '0' },
        });
        await driver.ensure(bad);
        await driver.ensure(good);
        const f = await until('failed', bad.id, (x) => x.phase === 'failed');
        expect(f.lastExit).toMatchObject({ reason: 'exited', code: 5 });
        const g = await until('succeeded', good.id, (x) => x.phase === 'succeeded');
        expect(g.lastExit?.code).toBe(0);
        await sleep(t(1000));
        expect(driver.get(bad.id)).toMatchObject({ phase: 'failed', restarts: 0 });
      },
      ['processes'],
    );

    test(
      'OnFailure policy restarts failures but not success',
      async () => {
        const ok = spec('onfail-ok', {
          restartPolicy: 'OnFailure',
          env: { APP_EXIT_AFTER_MS: '100', APP_EXIT_CODE: '0' },
        });
        const bad = spec('onfail-bad', {
          restartPolicy: 'OnFailure',
          env: { APP_EXIT_AFTER_MS: '100', APP_EXIT_CODE: '1' },
        });
        await driver.ensure(ok);
        await driver.ensure(bad);
        await until('succeeded', ok.id, (x) => x.phase === 'succeeded');
        await until('restarted', bad.id, (x) => x.restarts >= 1);
      },
      ['processes'],
    );

    test(
      'liveness failure restarts the instance with reason liveness-failed',
      async () => {
        const s = spec('liveness', {
          env: { APP_HANG_AFTER_MS: '600' },
          terminationGracePeriodMs: 500,
          liveness: {
            http: { path: '/live', port: 'http' },
            intervalMs: 150,
            timeoutMs: 200,
            failureThreshold: 2,
          },
        });
        await driver.ensure(s);
        const st = await until('restart after liveness failure', s.id, (x) => x.restarts >= 1, 15_000);
        expect(st.lastExit?.reason).toBe('liveness-failed');
      },
      ['processes'],
    );

    test(
      'liveness does not kill an instance that has not been ready yet (slow start)',
      async () => {
        const s = spec('slowstart', {
          readiness,
          // Answers neither readiness nor liveness from the start: a start-up that takes long.
          env: { APP_HANG_AFTER_MS: '0' },
          liveness: {
            http: { path: '/live', port: 'http' },
            intervalMs: 150,
            timeoutMs: 200,
            failureThreshold: 2,
          },
        });
        await driver.ensure(s);
        // The run has started: it has a pid, or (a driver without pids) its process is
        // reported running. From then on, a driver applying liveness would kill it within ~2
        // probe periods (Kubernetes rounds them up to 1 s: well within t(2500)).
        const pids = !closed(driver.capabilities(), 'pids');
        const first = await until('the run started', s.id, (x) =>
          pids ? x.pid !== undefined : x.phase === 'running',
        );
        await sleep(t(2500));
        const st = driver.get(s.id)!;
        // Not restarted: no restart counted, no exit, never ready, and the same run: its start
        // time, and its pid where the driver reports pids (the Kubernetes API has none).
        expect(st).toMatchObject({ ready: false, restarts: 0, startedAt: first.startedAt });
        expect(['starting', 'running']).toContain(st.phase);
        expect(st.lastExit).toBeUndefined();
        expect(first.startedAt).toBeDefined();
        if (pids) expect(st.pid).toBe(first.pid);
      },
      ['processes'],
    );

    test(
      'logs returns the last lines per stream',
      async () => {
        const s = spec('logs', { readiness, env: { APP_LINES: '50' } });
        await driver.ensure(s);
        await until('ready', s.id, (x) => x.phase === 'ready');
        const out = await waitFor('50 lines', async () => {
          const l = await driver.logs(s.id, { tail: 3, stream: 'stdout' });
          return l.at(-1) === 'line 50' ? l : undefined;
        });
        expect(out).toEqual(['line 48', 'line 49', 'line 50']);
        expect(await driver.logs(s.id, { stream: 'stderr' })).toContain('stderr hello');
        const both = await driver.logs(s.id, { tail: 100 });
        expect(both).toContain('stderr hello');
        expect(both).toContain('line 1');
      },
      ['logs'],
    );

    test('watch reports phase changes, and unsubscribe stops them', async () => {
      const s = spec('watch', { readiness });
      const seen: string[] = [];
      const off = driver.watch((e) => {
        if (e.type === 'changed' && e.instance.id === s.id) seen.push(e.instance.phase);
      });
      await driver.ensure(s);
      await waitFor('ready event', () => seen.includes('ready'), { timeoutMs: t(10_000) });
      off();
      const n = seen.length;
      await driver.remove(s.id);
      expect(seen.length).toBe(n);
      expect(driver.list().some((x) => x.id === s.id)).toBe(false);
    });

    test('quarantine takes the instance out of readiness without a restart; unquarantine brings it back', async () => {
      const s = spec('quar', { readiness });
      await driver.ensure(s);
      const before = await until('ready', s.id, (x) => x.phase === 'ready');
      await expect(driver.quarantine('ct-no-such-instance', { reason: 'x' })).rejects.toThrow(
        /ct-no-such-instance/,
      );
      const q = await driver.quarantine(s.id, { reason: 'incident 7: heap leak' });
      expect(q).toMatchObject({
        phase: 'quarantined',
        ready: false,
        quarantine: { reason: 'incident 7: heap leak' },
      });
      expect(Date.parse(q.quarantine!.since)).not.toBeNaN();
      const again = await driver.quarantine(s.id, { reason: 'incident 7: heap leak' });
      expect(again.quarantine?.since).toBe(q.quarantine!.since);
      await sleep(t(600)); // several readiness intervals: a running probe would flip it back to ready
      expect(driver.get(s.id)).toMatchObject({
        phase: 'quarantined',
        ready: false,
        restarts: 0,
        startedAt: before.startedAt,
      });
      const back = await driver.unquarantine(s.id);
      expect(back.quarantine).toBeUndefined();
      expect(back.phase).not.toBe('quarantined');
      await until('ready again', s.id, (x) => x.phase === 'ready');
      expect(driver.get(s.id)).toMatchObject({ restarts: 0, startedAt: before.startedAt });
      expect((await driver.unquarantine(s.id)).phase).toBe('ready');
      await expect(driver.unquarantine('ct-no-such-instance')).rejects.toThrow(/ct-no-such-instance/);
    });

    test(
      'a quarantined instance is neither liveness-killed nor restarted; unquarantine restarts it',
      async () => {
        const s = spec('quar-exit', {
          env: { APP_HANG_AFTER_MS: '1000' },
          terminationGracePeriodMs: 500,
          liveness: {
            http: { path: '/live', port: 'http' },
            intervalMs: 150,
            timeoutMs: 200,
            failureThreshold: 2,
          },
        });
        const st = await driver.ensure(s);
        await driver.quarantine(s.id, { reason: 'hangs' });
        // Unquarantined, the liveness probe would kill it about 1.5 s after start.
        await sleep(t(2500));
        const q = driver.get(s.id)!;
        expect(q).toMatchObject({ phase: 'quarantined', restarts: 0 });
        expect(q.lastExit).toBeUndefined();
        const env = JSON.parse(await get(q.ip, q.ports.http!, '/env')) as Record<string, string>;
        expect(env.BULWARK_INSTANCE_ID).toBe(st.id);
        // It exits while quarantined: recorded, but not restarted.
        await get(q.ip, q.ports.http!, '/crash');
        const exited = await until('exit recorded', s.id, (x) => x.lastExit !== undefined);
        expect(exited).toMatchObject({
          phase: 'quarantined',
          restarts: 0,
          lastExit: { reason: 'exited', code: 3 },
        });
        await sleep(t(1000));
        expect(driver.get(s.id)).toMatchObject({ phase: 'quarantined', restarts: 0 });
        await driver.unquarantine(s.id);
        await until('restarted', s.id, (x) => x.restarts >= 1 && x.phase !== 'quarantined');
      },
      ['processes', 'quarantineSuspendsSupervision'],
    );

    test(
      'a quarantined instance still answers: the same process, neither signalled nor replaced',
      async () => {
        const s = spec('quar-live', { readiness });
        await driver.ensure(s);
        const before = await until('ready', s.id, (x) => x.phase === 'ready');
        await driver.quarantine(s.id, { reason: 'incident 7: heap leak' });
        await sleep(t(600)); // several readiness intervals: time for a wrongly sent signal to land
        // Same address, same start, no restart: the process that served before serves now.
        expect(driver.get(s.id)).toMatchObject({
          phase: 'quarantined',
          ip: before.ip,
          restarts: 0,
          startedAt: before.startedAt,
        });
        expect(await get(before.ip, before.ports.http!, '/live')).toBe('alive');
      },
      ['processes'],
    );

    test('remove stops a quarantined instance', async () => {
      const s = spec('quar-rm', {
        readiness,
        env: { APP_IGNORE_SIGTERM: '1' },
        terminationGracePeriodMs: 300,
      });
      await driver.ensure(s);
      await until('ready', s.id, (x) => x.phase === 'ready');
      await driver.quarantine(s.id, { reason: 'x' });
      await driver.remove(s.id);
      expect(driver.get(s.id)).toBeUndefined();
      expect(driver.list().some((x) => x.id === s.id)).toBe(false);
    });

    test(
      'a removed quarantined instance stops answering on its address',
      async () => {
        const s = spec('quar-rm-addr', {
          readiness,
          env: { APP_IGNORE_SIGTERM: '1' },
          terminationGracePeriodMs: 300,
        });
        await driver.ensure(s);
        const st = await until('ready', s.id, (x) => x.phase === 'ready');
        await driver.quarantine(s.id, { reason: 'x' });
        expect(await get(st.ip, st.ports.http!, '/live')).toBe('alive');
        await driver.remove(s.id);
        await expect(get(st.ip, st.ports.http!, '/live', 500)).rejects.toThrow();
      },
      ['processes'],
    );

    test(
      'followLogs delivers each new line of both streams once, across a restart, until unsubscribed',
      async () => {
        const s = spec('follow', { readiness });
        await driver.ensure(s);
        const st = await until('ready', s.id, (x) => x.phase === 'ready');
        await waitFor(
          'startup lines logged',
          async () => (await driver.logs(s.id)).includes('stderr hello'),
          {
            timeoutMs: t(5000),
          },
        );
        expect(() => driver.followLogs('ct-no-such-instance', () => {})).toThrow(/ct-no-such-instance/);
        const a: { stream: string; line: string; at: number }[] = [];
        const b: string[] = [];
        const offA = driver.followLogs(s.id, (stream, line, at) => a.push({ stream, line, at }));
        const offB = driver.followLogs(s.id, (_stream, line) => b.push(line));
        const t0 = Date.now();
        await get(st.ip, st.ports.http!, '/say?text=hello-out');
        await get(st.ip, st.ports.http!, '/say?text=hello-err&stream=stderr');
        await waitFor('both lines followed', () => a.length >= 2, { timeoutMs: t(5000) });
        expect(Date.now() - t0).toBeLessThan(t(2000));
        expect(a.filter((x) => x.stream === 'stdout').map((x) => x.line)).toEqual(['hello-out']);
        expect(a.filter((x) => x.stream === 'stderr').map((x) => x.line)).toEqual(['hello-err']);
        for (const x of a) {
          expect(x.at).toBeGreaterThanOrEqual(t0 - 1000);
          expect(x.at).toBeLessThanOrEqual(Date.now());
        }
        // Across a restart: the new run's startup lines arrive, the old ones were never replayed.
        await get(st.ip, st.ports.http!, '/crash');
        await until('restarted', s.id, (x) => x.restarts === 1 && x.phase === 'ready');
        await waitFor(
          'lines of the new run',
          () => a.some((x) => x.stream === 'stderr' && x.line === 'stderr hello'),
          {
            timeoutMs: t(5000),
          },
        );
        expect(a.filter((x) => x.line === 'stderr hello')).toHaveLength(1);
        expect(a.filter((x) => x.line.startsWith('listening on'))).toHaveLength(1);
        offA();
        const now = driver.get(s.id)!;
        await get(now.ip, now.ports.http!, '/say?text=after-off');
        await waitFor('second listener still follows', () => b.includes('after-off'), { timeoutMs: t(5000) });
        await sleep(t(300));
        expect(a.some((x) => x.line === 'after-off')).toBe(false);
        expect(b.filter((l) => l === 'hello-out')).toHaveLength(1);
        offB();
      },
      ['processes', 'logs', 'logStreams'],
    );

    test(
      'a command that cannot start is reported as start-failed naming it',
      async () => {
        const s = spec('bad', { ...o.badApp, restartPolicy: 'Never' });
        delete (s as { badName?: string }).badName;
        await driver.ensure(s).catch(() => {});
        const st = await until('start failure', s.id, (x) => x.lastExit?.reason === 'start-failed');
        expect(['failed', 'backoff']).toContain(st.phase);
        expect(st.lastExit?.message).toContain(o.badApp.badName);
        // The driver keeps working.
        const ok = spec('after-bad', { readiness });
        await driver.ensure(ok);
        await until('ready', ok.id, (x) => x.phase === 'ready');
      },
      ['processes'],
    );
  });
}

/** GET over a fresh connection; rejects on connection errors and non-2xx. */
export function get(host: string, port: number, path: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        if ((res.statusCode ?? 0) >= 300) reject(new Error(`GET ${path} -> ${res.statusCode}`));
        else resolve(body);
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
