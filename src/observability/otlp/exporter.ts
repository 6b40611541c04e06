/**
 * Ships gateway spans to a user's OpenTelemetry collector over OTLP/HTTP
 * (JSON). Off the request path: spans wait in a bounded queue and go out in
 * batches from a timer; a slow or absent collector costs queued spans (counted
 * as dropped), never request latency or control-plane memory.
 */
import type { RequestLog } from '../../dataplane/dataplane.ts';
import { exportRequest, parseTraceparent, sampledByRatio, spanOf, type OtlpSpan } from './spans.ts';

export interface OtlpOptions {
  /** Full URL of the collector's traces endpoint, e.g. http://collector:4318/v1/traces. */
  endpoint: string;
  /** Extra request headers (authentication), e.g. from OTEL_EXPORTER_OTLP_HEADERS. */
  headers?: Record<string, string>;
  /** Share of traces exported, decided per trace id. @default 1 */
  sampleRatio?: number;
}

export interface OtlpExporterOptions extends OtlpOptions {
  site: string;
  /** @default 'bulwark-gateway' */
  serviceName?: string;
  /** @default 8192 */
  maxQueue?: number;
  /** @default 512 */
  maxBatch?: number;
  /** @default 1000 */
  flushIntervalMs?: number;
  /** @default 10000 */
  timeoutMs?: number;
  onError?: (err: Error) => void;
}

export interface OtlpExporterStatus {
  endpoint: string;
  state: 'ok' | 'failing' | 'idle';
  sampleRatio: number;
  exported: number;
  dropped: number;
  queued: number;
  failedExports: number;
  lastExportAt?: string;
  lastError?: string;
}

const RETRYABLE = new Set([429, 502, 503, 504]);
const VERSION = '0.1.0';

/** How the settings are called where they came from (the CLI names its flags). */
export interface OtlpSettingNames {
  endpoint: string;
  sampleRatio: string;
  headers: string;
}

const OPTION_NAMES: OtlpSettingNames = {
  endpoint: 'otlp.endpoint',
  sampleRatio: 'otlp.sampleRatio',
  headers: 'otlp.headers',
};

/** Parses and checks the options; the message names the setting and the fix. */
export function validateOtlpOptions(o: OtlpOptions, names: OtlpSettingNames = OPTION_NAMES): OtlpOptions {
  let url: URL;
  try {
    url = new URL(o.endpoint);
  } catch {
    throw new Error(
      `${names.endpoint} '${o.endpoint}' is not a URL: use e.g. http://127.0.0.1:4318/v1/traces`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new Error(`${names.endpoint} '${o.endpoint}': only http:// and https:// (OTLP/HTTP) are supported`);
  const r = o.sampleRatio ?? 1;
  if (!(typeof r === 'number' && r > 0 && r <= 1))
    throw new Error(`${names.sampleRatio} ${String(o.sampleRatio)}: must be a number above 0 and at most 1`);
  for (const [k, v] of Object.entries(o.headers ?? {})) {
    if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(k) || /[\r\n]/.test(v))
      throw new Error(`${names.headers}: '${k}' is not a valid HTTP header name/value`);
  }
  return { ...o, sampleRatio: r };
}

/**
 * The standard OpenTelemetry environment: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is) or
 * OTEL_EXPORTER_OTLP_ENDPOINT (a base, `/v1/traces` appended), OTEL_EXPORTER_OTLP_HEADERS
 * (`k=v,k2=v2`, values URL-encoded). Undefined when neither endpoint is set.
 */
export function otlpOptionsFromEnv(env: NodeJS.ProcessEnv): OtlpOptions | undefined {
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!traces && !base) return undefined;
  const endpoint = traces || `${base!.replace(/\/+$/, '')}/v1/traces`;
  const headers: Record<string, string> = {};
  for (const part of (env.OTEL_EXPORTER_OTLP_HEADERS ?? '').split(',')) {
    if (!part.trim()) continue;
    const eq = part.indexOf('=');
    if (eq <= 0)
      throw new Error(`OTEL_EXPORTER_OTLP_HEADERS: '${part.trim()}' is not key=value (use k1=v1,k2=v2)`);
    headers[part.slice(0, eq).trim()] = decodeURIComponent(part.slice(eq + 1).trim());
  }
  return { endpoint, ...(Object.keys(headers).length > 0 ? { headers } : {}) };
}

export class OtlpExporter {
  readonly #o: Required<Omit<OtlpExporterOptions, 'headers' | 'onError'>> &
    Pick<OtlpExporterOptions, 'headers' | 'onError'>;
  #queue: OtlpSpan[] = [];
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> | undefined;
  #backoffUntil = 0;
  #failures = 0;
  #stats = { exported: 0, dropped: 0, failedExports: 0 };
  #lastExportAt: string | undefined;
  #lastError: string | undefined;

  constructor(o: OtlpExporterOptions) {
    const v = validateOtlpOptions(o);
    this.#o = {
      ...o,
      ...v,
      sampleRatio: v.sampleRatio ?? 1,
      serviceName: o.serviceName ?? 'bulwark-gateway',
      maxQueue: o.maxQueue ?? 8192,
      maxBatch: o.maxBatch ?? 512,
      flushIntervalMs: o.flushIntervalMs ?? 1000,
      timeoutMs: o.timeoutMs ?? 10_000,
    };
  }

  start(): void {
    this.#timer = setInterval(() => void this.flush(), this.#o.flushIntervalMs);
    this.#timer.unref();
  }

  /** Called for every request log; cheap when the request is not sampled. */
  add(log: RequestLog): void {
    // Sampling first: building a span hashes the request uuid (~4 us in BigInt arithmetic), which
    // the requests a ratio below 1 leaves out should not pay.
    const tc = parseTraceparent(log.traceparent);
    if (!tc?.sampled || !sampledByRatio(tc.traceId, this.#o.sampleRatio)) return;
    const span = spanOf(log, tc);
    if (!span) return;
    if (this.#queue.length >= this.#o.maxQueue) {
      this.#queue.shift();
      this.#stats.dropped++;
    }
    this.#queue.push(span);
    if (this.#queue.length >= this.#o.maxBatch && !this.#inFlight) void this.flush();
  }

  /** Sends what is queued (one batch at a time); resolves when the queue is empty or the collector fails. */
  async flush(): Promise<void> {
    if (this.#inFlight) return this.#inFlight;
    if (this.#queue.length === 0 || Date.now() < this.#backoffUntil) return;
    this.#inFlight = (async () => {
      try {
        while (this.#queue.length > 0) {
          const batch = this.#queue.slice(0, this.#o.maxBatch);
          const ok = await this.#send(batch);
          if (!ok) return;
          this.#queue.splice(0, batch.length);
        }
      } finally {
        this.#inFlight = undefined;
      }
    })();
    return this.#inFlight;
  }

  /** True when the batch is done with (sent, or refused for good and counted as dropped). */
  async #send(batch: OtlpSpan[]): Promise<boolean> {
    const body = JSON.stringify(
      exportRequest(batch, { serviceName: this.#o.serviceName, site: this.#o.site, version: VERSION }),
    );
    let status = 0;
    let detail = '';
    try {
      const res = await fetch(this.#o.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...this.#o.headers },
        body,
        signal: AbortSignal.timeout(this.#o.timeoutMs),
      });
      status = res.status;
      detail = res.ok ? '' : (await res.text()).slice(0, 300);
    } catch (err) {
      detail = (err as Error).message;
    }
    if (status >= 200 && status < 300) {
      this.#stats.exported += batch.length;
      this.#lastExportAt = new Date().toISOString();
      this.#lastError = undefined;
      this.#failures = 0;
      return true;
    }
    this.#stats.failedExports++;
    this.#lastError =
      status === 0
        ? `collector at ${this.#o.endpoint} unreachable: ${detail}`
        : `collector at ${this.#o.endpoint} answered ${status}${detail ? `: ${detail}` : ''}`;
    this.#o.onError?.(new Error(this.#lastError));
    if (status !== 0 && !RETRYABLE.has(status)) {
      // A 400/401/404 will not get better by sending the same batch again: drop it, keep going.
      this.#stats.dropped += batch.length;
      this.#queue.splice(0, batch.length);
      return false;
    }
    this.#failures++;
    this.#backoffUntil = Date.now() + Math.min(30_000, 1000 * 2 ** (this.#failures - 1));
    return false;
  }

  status(): OtlpExporterStatus {
    return {
      endpoint: this.#o.endpoint,
      state: this.#lastError ? 'failing' : this.#lastExportAt ? 'ok' : 'idle',
      sampleRatio: this.#o.sampleRatio,
      ...this.#stats,
      queued: this.#queue.length,
      ...(this.#lastExportAt ? { lastExportAt: this.#lastExportAt } : {}),
      ...(this.#lastError ? { lastError: this.#lastError } : {}),
    };
  }

  /** Stops the timer and tries once more to send what is queued (bounded by the request timeout). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#backoffUntil = 0;
    await this.flush().catch(() => undefined);
  }
}
