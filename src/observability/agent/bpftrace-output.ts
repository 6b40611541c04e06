/**
 * Reads bpftrace's `-f json` output: one JSON object per line. The program
 * (flows.bt) prints its maps once per interval and then a `tick` line, so a
 * batch of maps up to a tick is one interval. Maps left empty are not
 * printed by bpftrace at all, so a missing map means zero.
 */

/** One interval of raw maps: map name (without `@`) -> comma-joined key -> value. */
export interface RawInterval {
  /** Kernel monotonic time of the tick, ns. */
  tickNs: number;
  maps: Record<string, Record<string, number>>;
  /** pid -> comm of processes that called connect() during the interval. */
  comm: Map<number, string>;
}

export type OutputEvent =
  | { kind: 'attached'; probes: number }
  | { kind: 'interval'; interval: RawInterval }
  | { kind: 'message'; text: string };

interface JsonLine {
  type?: string;
  data?: unknown;
}

/**
 * Stateful line reader: feed it lines in order, it returns what each line
 * completed. Not thread of a stream on purpose so it can be unit tested.
 */
export class BpftraceOutputReader {
  #maps: Record<string, Record<string, number>> = {};
  #comm = new Map<number, string>();

  /** One line of stdout; returns an event when the line completed one. */
  line(text: string): OutputEvent | undefined {
    const t = text.trim();
    if (t === '') return undefined;
    let o: JsonLine;
    try {
      o = JSON.parse(t) as JsonLine;
    } catch {
      return { kind: 'message', text: t };
    }
    if (o.type === 'attached_probes') {
      const probes = (o.data as { probes?: number } | undefined)?.probes ?? 0;
      return { kind: 'attached', probes };
    }
    if (o.type === 'map' || o.type === 'stats') {
      for (const [name, entries] of Object.entries((o.data ?? {}) as Record<string, unknown>)) {
        if (!entries || typeof entries !== 'object') continue;
        if (name === '@comm') {
          for (const [pid, comm] of Object.entries(entries as Record<string, unknown>)) {
            if (typeof comm === 'string') this.#comm.set(Number(pid), comm);
          }
          continue;
        }
        const into = (this.#maps[name.replace(/^@/, '')] ??= {});
        for (const [k, v] of Object.entries(entries as Record<string, unknown>)) {
          if (typeof v === 'number') into[k] = (into[k] ?? 0) + v;
        }
      }
      return undefined;
    }
    if (o.type === 'printf' && typeof o.data === 'string' && o.data.startsWith('tick ')) {
      const interval: RawInterval = {
        tickNs: Number(o.data.slice(5).trim()),
        maps: this.#maps,
        comm: this.#comm,
      };
      this.#maps = {};
      this.#comm = new Map();
      return { kind: 'interval', interval };
    }
    if (o.type === 'printf' || o.type === 'lost_events') {
      return { kind: 'message', text: typeof o.data === 'string' ? o.data : JSON.stringify(o.data) };
    }
    return undefined;
  }
}

/** `16777343` (u32 read little-endian from network order) -> `127.0.0.1`. */
export function u32ToIpv4(n: number): string {
  return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.');
}
