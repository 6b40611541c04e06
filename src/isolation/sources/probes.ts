/**
 * Fast active probes, far tighter than readiness (which is tuned not to flap):
 * an HTTP GET on the instance's readiness path, or a TCP connect when it has
 * no HTTP readiness, every ~200 ms with a ~400 ms timeout. They cover
 * instances that get no traffic, and see a hang without waiting for a
 * request to time out.
 *
 * Cost bounds (2 cores, 10-20 instances): at most one probe in flight per
 * instance (a hung one is not probed again until its probe timed out), at
 * most `maxConcurrent` overall, keep-alive connections for HTTP.
 *
 * Which instances: those with a pid, not `stopping`/`quarantined`, and only
 * once the current process has been `ready` once: a starting instance failing
 * probes is readiness's business, not a fault to isolate.
 */
import http from 'node:http';
import net from 'node:net';
import type { InstanceStatus } from '../../runtime/driver.ts';
import { BaseSource, Poller, errorText, positiveMs } from './base.ts';
import type { SourceOptions } from './types.ts';

/** A probe whose timeout fired after this process had stalled: no verdict on the instance. */
const INCONCLUSIVE = '\u0000inconclusive';

export type ProbeTarget = { http: { port: number; path: string } } | { tcp: { port: number } };

export interface ProbeSourceOptions extends SourceOptions {
  /**
   * What to probe on an instance; undefined = do not probe it. The caller maps
   * the app's readiness probe (`http.path` + the port named by `http.port`).
   * @default TCP connect to the port named `http`, else the first port
   */
  target?: (inst: InstanceStatus) => ProbeTarget | undefined;
  /** @default 200 */
  intervalMs?: number;
  /** @default 400 */
  timeoutMs?: number;
  /** @default 4 */
  maxConcurrent?: number;
}

/** Default target: a TCP connect to the `http` port, else the first port. */
export function defaultProbeTarget(inst: InstanceStatus): ProbeTarget | undefined {
  const port = inst.ports['http'] ?? Object.values(inst.ports)[0];
  return port ? { tcp: { port } } : undefined;
}

interface Armed {
  pid: number;
  inflight: boolean;
  lastSentAt: number;
}

export class ProbeSource extends BaseSource {
  readonly name = 'probes';
  private readonly poller: Poller;
  private readonly target: (inst: InstanceStatus) => ProbeTarget | undefined;
  private readonly timeoutMs: number;
  private readonly maxConcurrent: number;
  /** Instances whose current process was seen ready (armed for probing). */
  private readonly armed = new Map<string, Armed>();
  private readonly active = new Set<Promise<void>>();
  private readonly cancels = new Set<() => void>();
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  private probes = 0;
  private skippedBusy = 0;
  private inconclusive = 0;

  constructor(opts: ProbeSourceOptions = {}) {
    super(opts);
    this.target = opts.target ?? defaultProbeTarget;
    this.timeoutMs = positiveMs('timeoutMs', opts.timeoutMs ?? 400);
    this.maxConcurrent = opts.maxConcurrent ?? 4;
    if (!Number.isInteger(this.maxConcurrent) || this.maxConcurrent < 1)
      throw new Error(`maxConcurrent must be an integer >= 1, got ${this.maxConcurrent}`);
    this.poller = new Poller(
      positiveMs('intervalMs', opts.intervalMs ?? 200),
      () => this.round(),
      (err) => this.fail(err),
    );
  }

  protected onStart(): void {
    this.poller.start();
  }

  protected held(): number {
    return this.armed.size;
  }

  /**
   * Probes sent, rounds where an instance was skipped because `maxConcurrent` probes were busy,
   * and probes whose timeout fired so late (this process stalled) that they judged nothing.
   */
  counters(): { probes: number; skippedBusy: number; inflight: number; inconclusive: number } {
    return {
      probes: this.probes,
      skippedBusy: this.skippedBusy,
      inflight: this.active.size,
      inconclusive: this.inconclusive,
    };
  }

  private round(): void {
    if (!this.running) return;
    const instances = this.view?.list() ?? [];
    const live = new Set<string>();
    const eligible: InstanceStatus[] = [];
    for (const inst of instances) {
      if (!inst.pid || inst.phase === 'stopping' || inst.phase === 'quarantined') continue;
      live.add(inst.id);
      let a = this.armed.get(inst.id);
      if (a && a.pid !== inst.pid && !a.inflight) a = undefined;
      if (!a) {
        if (!inst.ready) continue;
        a = { pid: inst.pid, inflight: false, lastSentAt: -Infinity };
        this.armed.set(inst.id, a);
      }
      if (!a.inflight) eligible.push(inst);
    }
    for (const [id, a] of this.armed) if (!live.has(id) && !a.inflight) this.armed.delete(id);
    // Longest-waiting first, so a saturated round does not always starve the same instances.
    eligible.sort((x, y) => this.armed.get(x.id)!.lastSentAt - this.armed.get(y.id)!.lastSentAt);
    for (const inst of eligible) {
      if (this.active.size >= this.maxConcurrent) {
        this.skippedBusy++;
        continue;
      }
      const target = this.target(inst);
      if (target) this.launch(inst, target);
    }
  }

  private launch(inst: InstanceStatus, target: ProbeTarget): void {
    const a = this.armed.get(inst.id)!;
    a.inflight = true;
    a.lastSentAt = Date.now();
    this.probes++;
    const pid = inst.pid!;
    const started = performance.now();
    const p = this.probe(inst.ip, target)
      .then((error) => {
        const latencyMs = Math.round((performance.now() - started) * 10) / 10;
        const now = this.view?.get(inst.id);
        // Stale: stopped meanwhile, or the answer concerns a process that is gone.
        if (
          !this.running ||
          !now ||
          now.pid !== pid ||
          now.phase === 'quarantined' ||
          now.phase === 'stopping'
        )
          return;
        if (error === INCONCLUSIVE) {
          this.inconclusive++;
          return;
        }
        this.emit(inst.id, {
          type: 'probe',
          at: Date.now(),
          ok: error === undefined,
          latencyMs,
          ...(error !== undefined ? { error } : {}),
          ...(error === this.timeoutError() ? { timedOut: true } : {}),
        });
      })
      .catch((err: unknown) => this.fail(err))
      .finally(() => {
        a.inflight = false;
        this.active.delete(p);
      });
    this.active.add(p);
  }

  private timeoutError(): string {
    return `no answer within ${this.timeoutMs} ms`;
  }

  /** Resolves with undefined when the probe passed, else with why it failed. Never rejects. */
  private probe(ip: string, target: ProbeTarget): Promise<string | undefined> {
    return new Promise((resolve) => {
      let done = false;
      let cleanup: (failed: boolean) => void = () => undefined;
      const finish = (error: string | undefined): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.cancels.delete(cancel);
        cleanup(error !== undefined);
        resolve(error);
      };
      const cancel = (): void => finish('probe cancelled');
      this.cancels.add(cancel);
      const armedAt = performance.now();
      const timer = setTimeout(() => {
        // A timer that fires far too late means this process (or the whole host) was stalled:
        // an answer may be waiting unread in the socket, and every instance's probe times out
        // at once. Let pending I/O run first; still nothing after a stall is no verdict on the
        // instance (a host-wide CPU starvation isolated a healthy peer this way).
        const lateMs = performance.now() - armedAt - this.timeoutMs;
        if (lateMs <= this.timeoutMs / 2) {
          finish(this.timeoutError());
          return;
        }
        setImmediate(() => finish(INCONCLUSIVE));
      }, this.timeoutMs);
      if ('tcp' in target) {
        const sock = net.connect({ host: ip, port: target.tcp.port });
        cleanup = () => sock.destroy();
        sock.once('connect', () => finish(undefined));
        sock.on('error', (err) => finish(`tcp connect ${ip}:${target.tcp.port}: ${errorText(err)}`));
        return;
      }
      const { port, path } = target.http;
      const req = http.get(
        { host: ip, port, path, agent: this.agent, headers: { 'user-agent': 'bulwark-probe' } },
        (res) => {
          res.on('error', () => undefined);
          res.resume();
          const code = res.statusCode ?? 0;
          // Like Kubernetes: 200-399 is a pass.
          finish(code >= 200 && code < 400 ? undefined : `GET ${path} answered ${code}`);
        },
      );
      // A failed or timed-out request must not leave its socket in the keep-alive pool.
      cleanup = (failed) => {
        if (failed) req.destroy();
      };
      req.on('error', (err) => finish(`GET http://${ip}:${port}${path}: ${errorText(err)}`));
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.poller.stop();
    for (const c of [...this.cancels]) c();
    await Promise.all([...this.active]);
    this.agent.destroy();
    this.armed.clear();
  }
}
