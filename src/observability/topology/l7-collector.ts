/**
 * L7 edges from the gateway's request log. Every request crosses the site
 * gateway, whose log line names the callee (backend = service, server =
 * instance) and the caller (the `X-Bulwark-Caller` header, or the client
 * address, which is the calling instance's own IP in namespace mode).
 * Each line becomes two edge observations: app -> app, and
 * caller (instance, else app, else external) -> callee instance.
 */
import type { RequestLog } from '../../dataplane/dataplane.ts';
import { observe } from './latency.ts';
import { edgeKey, type L7Stats } from './snapshot.ts';

export interface ServiceRef {
  project: string;
  app: string;
  workload: string;
}

/** `<workload>.<app>.<project>` (the backend and caller naming) -> parts; undefined otherwise. */
export function parseService(name: string | undefined): ServiceRef | undefined {
  if (!name) return undefined;
  const parts = name.split('.');
  if (parts.length !== 3 || parts.some((p) => p === '')) return undefined;
  const [workload, app, project] = parts as [string, string, string];
  return { project, app, workload };
}

export const appNodeId = (project: string, app: string): string => `app:${project}/${app}`;
export const instanceNodeId = (id: string): string => `instance:${id}`;

export interface CallerLookup {
  /** Instance (and its app) that owns this client address, when the address names one. */
  byIp(ip: string): { id: string; project: string; app: string } | undefined;
}

export function isErrorStatus(status: number): boolean {
  return status >= 500 || status <= 0;
}

/** Called once per request for its app-level edge (the Prometheus exporter listens here). */
export type AppEdgeObserver = (from: string, to: string, error: boolean, ms: number) => void;

export class L7Collector {
  #edges = new Map<string, L7Stats>();
  readonly #onAppEdge: AppEdgeObserver | undefined;

  constructor(onAppEdge?: AppEdgeObserver) {
    this.#onAppEdge = onAppEdge;
  }

  /** Requests seen since start (all edges), for status and tests. */
  total = 0;

  record(log: RequestLog, callers: CallerLookup): void {
    const callee = parseService(log.backend);
    if (!callee) return;
    this.total++;
    const callerInst = callers.byIp(log.clientIp);
    const callerSvc = parseService(log.caller);
    const callerApp = callerSvc
      ? appNodeId(callerSvc.project, callerSvc.app)
      : callerInst
        ? appNodeId(callerInst.project, callerInst.app)
        : `external:${log.clientIp}`;
    const error = isErrorStatus(log.status) || log.server === undefined;
    const ms = log.totalMs >= 0 ? log.totalMs : 0;
    const calleeApp = appNodeId(callee.project, callee.app);
    this.#add(callerApp, calleeApp, error, ms);
    this.#onAppEdge?.(callerApp, calleeApp, error, ms);
    if (log.server !== undefined) {
      const from = callerInst ? instanceNodeId(callerInst.id) : callerApp;
      this.#add(from, instanceNodeId(log.server), error, ms);
    }
  }

  #add(from: string, to: string, error: boolean, ms: number): void {
    const k = edgeKey(from, to);
    let e = this.#edges.get(k);
    if (!e) {
      e = { from, to, requests: 0, errors: 0, latency: new Map() };
      this.#edges.set(k, e);
    }
    e.requests++;
    if (error) e.errors++;
    observe(e.latency, ms);
  }

  /** The edges observed since the last flush. */
  flush(): Map<string, L7Stats> {
    const out = this.#edges;
    this.#edges = new Map();
    return out;
  }
}
