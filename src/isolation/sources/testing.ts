/** Helpers for the sources' tests: a recording sink and instance statuses. */
import type { InstanceStatus } from '../../runtime/driver.ts';
import type { LogStream, Signal } from '../signals/types.ts';
import type { InstanceView, SignalSink } from './types.ts';

export interface Recorded {
  id: string;
  signal: Signal;
}

export class RecordingSink implements SignalSink {
  readonly signals: Recorded[] = [];
  readonly lines: { id: string; stream: LogStream; line: string; at: number }[] = [];
  signal(id: string, s: Signal): void {
    this.signals.push({ id, signal: s });
  }
  logLine(id: string, stream: LogStream, line: string, at: number): void {
    this.lines.push({ id, stream, line, at });
  }
  of<T extends Signal['type']>(id: string, type: T): Extract<Signal, { type: T }>[] {
    return this.signals
      .filter((r) => r.id === id && r.signal.type === type)
      .map((r) => r.signal as Extract<Signal, { type: T }>);
  }
}

export function instance(id: string, over: Partial<InstanceStatus> = {}): InstanceStatus {
  return {
    id,
    site: 'test',
    project: 'proj',
    app: 'app',
    workload: 'web',
    ordinal: 0,
    specHash: 'h',
    phase: 'ready',
    ready: true,
    ip: '127.0.0.1',
    ports: {},
    restarts: 0,
    isolation: {},
    ...over,
  };
}

/** A mutable view: tests add, change and remove instances. */
export class MapView implements InstanceView {
  readonly items = new Map<string, InstanceStatus>();
  constructor(...insts: InstanceStatus[]) {
    for (const i of insts) this.items.set(i.id, i);
  }
  set(i: InstanceStatus): void {
    this.items.set(i.id, i);
  }
  list(): readonly InstanceStatus[] {
    return [...this.items.values()];
  }
  get(id: string): InstanceStatus | undefined {
    return this.items.get(id);
  }
}
