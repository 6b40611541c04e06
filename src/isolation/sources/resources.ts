/**
 * Memory and CPU throttling from the runtime driver's accounting (cgroup
 * counters), sampled every ~100 ms: a `MemorySignal` per sample and, at most
 * every ~250 ms, a `CpuThrottleSignal` with the deltas of throttled periods /
 * all periods since the previous one.
 *
 * Why 100 ms: the memory-leak signature fits a line through 2 s of samples
 * and checks that every part of the window rises; 20 samples instead of 8
 * make that robust to one late sample and let it fire sooner after a leak
 * starts. A sample is two small cgroup file reads. CPU deltas need longer:
 * one CFS period is 100 ms, so a 100 ms delta would be all or nothing.
 */
import type { InstanceStatus } from '../../runtime/driver.ts';
import { BaseSource, Poller, positiveMs } from './base.ts';
import type { SourceOptions } from './types.ts';

/**
 * The accounting this source needs, a subset of what `RuntimeDriver.stats(id)`
 * returns (cgroup `memory.usage_in_bytes`/`limit_in_bytes`, `cpu.stat`
 * `nr_throttled`/`nr_periods`).
 */
export interface ResourceSample {
  memoryBytes: number;
  /** Absent or non-finite when unlimited. */
  memoryLimitBytes?: number;
  /** Cumulative CFS periods in which the group was throttled (`nr_throttled`). */
  cpuThrottledPeriods?: number;
  /** Cumulative CFS periods in which the group was runnable (`nr_periods`). */
  cpuPeriods?: number;
}

export interface ResourceSourceOptions extends SourceOptions {
  /** Usually `(id) => driver.stats(id)`; undefined when the instance has no accounting (not running). */
  stats: (id: string) => ResourceSample | undefined | Promise<ResourceSample | undefined>;
  /** @default 100 */
  intervalMs?: number;
  /** Shortest span of one CPU throttling delta. @default 250 */
  cpuIntervalMs?: number;
}

interface CpuBase {
  pid: number | undefined;
  throttled: number;
  periods: number;
  at: number;
}

export class ResourceSource extends BaseSource {
  readonly name = 'resources';
  private readonly poller: Poller;
  private readonly stats: ResourceSourceOptions['stats'];
  private readonly cpu = new Map<string, CpuBase>();
  private readonly cpuIntervalMs: number;

  constructor(opts: ResourceSourceOptions) {
    super(opts);
    this.stats = opts.stats;
    this.cpuIntervalMs = positiveMs('cpuIntervalMs', opts.cpuIntervalMs ?? 250);
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
    return this.cpu.size;
  }

  private async poll(): Promise<void> {
    const instances = (this.view?.list() ?? []).filter((i) => i.pid !== undefined);
    const live = new Set(instances.map((i) => i.id));
    await Promise.all(instances.map((inst) => this.sample(inst)));
    for (const id of this.cpu.keys()) if (!live.has(id)) this.cpu.delete(id);
  }

  private async sample(inst: InstanceStatus): Promise<void> {
    let s: ResourceSample | undefined;
    try {
      s = await this.stats(inst.id);
    } catch (err) {
      this.fail(err);
      return;
    }
    if (!s || !this.running) return;
    const at = Date.now();
    const limit = s.memoryLimitBytes;
    this.emit(inst.id, {
      type: 'memory',
      at,
      usageBytes: s.memoryBytes,
      limitBytes: limit !== undefined && Number.isFinite(limit) && limit > 0 ? limit : Infinity,
    });
    if (s.cpuThrottledPeriods === undefined || s.cpuPeriods === undefined) return;
    const prev = this.cpu.get(inst.id);
    const next: CpuBase = { pid: inst.pid, throttled: s.cpuThrottledPeriods, periods: s.cpuPeriods, at };
    // Too soon for a meaningful delta: keep the older baseline.
    if (prev && prev.pid === inst.pid && at - prev.at < this.cpuIntervalMs) return;
    this.cpu.set(inst.id, next);
    // First sample, a new process (new cgroup) or counters that went backwards: only a baseline.
    if (!prev || prev.pid !== inst.pid || next.periods < prev.periods || next.throttled < prev.throttled)
      return;
    this.emit(inst.id, {
      type: 'cpu-throttle',
      at,
      throttledPeriods: next.throttled - prev.throttled,
      nrPeriods: next.periods - prev.periods,
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.poller.stop();
    this.cpu.clear();
  }
}
