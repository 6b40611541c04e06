/**
 * Pure rendering of haproxy.cfg (plus the two lookup maps it references) from
 * the site's structure. No I/O here: `process.ts` writes the files (0600:
 * they carry the request log key).
 *
 * Routing: the Host header (port stripped, lower-cased) is looked up in
 * `hosts.map`; when it does not match, the first three path segments
 * `/<project>/<app>/<workload>` are looked up in `paths.map` and stripped.
 * Map lookups are hash/tree based, so routing cost does not grow with the
 * number of services the way a chain of ACLs would.
 */
import { randomBytes } from 'node:crypto';
import type { ServerState } from '../dataplane.ts';
import { assertUnixSocketPath } from './unix-socket-path.ts';

export interface BindSpec {
  address: string;
  port: number;
}

/** A server as rendered into the file so a reload/restart keeps membership. */
export interface RenderServer {
  name: string;
  address: string;
  port: number;
  weight: number;
  state: ServerState;
}

export interface RenderBackend {
  /** Service name `<workload>.<app>.<project>`; also the HAProxy backend name. */
  name: string;
  aliases: string[];
  /** HTTP check path; absent = TCP connect check. */
  checkPath?: string;
  /** @default 1000 */
  checkIntervalMs?: number;
  /** Backend `timeout server`; absent = the defaults' idle timeout. */
  serverTimeoutMs?: number;
  /** Current servers; empty when servers are managed at runtime only. */
  servers: RenderServer[];
}

export interface RenderOptions {
  /** @default 4000 (clamped by callers to what the open-file limit allows) */
  maxConn?: number;
  /** @default 2000 */
  connectTimeoutMs?: number;
  /** Client and server inactivity timeout. @default 30000 */
  idleTimeoutMs?: number;
  /** @default 2 */
  retries?: number;
  /** Send one log line per request to the syslog target. @default true */
  requestLogs?: boolean;
  /** Generate X-Request-Id / traceparent when absent. @default true */
  traceHeaders?: boolean;
  /**
   * Pin HAProxy to these CPUs, one thread each (`nbthread` + `cpu-map`): a
   * gateway with cores of its own does not queue behind the instances it
   * fronts (bench/dataplane, "CPU layouts"). Absent: HAProxy's default, one
   * thread per CPU it may run on, shared with everything else.
   */
  cpus?: number[];
}

/** The `cpus` option checked: 1 to 64 (HAProxy's thread limit) distinct CPU numbers; whether this machine has them is the caller's check (`--gateway-cpus`). */
export function assertCpus(cpus: readonly number[]): void {
  if (cpus.length === 0 || cpus.length > 64)
    throw new Error(`cpus: give 1 to 64 CPU numbers, got ${cpus.length}`);
  for (const c of cpus) {
    if (!Number.isInteger(c) || c < 0 || c > 4095)
      throw new Error(`cpus: '${c}' is not a CPU number (an integer from 0, as in /proc/cpuinfo)`);
  }
  if (new Set(cpus).size !== cpus.length) throw new Error(`cpus: ${cpus.join(',')} lists a CPU twice`);
}

export interface RenderInput {
  binds: BindSpec[];
  backends: RenderBackend[];
  statsSocketPath: string;
  /**
   * Syslog target, normally the in-process receiver. `unix` (a socket path)
   * and `tcp` (the default of the host/port form) go through an HAProxy ring
   * buffer whose forwarder writes lines in batches; `udp` sends one datagram
   * per request.
   */
  syslog?: { host: string; port: number; transport?: 'tcp' | 'udp' } | { transport: 'unix'; path: string };
  /**
   * Secret written after the tag of every request log line (`newLogKey()`);
   * the receiver drops records without it. Only HAProxy (which reads it from
   * this 0600 config) knows it, so a process that reaches the log socket or
   * port still cannot forge the records isolation acts on. HaproxyDataPlane
   * always sets one; absent, lines carry the bare tag (benchmarks, tests).
   */
  logKey?: string;
  /** Absolute directory where the map files will live (referenced from the cfg). */
  mapDir: string;
  options?: RenderOptions;
}

export interface RenderedConfig {
  cfg: string;
  /** File name (relative to mapDir) -> content. */
  files: Record<string, string>;
}

export const FRONTEND_NAME = 'bulwark_gateway';
/** Version tag at the start of every request log line; the parser checks it. */
export const LOG_TAG = 'bwlog1';
const LOG_RING = 'bulwark_logs';

/**
 * One request per line, space separated; free text fields are quoted and
 * escaped by HAProxy (`+Q`, `+E`) so the parser can split safely.
 * Fields: tag, request date (%tr: local time of this host, dd/Mon/yyyy:HH:MM:SS.mmm), client ip, backend, server, method, path, status,
 * Ta, Tr, retries, termination state, bytes read, caller, traceparent.
 * The tag is followed by the log key when there is one (`logFormat`).
 */
export const LOG_FORMAT =
  `${LOG_TAG} %tr %ci %b %s %HM %{+Q,+E}HP %ST %Ta %Tr %rc %tsc %B ` +
  `%{+Q,+E}[capture.req.hdr(0)] %{+Q,+E}[capture.req.hdr(1)]`;

const LOG_KEY_RE = /^[0-9a-f]{32}$/;

/** A fresh request log key: 128 random bits as 32 hex digits (safe unquoted in a log-format). */
export function newLogKey(): string {
  return randomBytes(16).toString('hex');
}

export function assertLogKey(key: string): void {
  if (!LOG_KEY_RE.test(key))
    throw new Error(`logKey must be 32 lower-case hex digits (newLogKey()), got ${key.length} characters`);
}

/** LOG_FORMAT with `key` after the tag. */
export function logFormat(key?: string): string {
  if (key === undefined) return LOG_FORMAT;
  assertLogKey(key);
  return `${LOG_TAG} ${key}${LOG_FORMAT.slice(LOG_TAG.length)}`;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Throws a clear error when a backend/server/alias name cannot be used in HAProxy. */
export function assertName(field: string, value: string): void {
  if (!NAME_RE.test(value)) {
    throw new Error(
      `${field} '${value}' is not usable as an HAProxy name: use 1-100 characters from [A-Za-z0-9._-], starting with a letter or digit`,
    );
  }
}

function assertAddress(field: string, value: string): void {
  if (!/^[A-Za-z0-9.:_-]+$/.test(value)) {
    throw new Error(`${field} '${value}' is not an IP address or host name`);
  }
}

function addr(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Options shared by `server` lines and runtime `add server`. Dynamic servers
 * in 2.6 inherit neither default-server nor the idle-connection pool defaults
 * of static servers: without an explicit `pool-max-conn`/`pool-purge-delay`
 * every request opened a new server connection (measured: 3-4k req/s instead
 * of 12-16k, see bench/dataplane/README.md).
 */
export function serverOptions(be: Pick<RenderBackend, 'checkIntervalMs'>, weight: number): string {
  const inter = be.checkIntervalMs ?? 1000;
  return `weight ${weight} check inter ${inter} fall 2 rise 1 pool-max-conn 1000 pool-purge-delay 5s`;
}

/** Path prefix key for a service name `<workload>.<app>.<project>`, or undefined when it has another shape. */
export function pathPrefixFor(serviceName: string): string | undefined {
  const parts = serviceName.split('.');
  if (parts.length !== 3) return undefined;
  const [workload, app, project] = parts as [string, string, string];
  return `/${project}/${app}/${workload}`;
}

export function renderConfig(input: RenderInput): RenderedConfig {
  const o = input.options ?? {};
  const maxConn = o.maxConn ?? 4000;
  const requestLogs = o.requestLogs ?? true;
  const traceHeaders = o.traceHeaders ?? true;
  if (input.binds.length === 0) throw new Error('binds: at least one {address, port} is required');

  const hosts: string[] = [];
  const paths: string[] = [];
  const seenHosts = new Map<string, string>();
  for (const be of input.backends) {
    assertName('backend name', be.name);
    if (be.name === FRONTEND_NAME) throw new Error(`backend name '${be.name}' is reserved`);
    for (const host of [be.name, ...be.aliases]) {
      assertName(`alias of backend ${be.name}`, host);
      const key = host.toLowerCase();
      const owner = seenHosts.get(key);
      if (owner !== undefined && owner !== be.name) {
        throw new Error(
          `host '${host}' is routed to both '${owner}' and '${be.name}': aliases must be unique`,
        );
      }
      if (owner === undefined) hosts.push(`${key} ${be.name}`);
      seenHosts.set(key, be.name);
    }
    const prefix = pathPrefixFor(be.name);
    if (prefix) paths.push(`${prefix} ${be.name}`);
    for (const s of be.servers) {
      assertName(`server name in ${be.name}`, s.name);
      assertAddress(`address of server ${be.name}/${s.name}`, s.address);
    }
  }

  const L: string[] = [];
  L.push('# Rendered by Bulwark; do not edit (overwritten on every structural change).');
  const syslog = input.syslog;
  // tcp and unix go through the ring; udp is one datagram per request.
  const ringLogs = syslog !== undefined && syslog.transport !== 'udp';
  if (ringLogs) {
    // Request threads only copy the line into this memory ring; one forwarder
    // writes many lines per syscall, and a slow or restarting receiver costs
    // the oldest lines, never request latency (measured: ~9 us less worker
    // CPU per request than one UDP datagram each, and far cheaper to receive).
    L.push(`ring ${LOG_RING}`);
    L.push('  format raw');
    L.push('  maxlen 4096');
    L.push('  size 4194304');
    L.push('  timeout connect 2s');
    L.push('  timeout server 30s');
    if (syslog.transport === 'unix') {
      assertUnixSocketPath('syslog.path', syslog.path);
      L.push(`  server receiver unix@${syslog.path}`);
    } else L.push(`  server receiver ${addr(syslog.host, syslog.port)}`);
    L.push('');
  }
  L.push('global');
  L.push(`  maxconn ${maxConn}`);
  if (o.cpus) {
    assertCpus(o.cpus);
    const sorted = [...o.cpus].sort((a, b) => a - b);
    L.push(`  nbthread ${sorted.length}`);
    // auto: thread 1 on the lowest CPU, thread 2 on the next, ... HAProxy 2.6 ignores
    // cpu-map with one thread: the process is started on its CPU (HaproxyProcessOptions.cpus).
    if (sorted.length > 1) L.push(`  cpu-map auto:1/1-${sorted.length} ${sorted.join(' ')}`);
  }
  L.push(`  stats socket ${input.statsSocketPath} mode 600 level admin expose-fd listeners`);
  L.push('  stats timeout 30s');
  // `format raw`: no syslog header to build per request (measured ~5 us of ~57 us
  // worker CPU per request with the rfc3164 header); the receiver knows
  // the sender, so priority/host/pid carry no information here.
  if (ringLogs) L.push(`  log ring@${LOG_RING} len 4096 local0 info`);
  else if (syslog?.transport === 'udp')
    L.push(`  log ${addr(syslog.host, syslog.port)} len 4096 format raw local0 info`);
  L.push('');
  L.push('defaults');
  L.push('  mode http');
  L.push('  log global');
  L.push('  option http-keep-alive');
  L.push(`  timeout connect ${o.connectTimeoutMs ?? 2000}ms`);
  L.push(`  timeout client ${o.idleTimeoutMs ?? 30000}ms`);
  L.push(`  timeout server ${o.idleTimeoutMs ?? 30000}ms`);
  L.push('  timeout http-request 10s');
  L.push('  timeout queue 5s');
  // Every retry goes to another server: a dead instance must not eat the retry budget.
  L.push('  option redispatch 1');
  L.push(`  retries ${o.retries ?? 2}`);
  // conn-failure: the request never reached a server, always safe. The
  // layer-7 conditions (no answer, timeout, a 5xx status) may replay a request
  // the server already saw; the backends disable them for unsafe methods
  // without an Idempotency-Key (see disable-l7-retry below). A 5xx is retried
  // so one failing instance costs its clients nothing while isolation reacts;
  // HAProxy logs only the final attempt, see isolation/sources/haproxy-stats.ts
  // for how the failed attempts are still attributed to their instance.
  L.push('  retry-on conn-failure empty-response response-timeout 500 502 503 504');
  L.push('');
  L.push(`frontend ${FRONTEND_NAME}`);
  for (const b of input.binds) {
    assertAddress('bind address', b.address);
    L.push(`  bind ${addr(b.address, b.port)}`);
  }
  // One variable, the map's answer: a variable's string is a malloc per request in 2.6,
  // so the normalised Host itself is not kept (the 404 below recomputes it).
  L.push(`  http-request set-var(txn.be) req.hdr(host),field(1,:),lower,map_str(${input.mapDir}/hosts.map)`);
  L.push(`  http-request set-var(txn.pfx) path,field(1,/,4) if !{ var(txn.be) -m found }`);
  L.push(
    `  http-request set-var(txn.be) var(txn.pfx),map_str(${input.mapDir}/paths.map) if !{ var(txn.be) -m found } { var(txn.pfx) -m found }`,
  );
  L.push(
    `  http-request return status 404 content-type text/plain lf-string "bulwark: no service for host '%[req.hdr(host),field(1,:),lower]' or path prefix '%[path,field(1,/,4)]' (route with Host: <workload>.<app>.<project> or path /<project>/<app>/<workload>/)\\n" if !{ var(txn.be) -m found }`,
  );
  L.push(
    `  http-request set-header X-Forwarded-Prefix %[var(txn.pfx)] if { var(txn.pfx),map_str(${input.mapDir}/paths.map) -m found }`,
  );
  L.push(
    `  http-request set-path %[path,regsub(^/[^/]*/[^/]*/[^/]*/?,/)] if { var(txn.pfx),map_str(${input.mapDir}/paths.map) -m found }`,
  );
  if (traceHeaders) {
    // One random uuid per request feeds both headers (it used to be three uuids
    // and two regex substitutions): X-Request-Id is the uuid; the W3C trace
    // context (version 00, sampled) takes its 32 hex digits as trace id (cut
    // out with bytes(), no regex) and their xxh64 hash as the 8-byte parent id.
    // When a client sent only one of the headers, the other is still new and
    // random. The trace id equals the request id when both were generated,
    // which makes the two easy to correlate.
    L.push('  http-request set-var(txn.bw_id) uuid');
    L.push(
      `  http-request set-header X-Request-Id %[var(txn.bw_id)] unless { req.hdr(x-request-id) -m found }`,
    );
    const hex = [
      [0, 8],
      [9, 4],
      [14, 4],
      [19, 4],
      [24, 12],
    ]
      .map(([at, len]) => `%[var(txn.bw_id),bytes(${at},${len})]`)
      .join('');
    L.push(
      `  http-request set-header traceparent 00-${hex}-%[var(txn.bw_id),xxh64,hex,lower]-01 unless { req.hdr(traceparent) -m found }`,
    );
  }
  // Captured after the headers are set so generated trace ids are logged too.
  L.push('  http-request capture req.hdr(x-bulwark-caller) len 128');
  L.push('  http-request capture req.hdr(traceparent) len 64');
  if (requestLogs) L.push(`  log-format "${logFormat(input.logKey)}"`);
  else L.push('  no log');
  L.push('  use_backend %[var(txn.be)]');
  L.push('');

  for (const be of input.backends) {
    L.push(`backend ${be.name}`);
    L.push('  balance roundrobin');
    if (be.serverTimeoutMs !== undefined) {
      if (!Number.isInteger(be.serverTimeoutMs) || be.serverTimeoutMs < 1)
        throw new Error(
          `serverTimeoutMs of backend ${be.name} must be a positive integer, got ${be.serverTimeoutMs}`,
        );
      // A response-timeout is retried on another server for safe requests (retry-on).
      L.push(`  timeout server ${be.serverTimeoutMs}ms`);
    }
    if (be.checkPath) {
      if (!/^\/[^\s]*$/.test(be.checkPath)) {
        throw new Error(
          `checkPath '${be.checkPath}' of backend ${be.name} must start with '/' and contain no spaces`,
        );
      }
      L.push(`  option httpchk GET ${be.checkPath}`);
    }
    // Unsafe methods are replayed only when the client promised idempotency;
    // connection failures (request never sent) are still retried.
    L.push('  acl bw_safe_method method GET HEAD OPTIONS TRACE');
    L.push('  acl bw_idem_key req.hdr(idempotency-key) -m found');
    L.push('  http-request disable-l7-retry if !bw_safe_method !bw_idem_key');
    L.push(
      `  http-error status 503 content-type text/plain lf-string "bulwark: no instance of service '${be.name}' is available\\n"`,
    );
    for (const s of be.servers) {
      const disabled = s.state === 'maint' ? ' disabled' : '';
      const weight = s.state === 'drain' ? 0 : s.weight;
      L.push(`  server ${s.name} ${addr(s.address, s.port)} ${serverOptions(be, weight)}${disabled}`);
    }
    L.push('');
  }

  return {
    cfg: L.join('\n') + '\n',
    files: {
      'hosts.map': hosts.join('\n') + '\n',
      'paths.map': paths.join('\n') + '\n',
    },
  };
}
