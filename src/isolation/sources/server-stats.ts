/**
 * Per-server counters of the data plane, polled every ~100 ms:
 *
 * 1. `InflightSignal` from `scur` (requests on the server right now): the only
 *    view of requests a hung instance never answers, since HAProxy logs a
 *    request when it ends.
 * 2. A `RequestSignal` for every attempt that failed on a server and was
 *    retried elsewhere. The gateway retries idempotent requests (GET, or any
 *    method with an Idempotency-Key) on another server after a 5xx, an empty
 *    response, a response timeout or a connection failure, and HAProxy logs
 *    only the final attempt: a failing instance whose every attempt is
 *    retried never appears in a log line at all.
 *
 * What HAProxy 2.6 counts (measured with /usr/sbin/haproxy 2.6.12, two
 * servers, `retries 2`, `option redispatch 1`, `retry-on conn-failure
 * empty-response response-timeout 500 502 503 504`):
 *
 * | failed attempt, then retried                 | counters of the failed server        |
 * | -------------------------------------------- | ------------------------------------ |
 * | 500/503 answer, moved to another server      | stot+1, wretr+1, wredis+1            |
 * | empty response (reset after read), moved     | stot+1, wretr+1, wredis+1            |
 * | response timeout, moved                      | stot+1, wretr+1, wredis+1            |
 * | connection refused (instance killed), moved  | stot+1, wredis+1                     |
 * | 500 answer, retried on the same server       | stot+1, wretr+2                      |
 *
 * and, decisively, NONE of hrsp_5xx, eresp, econ, srv_abrt, cli_abrt or
 * req_tot moves for a retried attempt: they count only the final, logged
 * attempt (a POST without key answered 500: hrsp_5xx+1 and a log line with
 * that server; a final timeout: eresp+1 and an `sH` log line). So no error
 * counter can be diffed against the log. `stot` can: it counts every attempt
 * assigned to the server, logged or not. Hence, per server:
 *
 *   unlogged finished attempts U = Δ(stot − scur) − (log lines naming the server)
 *
 * and every one of them failed (HAProxy only retries failures; a client that
 * HAProxy closed silently on a kept-alive connection after an empty response
 * is neither logged nor counted in eresp, and is a failure too). Logs arrive
 * a few ms after the counters move, so an attempt is reported only once it
 * stayed unlogged for `logGraceMs`; logs arriving later than that would be
 * counted twice, logs for attempts never in `stot` are not carried as a debt
 * (a real failure is never hidden to make totals balance).
 *
 * The kind of failure is not in any counter; it is estimated from
 * W = Δ(wretr + wredis): a layer-7 retry adds 2, a connection failure 1, so
 * min(U, W − U) attempts are reported `http-5xx` (status -1: a 5xx, an empty
 * answer or a timeout, HAProxy does not say which) and the rest
 * `connect-refused`. Timing is unknown (`totalMs` 0, stamped when the
 * attempt was seen), so these signals are marked `inferred`: they count in
 * rates (`errorRate`), never in streaks. Counters start afresh with every run
 * of the process and whenever it joins traffic, and for `admitGraceMs` after
 * it joined nothing inferred is charged to it (only logged failures).
 *
 * Requires request logs on the data plane (`requestLogs: true`, the default):
 * without them every attempt would look unlogged.
 */
import type { DataPlane, ServerRuntimeStats } from '../../dataplane/dataplane.ts';
import type { RequestSignal } from '../signals/types.ts';
import { BaseSource, Poller, positiveMs } from './base.ts';
import type { SourceOptions } from './types.ts';

export interface ServerStatsSourceOptions extends SourceOptions {
  dataPlane: Pick<DataPlane, 'stats' | 'onRequest'>;
  /** @default 100 */
  intervalMs?: number;
  /** How long an attempt must stay unlogged before it is reported as a failed retried attempt. @default 100 */
  logGraceMs?: number;
  /** Most synthesized request signals per instance per poll; the rest are dropped and counted. @default 200 */
  maxRequestSignalsPerPoll?: number;
  /**
   * Admission grace: for this long after an instance joins traffic (ready after a start, a
   * restart or a release), failures inferred from its counters are not charged to it (only
   * logged failures count). Its server's counters then still mix attempts of the previous
   * run, which was refused while it died, with the state change itself. @default 1000
   */
  admitGraceMs?: number;
}

interface Sample {
  at: number;
  unlogged: number;
  retryCounters: number;
}

/** Accounting of one backend/server row since its baseline. */
interface ServerAccount {
  instanceId: string;
  /** The run the baseline belongs to (pid and restart count): a new run starts a new account. */
  run: string;
  /** When the instance was last seen joining traffic (ready after not ready), for the admission grace. */
  admittedAt: number;
  lastStot: number;
  doneBase: number;
  retryBase: number;
  logged: number;
  samples: Sample[];
  reported: number;
  reportedL7: number;
}

export interface ServerStatsSourceStatus {
  /** Failed retried attempts reported (not in the log). */
  retriedAttemptsReported: number;
  /** Synthesized signals dropped by `maxRequestSignalsPerPoll`. */
  dropped: number;
  /** Counter resets seen (HAProxy restart, server re-added). */
  resets: number;
  /** Inferred failures not charged because the instance had just joined traffic (admitGraceMs). */
  graced: number;
}

export class ServerStatsSource extends BaseSource {
  readonly name = 'server-stats';
  private readonly dataPlane: Pick<DataPlane, 'stats' | 'onRequest'>;
  private readonly poller: Poller;
  private readonly graceMs: number;
  private readonly intervalMs: number;
  private readonly maxPerPoll: number;
  private readonly admitGraceMs: number;
  private readonly wasReady = new Map<string, boolean>();
  private readonly accounts = new Map<string, ServerAccount>();
  private readonly lastInflight = new Map<string, number>();
  private unsubscribe: (() => void) | undefined;
  private retriedReported = 0;
  private dropped = 0;
  private resets = 0;
  private graced = 0;

  constructor(opts: ServerStatsSourceOptions) {
    super(opts);
    this.dataPlane = opts.dataPlane;
    this.intervalMs = positiveMs('intervalMs', opts.intervalMs ?? 100);
    this.graceMs = positiveMs('logGraceMs', opts.logGraceMs ?? 100);
    this.maxPerPoll = opts.maxRequestSignalsPerPoll ?? 200;
    this.admitGraceMs = opts.admitGraceMs ?? 1000;
    if (!Number.isFinite(this.admitGraceMs) || this.admitGraceMs < 0) {
      throw new Error(`admitGraceMs must be a number of ms >= 0 (got ${String(opts.admitGraceMs)})`);
    }
    this.poller = new Poller(
      this.intervalMs,
      () => this.poll(),
      (err) => this.fail(err),
    );
  }

  protected onStart(): void {
    this.unsubscribe = this.dataPlane.onRequest((log) => {
      if (!log.server) return;
      const acc = this.accounts.get(`${log.backend}/${log.server}`);
      if (acc) acc.logged++;
    });
    this.poller.start();
  }

  protected held(): number {
    return this.accounts.size;
  }

  counters(): ServerStatsSourceStatus {
    return {
      retriedAttemptsReported: this.retriedReported,
      dropped: this.dropped,
      resets: this.resets,
      graced: this.graced,
    };
  }

  private async poll(): Promise<void> {
    // Log counts as of before the snapshot: a log arriving while the answer is on its way may
    // be for an attempt the snapshot does not include yet. Counted this way an attempt can
    // only look unlogged for a moment (absorbed by logGraceMs), never logged-before-made.
    const loggedAtSend = new Map<string, number>();
    for (const [key, acc] of this.accounts) loggedAtSend.set(key, acc.logged);
    const rows = await this.dataPlane.stats();
    const now = Date.now();
    const view = this.view;
    if (!view || !this.running) return;
    const inflight = new Map<string, number>();
    const seen = new Set<string>();
    const admitted = new Set<string>();
    for (const inst of view.list()) {
      if (inst.ready && this.wasReady.get(inst.id) === false) admitted.add(inst.id);
      this.wasReady.set(inst.id, inst.ready);
    }
    for (const id of this.wasReady.keys()) if (!view.get(id)) this.wasReady.delete(id);
    for (const r of rows) {
      const inst = view.get(r.server);
      if (!inst) continue;
      const key = `${r.backend}/${r.server}`;
      seen.add(key);
      inflight.set(r.server, (inflight.get(r.server) ?? 0) + r.currentSessions);
      this.account(
        key,
        r,
        now,
        loggedAtSend.get(key),
        `${inst.pid ?? '-'}:${inst.restarts}`,
        admitted.has(inst.id),
      );
    }
    for (const key of this.accounts.keys()) if (!seen.has(key)) this.accounts.delete(key);
    for (const [id, count] of inflight) {
      // Repeated while non-zero: a hang is "requests waited the whole time", not one sample.
      if (count > 0 || this.lastInflight.get(id) !== count)
        this.emit(id, { type: 'inflight', at: now, count });
      this.lastInflight.set(id, count);
    }
    for (const id of this.lastInflight.keys()) if (!inflight.has(id)) this.lastInflight.delete(id);
  }

  private account(
    key: string,
    r: ServerRuntimeStats,
    now: number,
    loggedAtSend: number | undefined,
    run: string,
    justAdmitted: boolean,
  ): void {
    const done = r.totalSessions - r.currentSessions;
    const retryCounters = (r.retries ?? 0) + (r.redispatches ?? 0);
    let acc = this.accounts.get(key);
    if (acc && r.totalSessions < acc.lastStot) {
      // Counters went backwards: a new HAProxy worker or the server was deleted and re-added.
      this.resets++;
      acc = undefined;
    }
    // A new run of the process (restart) or a return to traffic: what the counters moved before
    // belongs to the previous run or to the state change, never to the process answering now.
    // The server keeps its name across restarts, so without this a SIGKILLed predecessor's
    // refused attempts were charged to its healthy successor.
    if (acc && (acc.run !== run || justAdmitted)) acc = undefined;
    if (!acc) {
      this.accounts.set(key, {
        instanceId: r.server,
        run,
        admittedAt: justAdmitted || this.accounts.has(key) ? now : -Infinity,
        lastStot: r.totalSessions,
        doneBase: done,
        retryBase: retryCounters,
        logged: 0,
        samples: [],
        reported: 0,
        reportedL7: 0,
      });
      return;
    }
    acc.lastStot = r.totalSessions;
    acc.samples.push({
      at: now,
      unlogged: done - acc.doneBase - (loggedAtSend ?? 0),
      retryCounters: retryCounters - acc.retryBase,
    });
    // The newest sample at least graceMs old; what stayed unlogged since then is settled.
    let settledIdx = -1;
    for (let i = acc.samples.length - 1; i >= 0; i--) {
      if (acc.samples[i]!.at <= now - this.graceMs) {
        settledIdx = i;
        break;
      }
    }
    if (settledIdx < 0) return;
    if (settledIdx > 0) acc.samples.splice(0, settledIdx);
    const settled = acc.samples[0]!;
    // Only what held for the whole grace period counts, in either direction.
    let settledUnlogged = settled.unlogged;
    let settledMax = settled.unlogged;
    for (const s of acc.samples) {
      settledUnlogged = Math.min(settledUnlogged, s.unlogged);
      settledMax = Math.max(settledMax, s.unlogged);
    }
    if (settledMax < acc.reported) {
      // More logs than attempts (an attempt counted before the baseline, or a log later than
      // the grace period): carried as no debt, so a later real failure is never hidden.
      acc.reported = settledMax;
      acc.reportedL7 = Math.min(acc.reportedL7, Math.max(0, settledMax));
    }
    // Every failed attempt HAProxy hid behind a retry moved this server's retry counters
    // (wretr/wredis); attempts that look unlogged without them are accounting noise (a log
    // later than the grace period, a session counted across a maint/ready change), and
    // reporting them isolated healthy instances in the isolation benchmark.
    settledUnlogged = Math.min(settledUnlogged, settled.retryCounters);
    if (settledUnlogged <= acc.reported) return;
    const fresh = settledUnlogged - acc.reported;
    const l7Total = Math.min(settledUnlogged, Math.max(0, settled.retryCounters - settledUnlogged));
    const l7 = Math.min(fresh, Math.max(0, l7Total - acc.reportedL7));
    acc.reported = settledUnlogged;
    acc.reportedL7 += l7;
    if (settled.at - acc.admittedAt < this.admitGraceMs) {
      this.graced += fresh;
      return;
    }
    this.retriedReported += fresh;
    this.report(acc.instanceId, settled.at, l7, fresh - l7);
  }

  private report(instanceId: string, at: number, l7: number, connect: number): void {
    let budget = this.maxPerPoll;
    const one = (outcome: RequestSignal['outcome'], n: number): void => {
      const emitNow = Math.min(n, budget);
      budget -= emitNow;
      this.dropped += n - emitNow;
      for (let i = 0; i < emitNow; i++) {
        this.emit(instanceId, {
          type: 'request',
          at,
          startedAt: at,
          method: '-',
          status: -1,
          totalMs: 0,
          serverMs: -1,
          retries: 0,
          terminationState: outcome === 'http-5xx' ? 'retried-l7' : 'retried-conn',
          outcome,
          inferred: true,
        });
      }
    };
    one('connect-refused', connect);
    one('http-5xx', l7);
  }

  async stop(): Promise<void> {
    this.running = false;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.poller.stop();
    this.accounts.clear();
    this.lastInflight.clear();
    this.wasReady.clear();
  }
}
