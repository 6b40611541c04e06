/**
 * Exits and restarts from the runtime driver's change stream: an
 * `ExitSignal` when an instance's `lastExit` changes, a `RestartSignal` when
 * its `restarts` count grows. What an instance looked like when first seen is
 * a baseline, never a signal: a control plane that restarts must not report
 * last week's crash again.
 */
import type {
  DriverEvent,
  ExitInfo,
  ExitReason,
  InstanceStatus,
  RuntimeDriver,
} from '../../runtime/driver.ts';
import type { ExitSignalReason } from '../signals/types.ts';
import { BaseSource } from './base.ts';
import type { SourceOptions } from './types.ts';

export interface DriverEventSourceOptions extends SourceOptions {
  driver: Pick<RuntimeDriver, 'watch'>;
}

/**
 * The exit as fault signatures see it. A process that could not start (no such executable, no
 * permission: the driver's `start-failed`, or a shell's 127/126 "not found"/"cannot execute")
 * is a configuration error, its own kind (`start-failure`), not a crash of running code.
 */
export function exitSignalReason(reason: ExitReason, code: number | null = null): ExitSignalReason {
  if (reason === 'start-failed') return 'start-failed';
  if (reason === 'exited' && (code === 127 || code === 126)) return 'start-failed';
  return reason;
}

interface Seen {
  exitKey: string | undefined;
  restarts: number;
}

const exitKey = (e: ExitInfo | undefined): string | undefined =>
  e ? `${e.at}|${e.reason}|${e.code}|${e.signal}` : undefined;

export class DriverEventSource extends BaseSource {
  readonly name = 'driver-events';
  private readonly driver: Pick<RuntimeDriver, 'watch'>;
  private readonly seen = new Map<string, Seen>();
  private unsubscribe: (() => void) | undefined;

  constructor(opts: DriverEventSourceOptions) {
    super(opts);
    this.driver = opts.driver;
  }

  protected onStart(): void {
    for (const inst of this.view?.list() ?? []) this.baseline(inst);
    this.unsubscribe = this.driver.watch((ev) => {
      try {
        this.onEvent(ev);
      } catch (err) {
        this.fail(err);
      }
    });
  }

  protected held(): number {
    return this.seen.size;
  }

  private baseline(inst: InstanceStatus): void {
    this.seen.set(inst.id, { exitKey: exitKey(inst.lastExit), restarts: inst.restarts });
  }

  private onEvent(ev: DriverEvent): void {
    if (!this.running) return;
    if (ev.type === 'removed') {
      this.seen.delete(ev.id);
      return;
    }
    const inst = ev.instance;
    const prev = this.seen.get(inst.id);
    this.baseline(inst);
    // Untracked instances keep a baseline so they start clean once tracked.
    if (!prev || !this.view?.get(inst.id)) return;
    const key = exitKey(inst.lastExit);
    if (inst.lastExit && key !== prev.exitKey) {
      const at = Date.parse(inst.lastExit.at);
      this.emit(inst.id, {
        type: 'exit',
        at: Number.isFinite(at) ? at : Date.now(),
        reason: exitSignalReason(inst.lastExit.reason, inst.lastExit.code),
        code: inst.lastExit.code,
        signal: inst.lastExit.signal,
      });
    }
    if (inst.restarts > prev.restarts) {
      const at = inst.startedAt ? Date.parse(inst.startedAt) : NaN;
      this.emit(inst.id, {
        type: 'restart',
        at: Number.isFinite(at) ? at : Date.now(),
        count: inst.restarts,
      });
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.seen.clear();
  }
}
