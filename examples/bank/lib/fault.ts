/**
 * Fault injection, so isolation and failover can be demonstrated against real
 * misbehaviour: set through `POST /admin/fault` or the `BANK_FAULT` env var.
 *
 * - crash: exit(1) after `delayMs` (a process dying)
 * - hang: busy-loop the event loop forever (alive but answering nothing)
 * - error: answer 500 to a `rate` share of requests except /admin
 * - slow: add `delayMs` latency to a `rate` share of requests except /admin
 * - leak: retain memory at `mibPerSecond` (default 20, a realistic leak; 100 is
 *   a fast one: a 128 MiB container is OOM-killed ~0.7 s in) until the limit kills the process
 * - oom-log: print a Java OutOfMemoryError with stack trace to stderr, keep answering
 * - none: back to normal (releases leaked memory)
 */

export const FAULT_MODES = ['none', 'crash', 'hang', 'error', 'slow', 'leak', 'oom-log'] as const;
export type FaultMode = (typeof FAULT_MODES)[number];

export interface FaultSettings {
  mode: FaultMode;
  /** Latency for slow; delay before crash/hang. @default 1000 for slow, 0 otherwise */
  delayMs?: number;
  /** Share of requests affected by error/slow, 0..1. @default 1 */
  rate?: number;
  /**
   * Leak rate of leak, MiB per second, > 0 and <= 1000. 20 is a realistic
   * leak (seconds to fill a small container); 100 is fast (a 128 MiB
   * container from ~55 MiB is OOM-killed ~0.7 s in). @default 20
   */
  mibPerSecond?: number;
}

export const DEFAULT_LEAK_MIB_PER_S = 20;
const MAX_LEAK_MIB_PER_S = 1000;
const MiB = 1024 * 1024;
const LEAK_EVERY_MS = 100;

const validLeakRate = (v: unknown): v is number => typeof v === 'number' && v > 0 && v <= MAX_LEAK_MIB_PER_S;
const LEAK_RATE_RULE = `a number > 0 and <= ${MAX_LEAK_MIB_PER_S} (MiB leaked per second; 20 is a realistic leak, 100 a fast one)`;

export const JAVA_OOM_TRACE = [
  'Exception in thread "http-nio-8080-exec-7" java.lang.OutOfMemoryError: Java heap space',
  '\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)',
  '\tat java.base/java.lang.AbstractStringBuilder.ensureCapacityInternal(AbstractStringBuilder.java:228)',
  '\tat java.base/java.lang.StringBuilder.append(StringBuilder.java:179)',
  '\tat com.example.bank.ledger.EntryCodec.encode(EntryCodec.java:88)',
  '\tat com.example.bank.ledger.LedgerService.append(LedgerService.java:142)',
  '\tat org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:166)',
  '\tat java.base/java.lang.Thread.run(Thread.java:1583)',
].join('\n');

/** Parse and check a fault request body; returns an error message for bad input. */
export function parseFaultSettings(v: unknown): FaultSettings | string {
  if (v === null || typeof v !== 'object')
    return 'body must be a JSON object like {"mode":"slow","delayMs":500}';
  const o = v as Record<string, unknown>;
  if (!FAULT_MODES.includes(o.mode as FaultMode)) return `mode must be one of ${FAULT_MODES.join(', ')}`;
  if (o.delayMs !== undefined && (typeof o.delayMs !== 'number' || !(o.delayMs >= 0))) {
    return 'delayMs must be a number >= 0';
  }
  if (o.rate !== undefined && (typeof o.rate !== 'number' || !(o.rate >= 0 && o.rate <= 1))) {
    return 'rate must be a number between 0 and 1';
  }
  if (o.mibPerSecond !== undefined && !validLeakRate(o.mibPerSecond)) {
    return `mibPerSecond must be ${LEAK_RATE_RULE} (got ${JSON.stringify(o.mibPerSecond)})`;
  }
  return {
    mode: o.mode as FaultMode,
    ...(o.delayMs !== undefined ? { delayMs: o.delayMs as number } : {}),
    ...(o.rate !== undefined ? { rate: o.rate as number } : {}),
    ...(o.mibPerSecond !== undefined ? { mibPerSecond: o.mibPerSecond } : {}),
  };
}

/**
 * Settings from `BANK_FAULT`, `BANK_FAULT_DELAY_MS`, `BANK_FAULT_RATE`,
 * `BANK_FAULT_LEAK_MIB_PER_S`, or undefined when `BANK_FAULT` is unset.
 */
export function faultFromEnv(env: NodeJS.ProcessEnv): FaultSettings | string | undefined {
  if (!env.BANK_FAULT) return undefined;
  const leak = env.BANK_FAULT_LEAK_MIB_PER_S;
  if (leak && !validLeakRate(Number(leak))) {
    return `BANK_FAULT_LEAK_MIB_PER_S must be ${LEAK_RATE_RULE} (got ${JSON.stringify(leak)})`;
  }
  return parseFaultSettings({
    mode: env.BANK_FAULT,
    ...(env.BANK_FAULT_DELAY_MS ? { delayMs: Number(env.BANK_FAULT_DELAY_MS) } : {}),
    ...(env.BANK_FAULT_RATE ? { rate: Number(env.BANK_FAULT_RATE) } : {}),
    ...(leak ? { mibPerSecond: Number(leak) } : {}),
  });
}

export class FaultInjector {
  #mode: FaultMode = 'none';
  #delayMs = 0;
  #rate = 1;
  #mibPerSecond = DEFAULT_LEAK_MIB_PER_S;
  #leakTimer: NodeJS.Timeout | undefined;
  #leaked: Buffer[] = [];
  #leakedBytes = 0;
  readonly #stderr: (text: string) => void;

  constructor(stderr: (text: string) => void = (t) => process.stderr.write(t)) {
    this.#stderr = stderr;
  }

  status(): { mode: FaultMode; delayMs: number; rate: number; mibPerSecond: number; leakedBytes: number } {
    return {
      mode: this.#mode,
      delayMs: this.#delayMs,
      rate: this.#rate,
      mibPerSecond: this.#mibPerSecond,
      leakedBytes: this.#leakedBytes,
    };
  }

  /** Apply a fault. crash and hang act after a short delay so the admin answer gets out first. */
  set(s: FaultSettings): void {
    this.#stopLeak();
    this.#mode = s.mode;
    this.#delayMs = s.delayMs ?? (s.mode === 'slow' ? 1000 : 0);
    this.#rate = s.rate ?? 1;
    this.#mibPerSecond = s.mibPerSecond ?? DEFAULT_LEAK_MIB_PER_S;
    const afterMs = Math.max(this.#delayMs, 20);
    switch (s.mode) {
      case 'crash':
        setTimeout(() => {
          this.#stderr(`fault injection: crashing (exit 1)\n`);
          process.exit(1);
        }, afterMs);
        break;
      case 'hang':
        setTimeout(() => {
          // Block the event loop for good: the process is alive but serves nothing.
          for (;;) {
            /* spin */
          }
        }, afterMs);
        break;
      case 'leak': {
        const started = performance.now();
        const bytesPerMs = (this.#mibPerSecond * MiB) / 1000;
        this.#leakTimer = setInterval(() => {
          // Catch up to the elapsed time, so a late timer on a busy machine does not slow the leak.
          const due = Math.floor((performance.now() - started) * bytesPerMs) - this.#leakedBytes;
          if (due <= 0) return;
          // fill() touches every page, so the memory is really resident.
          this.#leaked.push(Buffer.allocUnsafe(due).fill(0x5a));
          this.#leakedBytes += due;
        }, LEAK_EVERY_MS);
        break;
      }
      case 'oom-log':
        this.#stderr(`${JAVA_OOM_TRACE}\n`);
        break;
      default:
        break;
    }
  }

  /** Fault to apply to a normal (non-admin) request, decided per request by `rate`. */
  forRequest(): { kind: 'error' } | { kind: 'slow'; delayMs: number } | undefined {
    if (this.#mode !== 'error' && this.#mode !== 'slow') return undefined;
    if (Math.random() >= this.#rate) return undefined;
    return this.#mode === 'error' ? { kind: 'error' } : { kind: 'slow', delayMs: this.#delayMs };
  }

  stop(): void {
    this.#stopLeak();
  }

  #stopLeak(): void {
    if (this.#leakTimer) clearInterval(this.#leakTimer);
    this.#leakTimer = undefined;
    this.#leaked = [];
    this.#leakedBytes = 0;
  }
}
