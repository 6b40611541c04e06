/**
 * Gateway spans from request logs, in the OTLP/HTTP JSON encoding
 * (opentelemetry-proto `ExportTraceServiceRequest`; ids as hex, times as
 * decimal nanosecond strings). Pure: no I/O, no clock.
 *
 * Which span is the gateway's: the gateway generates a W3C trace context when
 * a request arrives without one; its parent id is the xxh64 of the request's
 * uuid, and the trace id that uuid's hex digits (`dataplane/haproxy/config.ts`).
 * For such a request the parent id the instance receives *is* the gateway's
 * span: the span is exported with that id and no parent, so spans the instance
 * reports itself nest under it. A request that brought its own traceparent is
 * forwarded unchanged (rewriting it per request would cost the data plane
 * more); its gateway span then gets an id of its own, derived from the
 * caller's, with the caller's span as parent: it sits beside the instance's
 * spans under the caller's, not between them.
 */
import type { RequestLog } from '../../dataplane/dataplane.ts';
import { xxh64Hex } from './xxh64.ts';

export interface OtlpAttribute {
  key: string;
  value: { stringValue: string } | { intValue: string } | { boolValue: boolean };
}

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  /** 2 = SPAN_KIND_SERVER */
  kind: 2;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: OtlpAttribute[];
  /** code 2 = STATUS_CODE_ERROR, 0 = unset */
  status: { code: 0 | 2; message?: string };
}

export interface ExportTraceServiceRequest {
  resourceSpans: {
    resource: { attributes: OtlpAttribute[] };
    scopeSpans: { scope: { name: string; version: string }; spans: OtlpSpan[] }[];
  }[];
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

export interface TraceContext {
  traceId: string;
  parentId: string;
  sampled: boolean;
}

export function parseTraceparent(v: string | undefined): TraceContext | undefined {
  const m = v ? TRACEPARENT.exec(v) : null;
  if (!m || /^0+$/.test(m[1]!) || /^0+$/.test(m[2]!)) return undefined;
  return { traceId: m[1]!, parentId: m[2]!, sampled: (parseInt(m[3]!, 16) & 1) === 1 };
}

/** True when the gateway generated this context (no traceparent came with the request). */
export function generatedByGateway(tc: TraceContext): boolean {
  const t = tc.traceId;
  const uuid = `${t.slice(0, 8)}-${t.slice(8, 12)}-${t.slice(12, 16)}-${t.slice(16, 20)}-${t.slice(20)}`;
  return xxh64Hex(uuid) === tc.parentId;
}

const str = (key: string, v: string): OtlpAttribute => ({ key, value: { stringValue: v } });
const int = (key: string, v: number): OtlpAttribute => ({ key, value: { intValue: String(v) } });

/** Milliseconds since the epoch (fractions allowed) as OTLP's decimal nanoseconds. */
const nanos = (ms: number): string => (BigInt(Math.round(ms * 1000)) * 1000n).toString();

/**
 * The gateway's span of one request, or undefined when the log has no usable
 * trace context or its context says "not sampled". Pass `tc` when the caller
 * has parsed the context already.
 */
export function spanOf(
  log: RequestLog,
  tc: TraceContext | undefined = parseTraceparent(log.traceparent),
): OtlpSpan | undefined {
  if (!tc || !tc.sampled) return undefined;
  const start = Date.parse(log.at);
  if (!Number.isFinite(start)) return undefined;
  const own = generatedByGateway(tc);
  const serverError = log.status >= 500 || log.status <= 0;
  const attributes = [
    str('http.request.method', log.method),
    str('url.path', log.path),
    int('http.response.status_code', log.status),
    str('server.address', log.backend),
    str('client.address', log.clientIp),
    str('bulwark.instance', log.server ?? ''),
    int('bulwark.retries', log.retries),
    str('bulwark.termination_state', log.terminationState),
    int('http.response.body.size', log.bytesRead),
  ];
  if (log.caller) attributes.push(str('bulwark.caller', log.caller));
  return {
    traceId: tc.traceId,
    // A derived id (not random) keeps the export a pure function of the log line.
    spanId: own ? tc.parentId : xxh64Hex(`${tc.parentId}/${log.at}/${log.backend}`),
    ...(own ? {} : { parentSpanId: tc.parentId }),
    name: `${log.method} ${log.backend}`,
    kind: 2,
    startTimeUnixNano: nanos(start),
    endTimeUnixNano: nanos(start + Math.max(0, log.totalMs)),
    attributes,
    status: serverError
      ? {
          code: 2,
          message: log.status > 0 ? `HTTP ${log.status}` : `no answer (${log.terminationState})`,
        }
      : { code: 0 },
  };
}

/** Keep a share of traces, decided by the trace id so every span of a trace gets the same answer. */
export function sampledByRatio(traceId: string, ratio: number): boolean {
  if (ratio >= 1) return true;
  return parseInt(traceId.slice(16, 24), 16) / 0x1_0000_0000 < ratio;
}

export function exportRequest(
  spans: OtlpSpan[],
  resource: { serviceName: string; site: string; version: string },
): ExportTraceServiceRequest {
  return {
    resourceSpans: [
      {
        resource: {
          attributes: [
            str('service.name', resource.serviceName),
            str('bulwark.site', resource.site),
            str('service.version', resource.version),
          ],
        },
        scopeSpans: [{ scope: { name: 'bulwark.gateway', version: resource.version }, spans }],
      },
    ],
  };
}
