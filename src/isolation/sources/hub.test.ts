import { describe, expect, it } from 'vitest';
import type { InstanceStatus } from '../../runtime/driver.ts';
import { waitFor } from '../../util/time.ts';
import { BaseSource, Poller } from './base.ts';
import { SignalHub, defaultSources } from './hub.ts';
import { RecordingSink, instance } from './testing.ts';

/** Emits a probe for every instance in the view on each tick. */
class TickSource extends BaseSource {
  readonly name: string;
  private readonly poller = new Poller(
    10,
    () => this.tick(),
    (e) => this.fail(e),
  );
  stopped = false;
  constructor(name: string) {
    super({ onError: () => undefined });
    this.name = name;
  }
  protected onStart(): void {
    this.poller.start();
  }
  protected held(): number {
    return 0;
  }
  private tick(): void {
    for (const i of this.view?.list() ?? [])
      this.emit(i.id, { type: 'probe', at: Date.now(), ok: true, latencyMs: 1 });
    if (this.name === 'throws') throw new Error('tick failed');
  }
  async stop(): Promise<void> {
    this.running = false;
    this.stopped = true;
    await this.poller.stop();
  }
}

describe('SignalHub', () => {
  it('starts and stops its sources together over the current instances, counting deliveries', async () => {
    let insts: InstanceStatus[] = [instance('a-0')];
    const a = new TickSource('a');
    const b = new TickSource('throws');
    const hub = new SignalHub({ instances: () => insts, sources: [a, b], instancesMaxAgeMs: 1 });
    const sink = new RecordingSink();
    hub.start(sink);
    await waitFor('signals for a-0', () => sink.of('a-0', 'probe').length >= 4);
    insts = [instance('b-0')];
    await waitFor('signals for b-0', () => sink.of('b-0', 'probe').length >= 4);
    // A source whose tick throws keeps running; its errors are counted, not thrown.
    const st = hub.status();
    expect(st.sources.find((s) => s.name === 'throws')?.errors).toBeGreaterThan(0);
    expect(st.delivered.probe).toBe(sink.signals.length);
    await hub.stop();
    expect(a.stopped && b.stopped).toBe(true);
    const n = sink.signals.length;
    await new Promise((r) => setTimeout(r, 50));
    expect(sink.signals.length).toBe(n);
  });

  it('rejects the same source name twice', () => {
    expect(
      () => new SignalHub({ instances: () => [], sources: [new TickSource('x'), new TickSource('x')] }),
    ).toThrow(/'x' appears twice/);
  });

  it('wires every source from a data plane and a driver', () => {
    const names = defaultSources({
      dataPlane: { onRequest: () => () => undefined, stats: async () => [] },
      driver: { watch: () => () => undefined, followLogs: () => () => undefined, stats: () => undefined },
    }).map((s) => s.name);
    expect(names).toEqual([
      'request-log',
      'server-stats',
      'process-state',
      'driver-events',
      'logs',
      'resources',
      'probes',
    ]);
  });
});
