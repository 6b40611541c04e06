/**
 * The DataPlane seam: one traffic gateway per site. Bulwark decides, the data
 * plane carries requests. The HAProxy implementation renders a configuration
 * for structure (frontends, backends) and uses the runtime API for everything
 * that changes often (servers, weights, states) so no reload drops traffic.
 *
 * Routing model: one HTTP gateway port per site. A request reaches a service's
 * backend when its Host header is the service name (`<workload>.<app>.<project>`,
 * or the short `<app>.<project>` for an app's first service workload) or when
 * its path starts with `/<project>/<app>/<workload>/` (the prefix is stripped).
 */

export type ServerState = 'ready' | 'drain' | 'maint';

export interface ServerSpec {
  /** Instance id; unique in its backend. */
  name: string;
  address: string;
  port: number;
  /** 0..256. @default 100 */
  weight: number;
  state: ServerState;
  /** Active health check path (HTTP); absent = TCP connect check. */
  checkPath?: string;
}

export interface BackendSpec {
  /** Service name, DNS-like: `<workload>.<app>.<project>`. */
  name: string;
  /** Extra host names routed to this backend (e.g. `<app>.<project>`). */
  aliases: string[];
  servers: ServerSpec[];
  /**
   * Active HTTP health-check path of the backend; absent = taken from the servers, else TCP.
   * Set it here so an empty backend keeps its check settings (no reload when servers come back).
   */
  checkPath?: string;
  /** How long to wait for a server's response before giving up (and retrying when allowed). @default 30000 */
  serverTimeoutMs?: number;
  /** Active check interval. @default 1000 */
  checkIntervalMs?: number;
}

export interface SiteRouting {
  backends: BackendSpec[];
}

export interface SyncResult {
  /** True when the configuration had to be re-rendered and HAProxy reloaded (structure changed). */
  reloaded: boolean;
  /** Runtime API commands issued (for logs and tests). */
  runtimeCommands: number;
}

/** One parsed request log line. */
export interface RequestLog {
  at: string;
  /** Client address as HAProxy saw it (instance IP for east-west calls in netns mode). */
  clientIp: string;
  /** Calling service, from the `X-Bulwark-Caller` header when present. */
  caller?: string;
  backend: string;
  /** Server (instance id) that answered, or undefined when none was reached. */
  server?: string;
  method: string;
  path: string;
  status: number;
  /** Total time in ms as HAProxy measured (Ta). */
  totalMs: number;
  /** Time the server took to send headers (Tr), -1 when none. */
  serverMs: number;
  /** Number of retries HAProxy made. */
  retries: number;
  /** HAProxy termination state, e.g. "----", "sH--", "SC--". */
  terminationState: string;
  bytesRead: number;
  traceparent?: string;
}

export interface ServerRuntimeStats {
  backend: string;
  server: string;
  state: string;
  checkStatus: string;
  currentSessions: number;
  totalSessions: number;
  responses5xx: number;
  /**
   * Retries after failed attempts on this server (HAProxy `wretr`; a layer-7 retry counts here
   * even when it moves to another server). Absent when the data plane cannot tell.
   * Semantics measured in isolation/sources/server-stats.ts.
   */
  retries?: number;
  /** Failed attempts on this server moved to another server (HAProxy `wredis`). */
  redispatches?: number;
}

export interface DataPlane {
  /** URL where clients reach the site's gateway. */
  readonly gatewayUrl: string;
  /** Bring the gateway to the desired routing; idempotent. */
  sync(routing: SiteRouting): Promise<SyncResult>;
  /** Change one server's state at once (isolation uses this). */
  setServerState(backend: string, server: string, state: ServerState): Promise<void>;
  setServerWeight(backend: string, server: string, weight: number): Promise<void>;
  /**
   * Close the gateway's open connections to one server at once. For a server that holds
   * requests it will never answer (a stopped or deadlocked process): each held request ends
   * as an empty response, which the retry policy resends to another server now instead of
   * after the server timeout; unsafe requests without an Idempotency-Key fail at once (they
   * would have timed out). Call after `setServerState(..., 'maint')`. Resolves to the number
   * of connections closed (0 where the data plane holds none, e.g. a Kubernetes Service).
   */
  abortServerConnections(backend: string, server: string): Promise<number>;
  stats(): Promise<ServerRuntimeStats[]>;
  onRequest(listener: (log: RequestLog) => void): () => void;
  close(): Promise<void>;
}
