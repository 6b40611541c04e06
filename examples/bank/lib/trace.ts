/**
 * W3C Trace Context (`traceparent`) propagation: keep the caller's trace id,
 * give each hop its own span id, so a trace follows a payment through every
 * service and the site gateway.
 */
import { randomBytes } from 'node:crypto';

export interface TraceContext {
  traceId: string;
  /** Span id of this service's handling of the request. */
  spanId: string;
  flags: string;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** Continue the incoming trace, or start a new one when the header is absent or malformed. */
export function continueTrace(header: string | string[] | undefined): TraceContext {
  const m = typeof header === 'string' ? TRACEPARENT.exec(header.trim()) : null;
  const traceId = m?.[1] && !/^0+$/.test(m[1]) ? m[1] : randomBytes(16).toString('hex');
  return { traceId, spanId: randomBytes(8).toString('hex'), flags: m?.[3] ?? '01' };
}

/** Header value for a call made while handling `ctx` (the callee's parent is our span). */
export function traceparentOf(ctx: TraceContext): string {
  return `00-${ctx.traceId}-${ctx.spanId}-${ctx.flags}`;
}
