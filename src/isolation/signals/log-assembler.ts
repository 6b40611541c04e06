/**
 * Groups multi-line stack traces from an instance's stdout/stderr into one
 * `LogSignal`, so that a log-pattern rule sees "java.lang.OutOfMemoryError"
 * together with its frames (one incident, one piece of evidence) instead of
 * forty unrelated lines.
 *
 * A line is a continuation of the previous event when it looks like a frame:
 * - Java: `\tat com.x.Y.m(Y.java:10)`, `Caused by: ...`, `... 12 more`, `Suppressed: ...`;
 * - Node: `    at fn (file.js:1:2)` after an `Error: ...` line;
 * - V8 fatal errors: ` 1: 0xb7a940 node::Abort() [node]` native frames.
 * Anything else starts a new event. Because the next line may still be a
 * frame, an event is held until the next non-continuation line arrives or it
 * has been quiet for `flushAfterMs`.
 *
 * Passive: no timers. The owner calls `flushDue(now)` from its evaluation
 * tick (or schedules one at `nextDueAt()`).
 */
import type { LogSignal, LogStream } from './types.ts';

export interface LogLineAssemblerOptions {
  /** Hold an event this long after its last line for more frames. @default 50 */
  flushAfterMs?: number;
  /** An event is emitted once it holds this many lines; later frames start a new event. @default 200 */
  maxLines?: number;
}

export interface AssembledLog {
  instanceId: string;
  signal: LogSignal;
}

const CONTINUATION_RES: readonly RegExp[] = [
  /^\s+at\s/, // Java and Node stack frames
  /^\s*Caused by:/, // Java exception chain
  /^\s*Suppressed:/, // Java suppressed exceptions
  /^\s*\.\.\. \d+ (more|common frames omitted)/, // Java elided frames
  /^\s*\d+: 0x[0-9a-f]+ /, // V8 native frames after "FATAL ERROR"
];

/** True when `line` continues the previous log event (a stack frame or exception chain link). */
export function isContinuationLine(line: string): boolean {
  return CONTINUATION_RES.some((re) => re.test(line));
}

interface Pending {
  instanceId: string;
  stream: LogStream;
  at: number;
  lastAt: number;
  lines: string[];
}

export class LogLineAssembler {
  private readonly flushAfterMs: number;
  private readonly maxLines: number;
  /** Keyed by `${instanceId}\0${stream}`: stdout and stderr interleave independently. */
  private readonly pending = new Map<string, Pending>();

  constructor(opts: LogLineAssemblerOptions = {}) {
    this.flushAfterMs = opts.flushAfterMs ?? 50;
    this.maxLines = opts.maxLines ?? 200;
    if (!(this.flushAfterMs >= 0)) throw new Error(`flushAfterMs must be >= 0 (got ${this.flushAfterMs})`);
    if (!(this.maxLines >= 1)) throw new Error(`maxLines must be >= 1 (got ${this.maxLines})`);
  }

  /** Add one line (without its newline). Returns the events this line completed (0..2). */
  push(instanceId: string, stream: LogStream, line: string, at: number): AssembledLog[] {
    const out: AssembledLog[] = [];
    const key = `${instanceId}\0${stream}`;
    const cur = this.pending.get(key);
    if (cur && isContinuationLine(line) && cur.lines.length < this.maxLines) {
      cur.lines.push(line);
      cur.lastAt = at;
      if (cur.lines.length >= this.maxLines) {
        this.pending.delete(key);
        out.push(toEvent(cur));
      }
      return out;
    }
    if (cur) {
      this.pending.delete(key);
      out.push(toEvent(cur));
    }
    this.pending.set(key, { instanceId, stream, at, lastAt: at, lines: [line] });
    return out;
  }

  /** Emit the events that have been quiet for `flushAfterMs` at `now`. */
  flushDue(now: number): AssembledLog[] {
    const out: AssembledLog[] = [];
    for (const [key, p] of this.pending) {
      if (now - p.lastAt >= this.flushAfterMs) {
        this.pending.delete(key);
        out.push(toEvent(p));
      }
    }
    return out;
  }

  /** Emit every held event (instance gone, shutdown). With `instanceId`, only that instance's. */
  flushAll(instanceId?: string): AssembledLog[] {
    const out: AssembledLog[] = [];
    for (const [key, p] of this.pending) {
      if (instanceId !== undefined && p.instanceId !== instanceId) continue;
      this.pending.delete(key);
      out.push(toEvent(p));
    }
    return out;
  }

  /** When the earliest held event becomes due, or undefined when nothing is held. */
  nextDueAt(): number | undefined {
    let next: number | undefined;
    for (const p of this.pending.values()) {
      const due = p.lastAt + this.flushAfterMs;
      if (next === undefined || due < next) next = due;
    }
    return next;
  }

  status(): { pendingEvents: number; pendingLines: number } {
    let lines = 0;
    for (const p of this.pending.values()) lines += p.lines.length;
    return { pendingEvents: this.pending.size, pendingLines: lines };
  }
}

function toEvent(p: Pending): AssembledLog {
  return { instanceId: p.instanceId, signal: { type: 'log', at: p.at, stream: p.stream, lines: p.lines } };
}
