import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import type { LogListener } from '../../runtime/driver.ts';
import { waitFor } from '../../util/time.ts';
import { SignatureEngine } from '../signatures/engine.ts';
import { SignalHub } from './hub.ts';
import { LogSource } from './logs.ts';
import { MapView, instance } from './testing.ts';

const JAVA_OOM = [
  'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space',
  '\tat java.base/java.util.Arrays.copyOf(Arrays.java:3512)',
  '\tat com.example.Leak.grow(Leak.java:12)',
  '\tat com.example.Leak.main(Leak.java:5)',
];

/**
 * A driver whose `followLogs` reads a real child process's stdout/stderr line
 * by line (the LocalDriver does the same from its log files). Unit-test fake:
 * the LocalDriver's own followLogs has its tests in src/runtime.
 */
class ProcessLogDriver {
  readonly children = new Map<string, ChildProcess>();
  readonly follows = new Map<string, Set<LogListener>>();
  run(id: string, script: string): void {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.set(id, child);
    for (const stream of ['stdout', 'stderr'] as const) {
      readline.createInterface({ input: child[stream]! }).on('line', (line) => {
        for (const l of this.follows.get(id) ?? []) l(stream, line, Date.now());
      });
    }
  }
  followLogs(id: string, listener: LogListener): () => void {
    if (!this.children.has(id)) throw new Error(`unknown instance '${id}'`);
    let set = this.follows.get(id);
    if (!set) this.follows.set(id, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }
}

describe('LogSource', () => {
  let hub: SignalHub | undefined;
  const driver = new ProcessLogDriver();
  afterEach(async () => {
    await hub?.stop();
    hub = undefined;
    for (const c of driver.children.values()) c.kill('SIGKILL');
  });

  it("delivers a real process's Java OutOfMemoryError stack trace, which the engine matches as one event", async () => {
    // The trace comes 400 ms in, well after the source subscribed (it reconciles every 50 ms).
    driver.run(
      'jvm-0',
      `setInterval(() => { console.log('tick'); }, 50);
       setTimeout(() => { process.stderr.write(${JSON.stringify(JAVA_OOM.join('\n') + '\n')}); }, 400);`,
    );
    const view = new MapView(instance('jvm-0'));
    const engine = new SignatureEngine();
    engine.watch('jvm-0');
    const lines: string[] = [];
    const source = new LogSource({ driver, reconcileIntervalMs: 50 });
    hub = new SignalHub({ instances: () => view.list(), sources: [source] });
    hub.start({
      signal: (id, s) => engine.observe(id, s),
      logLine: (id, stream, line, at) => {
        if (stream === 'stderr') lines.push(line);
        engine.observeLogLine(id, stream, line, at);
      },
    });
    await waitFor('stack trace lines', () => lines.length >= JAVA_OOM.length, { timeoutMs: 5000 });
    expect(lines).toEqual(JAVA_OOM);
    const match = await waitFor(
      'java-oom-log match',
      () =>
        engine.evaluate().find((m) => m.rule === 'java-oom-log') ??
        engine.activeMatches('jvm-0').find((m) => m.rule === 'java-oom-log'),
    );
    expect(match.evidence).toContain('OutOfMemoryError');
    expect(match.evidence).toContain('+3 more lines');
    expect(hub.status().delivered['log-line']).toBeGreaterThan(JAVA_OOM.length);
  });

  it('unsubscribes when an instance disappears and on stop', async () => {
    driver.run('a-0', `setInterval(() => console.log('a'), 20);`);
    driver.run('b-0', `setInterval(() => console.log('b'), 20);`);
    const view = new MapView(instance('a-0'), instance('b-0'), instance('unknown-0'));
    const errors: string[] = [];
    const source = new LogSource({
      driver,
      reconcileIntervalMs: 30,
      onError: (_s, e) => errors.push(String(e)),
    });
    const seen: string[] = [];
    source.start({ signal: () => undefined, logLine: (id) => seen.push(id) }, view);
    await waitFor('both followed', () => seen.includes('a-0') && seen.includes('b-0'));
    // An instance the driver does not know yet is retried, with the error reported, not thrown.
    expect(errors.some((e) => e.includes("unknown instance 'unknown-0'"))).toBe(true);
    view.items.delete('b-0');
    await waitFor('b unsubscribed', () => driver.follows.get('b-0')?.size === 0);
    expect(source.status().instances).toBe(1);
    await source.stop();
    expect(driver.follows.get('a-0')?.size).toBe(0);
  });
});
