import { describe, expect, it } from 'vitest';
import { LogLineAssembler, isContinuationLine } from './log-assembler.ts';

const JAVA_TRACE = [
  'Exception in thread "worker-3" java.lang.OutOfMemoryError: Java heap space',
  '\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)',
  '\tat com.bank.ledger.Journal.append(Journal.java:88)',
  'Caused by: java.lang.IllegalStateException: buffer full',
  '\tat com.bank.ledger.Buffer.put(Buffer.java:12)',
  '\t... 12 more',
];

const NODE_TRACE = [
  'Error: connect ECONNREFUSED 127.0.0.1:5432',
  '    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)',
  '    at process.processTicksAndRejections (node:internal/process/task_queues:82:21)',
];

describe('LogLineAssembler', () => {
  it('groups a multi-line Java stack trace with its cause chain into one event', () => {
    const a = new LogLineAssembler({ flushAfterMs: 50 });
    const out = JAVA_TRACE.flatMap((l, i) => a.push('i1', 'stderr', l, 1000 + i));
    expect(out).toEqual([]); // held: more frames may follow
    const next = a.push('i1', 'stderr', 'INFO next request', 1010);
    expect(next).toHaveLength(1);
    expect(next[0]!.signal).toEqual({ type: 'log', at: 1000, stream: 'stderr', lines: JAVA_TRACE });
  });

  it('groups Node "    at" frames after an Error line', () => {
    const a = new LogLineAssembler();
    NODE_TRACE.forEach((l) => a.push('n1', 'stderr', l, 5));
    const [ev] = a.flushAll();
    expect(ev?.signal.lines).toEqual(NODE_TRACE);
  });

  it('emits a held event once it has been quiet for flushAfterMs, not before', () => {
    const a = new LogLineAssembler({ flushAfterMs: 50 });
    a.push('i1', 'stdout', 'single line', 1000);
    expect(a.flushDue(1049)).toEqual([]);
    expect(a.nextDueAt()).toBe(1050);
    const out = a.flushDue(1050);
    expect(out.map((e) => e.signal.lines)).toEqual([['single line']]);
    expect(a.status()).toEqual({ pendingEvents: 0, pendingLines: 0 });
  });

  it('keeps stdout and stderr and instances apart', () => {
    const a = new LogLineAssembler();
    a.push('i1', 'stderr', 'Error: boom', 0);
    a.push('i1', 'stdout', 'GET /x 200', 1);
    a.push('i2', 'stderr', 'Error: other', 1);
    a.push('i1', 'stderr', '    at f (a.js:1:1)', 2);
    const all = a.flushAll();
    const i1err = all.find((e) => e.instanceId === 'i1' && e.signal.stream === 'stderr');
    expect(i1err?.signal.lines).toEqual(['Error: boom', '    at f (a.js:1:1)']);
    expect(all).toHaveLength(3);
  });

  it('caps an event at maxLines and starts a new one', () => {
    const a = new LogLineAssembler({ maxLines: 3 });
    a.push('i', 'stderr', 'Error: x', 0);
    a.push('i', 'stderr', '    at a (a.js:1:1)', 0);
    const out = a.push('i', 'stderr', '    at b (a.js:1:1)', 0);
    expect(out[0]?.signal.lines).toHaveLength(3);
    a.push('i', 'stderr', '    at c (a.js:1:1)', 0);
    expect(a.flushAll()[0]?.signal.lines).toEqual(['    at c (a.js:1:1)']);
  });

  it('recognises V8 fatal-error native frames as continuation', () => {
    expect(isContinuationLine(' 1: 0xb7a940 node::Abort() [node]')).toBe(true);
    expect(
      isContinuationLine('FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory'),
    ).toBe(false);
    expect(isContinuationLine('at the end of the day')).toBe(false);
  });

  it('rejects a negative flush delay with the option name', () => {
    expect(() => new LogLineAssembler({ flushAfterMs: -1 })).toThrow(/flushAfterMs must be >= 0/);
  });
});
