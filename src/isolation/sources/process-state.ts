/**
 * Stopped processes: `/proc/<pid>/stat` state `T` (SIGSTOP, job control) or
 * `t` (stopped by a tracer). A stopped process keeps its sockets open, so the
 * kernel still accepts connections for it: nothing else sees it until
 * requests time out.
 *
 * One `StoppedSignal` per stop (state enters T/t); a resumed process that is
 * stopped again yields another. The pid is pinned with its start time
 * (field 22): a pid reused by another process, or an instance whose pid
 * changed (restart), starts afresh instead of inheriting the old state.
 */
import { readFile } from 'node:fs/promises';
import { BaseSource, Poller, positiveMs } from './base.ts';
import type { SourceOptions } from './types.ts';

export interface ProcessStateSourceOptions extends SourceOptions {
  /** @default 100 */
  intervalMs?: number;
  /** Where `<pid>/stat` is read. @default '/proc' */
  procRoot?: string;
}

export interface ProcStat {
  state: string;
  /** Start time in clock ticks since boot (field 22): with the pid, identifies the process. */
  startTime: string;
}

/** Parse `/proc/<pid>/stat`; the command may contain spaces and parentheses, so split after the last ')'. */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const f = text.slice(close + 2).split(' ');
  // f[0] is field 3 (state); field 22 (starttime) is f[19].
  const state = f[0];
  const startTime = f[19];
  if (!state || !startTime) return undefined;
  return { state, startTime };
}

interface Tracked {
  pid: number;
  startTime: string;
  stopped: boolean;
}

export class ProcessStateSource extends BaseSource {
  readonly name = 'process-state';
  private readonly poller: Poller;
  private readonly procRoot: string;
  private readonly byId = new Map<string, Tracked>();

  constructor(opts: ProcessStateSourceOptions = {}) {
    super(opts);
    this.procRoot = opts.procRoot ?? '/proc';
    this.poller = new Poller(
      positiveMs('intervalMs', opts.intervalMs ?? 100),
      () => this.poll(),
      (err) => this.fail(err),
    );
  }

  protected onStart(): void {
    this.poller.start();
  }

  protected held(): number {
    return this.byId.size;
  }

  private async poll(): Promise<void> {
    const instances = this.view?.list() ?? [];
    const live = new Set<string>();
    await Promise.all(
      instances.map(async (inst) => {
        if (!inst.pid) return;
        live.add(inst.id);
        const pid = inst.pid;
        let st: ProcStat | undefined;
        try {
          st = parseProcStat(await readFile(`${this.procRoot}/${pid}/stat`, 'utf8'));
        } catch {
          // Gone between list() and the read: the driver reports the exit.
          return;
        }
        if (!st || !this.running) return;
        // The driver may have restarted the instance while we read: the answer is about another process.
        if (this.view?.get(inst.id)?.pid !== pid) return;
        let t = this.byId.get(inst.id);
        if (!t || t.pid !== pid || t.startTime !== st.startTime) {
          t = { pid, startTime: st.startTime, stopped: false };
          this.byId.set(inst.id, t);
        }
        const stopped = st.state === 'T' || st.state === 't';
        if (stopped && !t.stopped)
          this.emit(inst.id, { type: 'stopped', at: Date.now(), state: st.state as 'T' | 't' });
        t.stopped = stopped;
      }),
    );
    for (const id of this.byId.keys()) if (!live.has(id)) this.byId.delete(id);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.poller.stop();
    this.byId.clear();
  }
}
