import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sleep, waitFor } from '../../util/time.ts';
import { ProcessStateSource, parseProcStat } from './process-state.ts';
import { MapView, RecordingSink, instance } from './testing.ts';

describe('parseProcStat', () => {
  it('reads the state and start time after a command containing spaces and parentheses', () => {
    const f = Array.from({ length: 50 }, (_, i) => String(i + 3));
    f[0] = 'T';
    f[19] = '123456';
    expect(parseProcStat(`42 (my (odd) cmd) ${f.join(' ')}`)).toEqual({ state: 'T', startTime: '123456' });
    expect(parseProcStat('garbage')).toBeUndefined();
  });
});

describe('ProcessStateSource', () => {
  const children: ChildProcess[] = [];
  let source: ProcessStateSource | undefined;
  afterEach(async () => {
    await source?.stop();
    source = undefined;
    for (const c of children.splice(0)) c.kill('SIGKILL');
  });

  it('reports a SIGSTOPped real process within 300 ms, once per stop', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    children.push(child);
    const view = new MapView(instance('p1', { pid: child.pid }));
    const sink = new RecordingSink();
    source = new ProcessStateSource({ intervalMs: 100 });
    source.start(sink, view);
    await sleep(250);
    expect(sink.of('p1', 'stopped')).toEqual([]);

    const t0 = Date.now();
    process.kill(child.pid!, 'SIGSTOP');
    await waitFor('stopped signal', () => sink.of('p1', 'stopped').length === 1, {
      timeoutMs: 2000,
      intervalMs: 5,
    });
    expect(Date.now() - t0).toBeLessThan(300);
    expect(sink.of('p1', 'stopped')[0]?.state).toBe('T');
    await sleep(300);
    expect(sink.of('p1', 'stopped')).toHaveLength(1);

    process.kill(child.pid!, 'SIGCONT');
    await sleep(300);
    process.kill(child.pid!, 'SIGSTOP');
    await waitFor('second stop', () => sink.of('p1', 'stopped').length === 2, { timeoutMs: 2000 });
    process.kill(child.pid!, 'SIGCONT');
  });

  it('starts afresh when the pid was reused by another process (start time changed)', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'bw-proc-'));
    try {
      const write = (state: string, start: string): void => {
        mkdirSync(path.join(root, '777'), { recursive: true });
        const f = Array.from({ length: 50 }, () => '0');
        f[0] = state;
        f[19] = start;
        writeFileSync(path.join(root, '777', 'stat'), `777 (x) ${f.join(' ')}`);
      };
      write('T', '100');
      const view = new MapView(instance('p2', { pid: 777 }));
      const sink = new RecordingSink();
      source = new ProcessStateSource({ intervalMs: 20, procRoot: root });
      source.start(sink, view);
      await waitFor('first stop', () => sink.of('p2', 'stopped').length === 1);
      await sleep(100);
      // Same pid, another process (new start time), also stopped: a new stop.
      write('T', '200');
      await waitFor('stop of the new process', () => sink.of('p2', 'stopped').length === 2);
      // The instance no longer has this pid: nothing is reported for it.
      view.set(instance('p2', {}));
      await sleep(100);
      write('t', '300');
      await sleep(100);
      expect(sink.of('p2', 'stopped')).toHaveLength(2);
      expect(source.status().instances).toBe(0);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
