/**
 * The sources against the real LocalDriver (unprivileged: plain processes):
 * log lines through followLogs, a SIGSTOP through /proc, a SIGKILL through
 * the driver's change stream.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { InstanceSpec } from '../../runtime/driver.ts';
import { LocalDriver } from '../../runtime/local/local-driver.ts';
import { MemoryInstanceRecords } from '../../runtime/local/records.ts';
import { waitFor } from '../../util/time.ts';
import { SignalHub, defaultSources } from './hub.ts';
import { RecordingSink } from './testing.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'bw-sources-local-'));
// The app's directory as apps have it: readable by the sandboxed instance's own uid.
chmodSync(dir, 0o755);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SCRIPT = `
setTimeout(() => process.stderr.write([
  'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space',
  '\\tat com.example.Leak.grow(Leak.java:12)',
  '\\tat com.example.Leak.main(Leak.java:5)',
].join('\\n') + '\\n'), 1500);
setInterval(() => {}, 1000);
`;

describe('signal sources with the LocalDriver', () => {
  it('delivers log lines, a stop and a crash of a real supervised process', async () => {
    const script = path.join(dir, 'app.js');
    writeFileSync(script, SCRIPT);
    const driver = await LocalDriver.create({
      stateDir: path.join(dir, 'state'),
      site: 'test',
      records: new MemoryInstanceRecords(),
      privileged: false,
    });
    const hub = new SignalHub({
      instances: () => driver.list(),
      sources: defaultSources({ driver, probes: false }),
    });
    const sink = new RecordingSink();
    try {
      const spec: InstanceSpec = {
        id: `src-${process.pid}`,
        site: 'test',
        project: 'p',
        app: 'a',
        workload: 'w',
        ordinal: 0,
        command: [process.execPath, script],
        env: {},
        ports: [],
        restartPolicy: 'Always',
        terminationGracePeriodMs: 1000,
        specHash: 'h1',
      };
      hub.start(sink);
      await driver.ensure(spec);
      const pid = await waitFor('pid', () => driver.get(spec.id)?.pid, { timeoutMs: 10_000 });

      await waitFor('stack trace lines', () => sink.lines.filter((l) => l.stream === 'stderr').length >= 3, {
        timeoutMs: 10_000,
      });
      expect(sink.lines.filter((l) => l.stream === 'stderr').map((l) => l.line)[0]).toContain(
        'java.lang.OutOfMemoryError',
      );

      process.kill(pid, 'SIGSTOP');
      await waitFor('stopped', () => sink.of(spec.id, 'stopped').length === 1, { timeoutMs: 2000 });
      process.kill(pid, 'SIGCONT');

      process.kill(pid, 'SIGKILL');
      await waitFor('exit', () => sink.of(spec.id, 'exit').length === 1, { timeoutMs: 5000 });
      expect(sink.of(spec.id, 'exit')[0]).toMatchObject({ reason: 'signaled', signal: 'SIGKILL' });
      await waitFor('restart', () => sink.of(spec.id, 'restart').length === 1, { timeoutMs: 10_000 });
      expect(sink.of(spec.id, 'restart')[0]?.count).toBe(1);
      expect(sink.of(spec.id, 'memory').length).toBeGreaterThan(0);
    } finally {
      await hub.stop();
      await driver.close({ stopInstances: true });
    }
  }, 40_000);
});
