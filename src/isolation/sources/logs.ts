/**
 * stdout/stderr lines of every tracked instance, from the runtime driver's
 * `followLogs`, delivered raw to `sink.logLine` (the engine groups stack
 * traces into one event itself). Subscriptions follow the instance set:
 * opened when an instance appears, closed when it disappears or on stop.
 */
import type { RuntimeDriver } from '../../runtime/driver.ts';
import { BaseSource, Poller, positiveMs } from './base.ts';
import type { SourceOptions } from './types.ts';

export interface LogSourceOptions extends SourceOptions {
  driver: Pick<RuntimeDriver, 'followLogs'>;
  /** How often the subscriptions are matched to the instance set. @default 250 */
  reconcileIntervalMs?: number;
}

export class LogSource extends BaseSource {
  readonly name = 'logs';
  private readonly driver: Pick<RuntimeDriver, 'followLogs'>;
  private readonly poller: Poller;
  private readonly subs = new Map<string, () => void>();
  private lines = 0;

  constructor(opts: LogSourceOptions) {
    super(opts);
    this.driver = opts.driver;
    this.poller = new Poller(
      positiveMs('reconcileIntervalMs', opts.reconcileIntervalMs ?? 250),
      () => this.reconcile(),
      (err) => this.fail(err),
    );
  }

  protected onStart(): void {
    this.poller.start();
  }

  protected held(): number {
    return this.subs.size;
  }

  /** Lines delivered so far. */
  linesDelivered(): number {
    return this.lines;
  }

  private reconcile(): void {
    if (!this.running) return;
    const want = new Set((this.view?.list() ?? []).map((i) => i.id));
    for (const [id, unsub] of this.subs) {
      if (want.has(id)) continue;
      this.subs.delete(id);
      this.safeUnsub(unsub);
    }
    for (const id of want) {
      if (this.subs.has(id)) continue;
      try {
        const unsub = this.driver.followLogs(id, (stream, line, at) => {
          if (!this.running) return;
          this.lines++;
          try {
            this.sink?.logLine(id, stream, line, at);
          } catch (err) {
            this.fail(err);
          }
        });
        this.subs.set(id, unsub);
      } catch (err) {
        // Retried on the next round (the instance may not be known to the driver yet).
        this.fail(err);
      }
    }
  }

  private safeUnsub(unsub: () => void): void {
    try {
      unsub();
    } catch (err) {
      this.fail(err);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.poller.stop();
    for (const unsub of this.subs.values()) this.safeUnsub(unsub);
    this.subs.clear();
  }
}
