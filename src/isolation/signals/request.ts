/**
 * Adapter from the data plane's `RequestLog` to a `RequestSignal`, with the
 * HAProxy termination state decoded into a `RequestOutcome`.
 */
import type { RequestLog } from '../../dataplane/dataplane.ts';
import type { RequestOutcome, RequestSignal } from './types.ts';

/**
 * Decode HAProxy's termination state (first char: what ended the session,
 * second char: the phase it was in) plus the status into an outcome.
 *
 * Why these groups: only events caused by the server (refused/timed-out
 * connects, aborts, header/data timeouts, invalid responses, 5xx) may count
 * against an instance. Client aborts are the client's business, except that
 * a client that gave up while waiting for headers (`CH`/`cH`) is a hint that
 * the server did not answer, which `noResponse` uses.
 */
export function classifyTermination(terminationState: string, status: number): RequestOutcome {
  const first = terminationState[0] ?? '-';
  const phase = terminationState[1] ?? '-';
  switch (first) {
    case '-':
      return status >= 500 ? 'http-5xx' : 'ok';
    case 'S':
      if (phase === 'C') return 'connect-refused';
      return 'server-aborted';
    case 's':
      if (phase === 'C') return 'connect-timeout';
      if (phase === 'Q') return 'queue-timeout';
      return 'server-timeout';
    case 'C':
    case 'c':
      return phase === 'H' ? 'client-abort-waiting' : 'client-abort';
    case 'P':
      // PH: invalid response headers from the server; PD: invalid chunked body after the server's headers.
      return phase === 'H' || phase === 'D' ? 'bad-response' : 'proxy';
    default:
      // L (local), R (resource), I (internal), D/U/K (killed by HAProxy or an admin).
      return 'proxy';
  }
}

/** Parse the ISO time of a `RequestLog`; throws a clear error rather than produce NaN times. */
function parseAt(at: string): number {
  const ms = Date.parse(at);
  if (!Number.isFinite(ms)) throw new Error(`RequestLog.at '${at}' is not an ISO 8601 time`);
  return ms;
}

/**
 * Turn one request log line into the signal of the instance that answered it.
 * Returns undefined when no server was reached (HAProxy's own 404/503 with
 * `<NOSRV>`): such a request says nothing about any instance.
 *
 * Known limit: after a redispatch (`retries` > 0) HAProxy logs only the last
 * server tried, so a connection failure on the first server is attributed to
 * none; the retried-to server gets a successful request with `retries` > 0.
 */
export function fromRequestLog(log: RequestLog): { instanceId: string; signal: RequestSignal } | undefined {
  if (!log.server) return undefined;
  const startedAt = parseAt(log.at);
  const totalMs = Math.max(0, log.totalMs);
  return {
    instanceId: log.server,
    signal: {
      type: 'request',
      at: startedAt + totalMs,
      startedAt,
      method: log.method,
      status: log.status,
      totalMs,
      serverMs: log.serverMs,
      retries: Math.max(0, log.retries),
      terminationState: log.terminationState,
      outcome: classifyTermination(log.terminationState, log.status),
    },
  };
}
