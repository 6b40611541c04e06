/**
 * Fault injection, so isolation and failover can be demonstrated against real
 * misbehaviour: set through `POST /admin/fault` or the `BANK_FAULT` env var.
 *
 * - crash: exit(1) after `delayMs` (a process dying)
 * - hang: busy-loop the event loop forever (alive but answering nothing)
 * - error: answer 500 to a `rate` share of requests except /admin
 * - slow: add `delayMs` latency to a `rate` share of requests except /admin
 * - leak: retain ~10 MiB every 100 ms until the memory limit kills the process
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
}

const LEAK_CHUNK_BYTES = 10 * 1024 * 1024;
const LEAK_EVERY_MS = 100;

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
  return {
    mode: o.mode as FaultMode,
    ...(o.delayMs !== undefined ? { delayMs: o.delayMs as number } : {}),
    ...(o.rate !== undefined ? { rate: o.rate as number } : {}),
  };
}

/** Settings from `BANK_FAULT`, `BANK_FAULT_DELAY_MS`, `BANK_FAULT_RATE`, or undefined when unset. */
export function faultFromEnv(env: NodeJS.ProcessEnv): FaultSettings | string | undefined {
  if (!env.BANK_FAULT) return undefined;
  return parseFaultSettings({
    mode: env.BANK_FAULT,
    ...(env.BANK_FAULT_DELAY_MS ? { delayMs: Number(env.BANK_FAULT_DELAY_MS) } : {}),
    ...(env.BANK_FAULT_RATE ? { rate: Number(env.BANK_FAULT_RATE) } : {}),
  });
}

export class FaultInjector {
  #mode: FaultMode = 'none';
  #delayMs = 0;
  #rate = 1;
  #leakTimer: NodeJS.Timeout | undefined;
  #leaked: Buffer[] = [];
  readonly #stderr: (text: string) => void;

  constructor(stderr: (text: string) => void = (t) => process.stderr.write(t)) {
    this.#stderr = stderr;
  }

  status(): { mode: FaultMode; delayMs: number; rate: number; leakedBytes: number } {
    return {
      mode: this.#mode,
      delayMs: this.#delayMs,
      rate: this.#rate,
      leakedBytes: this.#leaked.length * LEAK_CHUNK_BYTES,
    };
  }

  /** Apply a fault. crash and hang act after a short delay so the admin answer gets out first. */
  set(s: FaultSettings): void {
    this.#stopLeak();
    this.#mode = s.mode;
    this.#delayMs = s.delayMs ?? (s.mode === 'slow' ? 1000 : 0);
    this.#rate = s.rate ?? 1;
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
      case 'leak':
        this.#leakTimer = setInterval(() => {
          // fill() touches every page, so the memory is really resident.
          this.#leaked.push(Buffer.allocUnsafe(LEAK_CHUNK_BYTES).fill(0x5a));
        }, LEAK_EVERY_MS);
        break;
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
  }
}
