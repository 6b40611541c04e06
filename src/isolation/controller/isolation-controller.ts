/**
 * The isolation controller of one site: signals in, incidents and actions out.
 *
 *   signal feed ──► SignatureEngine ──► match ──► safety ──► action ──► incident
 *
 * Isolation is deliberately not a reconcile pass: the first thing it does is
 * one runtime-API call that puts the server in `maint` (about 1 ms), then it
 * tells the reconciler to hold the instance out (so no later sync undoes it),
 * quarantines the process (alive, unsupervised) and asks for a pass, which
 * starts the replacement because quarantined instances no longer count as
 * replicas. Evidence is collected in the background, after the instance is
 * out of traffic. Every step lands in the incident's timeline.
 *
 * Crash-only: an instance whose process died cannot be quarantined; it leaves
 * traffic the same way and the runtime restarts it (action `restart`).
 */
import { readFileSync } from 'node:fs';
import type { DataPlane } from '../../dataplane/dataplane.ts';
import type { AppResource } from '../../model/types.ts';
import type { InstanceStatus, RuntimeDriver } from '../../runtime/driver.ts';
import type { Store } from '../../store/store.ts';
import { serviceName } from '../../controlplane/controllers/plan.ts';
import type { Logger } from '../../util/logger.ts';
import { createIsolationMetrics } from '../metrics.ts';
import { ConflictError, NotFoundError } from '../../store/store.ts';
import { collectEvidence as defaultCollect } from '../evidence/collect.ts';
import { secretsOfEnv } from '../../util/secrets.ts';
import type { Incident } from '../../model/incidents.ts';
import type { Signal } from '../signals/types.ts';
import type { ProbeTarget } from '../sources/probes.ts';
import { parseProcStat } from '../sources/process-state.ts';
import { SignatureEngine } from '../signatures/engine.ts';
import type { Match } from '../signatures/types.ts';
import { addEvent, newIncident } from './incident-record.ts';
import { effectivePolicy, RuleCache, type EffectivePolicy } from './policy.ts';
import {
  decide,
  MASS_FAULT_WINDOW_MS,
  PEER_SLOW_FACTOR,
  type Decision,
  type SafetyContext,
} from './safety.ts';

/** Where signals come from (see src/isolation/sources). */

/** Second pass of closing an unresponsive instance's gateway connections, after the first. */
const HAND_BACK_AGAIN_MS = 150;
export interface SignalSink {
  signal(instanceId: string, s: Signal): void;
  logLine(instanceId: string, stream: 'stdout' | 'stderr', line: string, at: number): void;
}
export interface SignalFeed {
  start(sink: SignalSink): void;
  stop(): Promise<void>;
}

export interface IsolationControllerOptions {
  site: string;
  store: Store;
  driver: RuntimeDriver;
  dataplane: DataPlane;
  /** The site reconciler: keeps held-out instances in maint and starts replacements. */
  reconciler: { holdOut(id: string, held: boolean): void; trigger(): void };
  feed?: SignalFeed;
  /** Root directory of evidence bundles. */
  evidenceDir: string;
  log: Logger;
  /** How often time-driven signatures are checked. @default 100 */
  evaluateIntervalMs?: number;
  /** How often App specs (policies, rules) are re-read. @default 1000 */
  appRefreshMs?: number;
  /** Retention sweep (TTL of quarantined instances). @default 30000 */
  sweepIntervalMs?: number;
  engine?: SignatureEngine;
  collectEvidence?: typeof defaultCollect;
  /**
   * Whether the instance's process is already dead although the driver has not reported
   * its exit yet. @default a look at `/proc/<pid>/stat` (gone, or a zombie) when the
   * driver reports host pids (the local driver); false without a pid.
   */
  processGone?: (inst: InstanceStatus) => boolean;
}

export interface IsolationControllerStatus {
  site: string;
  watched: number;
  quarantined: string[];
  openIncidents: number;
  matches: number;
  engine: ReturnType<SignatureEngine['status']>;
}

const RATE_WINDOW_MS = 60_000;
const ALERT_DEDUPE_MS = 60_000;
/** After a suppressed isolation, let the rules fire again this much later (the situation may have changed). */
const REARM_AFTER_MS = 5_000;

/** A host process that no longer runs: no `/proc/<pid>` entry, or a zombie waiting to be reaped. */
export function hostProcessGone(inst: InstanceStatus, procRoot = '/proc'): boolean {
  if (inst.pid === undefined) return false;
  try {
    const st = parseProcStat(readFileSync(`${procRoot}/${inst.pid}/stat`, 'utf8'));
    return st !== undefined && (st.state === 'Z' || st.state === 'X');
  } catch {
    return true;
  }
}

const workloadKey = (i: { project: string; app: string; workload: string }): string =>
  `${i.project}/${i.app}/${i.workload}`;

export class IsolationController {
  private readonly o: Required<
    Pick<IsolationControllerOptions, 'evaluateIntervalMs' | 'appRefreshMs' | 'sweepIntervalMs'>
  > &
    IsolationControllerOptions;
  private readonly engine: SignatureEngine;
  private readonly rules = new RuleCache();
  private readonly metricsSink = createIsolationMetrics({
    quarantined: () => this.o.driver.list().filter((i) => i.phase === 'quarantined').length,
  });
  /** Last persisted version of each incident, so each duration is observed once. */
  private readonly lastWritten = new Map<string, Incident>();
  private apps = new Map<string, AppResource>();
  private secrets: readonly string[] = [];
  /** Incidents still in progress, by instance id (isolate: until resolved; restart: until mitigated). */
  private readonly active = new Map<string, Incident>();
  /** Incidents waiting for a replacement instance, by incident id. */
  private readonly awaitingReplacement = new Map<string, Incident>();
  private readonly isolations = new Map<string, number[]>();
  /** When an instance of the workload last left traffic (isolated, or out while restarted), by workload. */
  private readonly leftTraffic = new Map<string, number>();
  private readonly recentFaults = new Map<string, Map<string, number>>();
  private readonly alerted = new Map<string, number>();
  private readonly writes = new Map<string, Promise<void>>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly pending = new Set<Promise<unknown>>();
  private unwatch: (() => void) | undefined;
  private stopped = false;
  private matches = 0;

  constructor(opts: IsolationControllerOptions) {
    this.o = { evaluateIntervalMs: 100, appRefreshMs: 1000, sweepIntervalMs: 30_000, ...opts };
    this.engine = opts.engine ?? new SignatureEngine();
  }

  async start(): Promise<void> {
    await this.refreshApps();
    await this.resumeIncidents();
    for (const inst of this.o.driver.list()) this.track(inst);
    this.unwatch = this.o.driver.watch((ev) => {
      if (ev.type === 'removed') this.onRemoved(ev.id);
      else this.onChanged(ev.instance);
    });
    this.o.feed?.start({
      signal: (id, s) => this.onSignal(id, s),
      logLine: (id, stream, line, at) => {
        if (!this.watchable(id)) return;
        this.handleAll(this.engine.observeLogLine(id, stream, line, at));
      },
    });
    const every = (ms: number, fn: () => unknown): void => {
      const t = setInterval(() => {
        try {
          const r = fn();
          if (r instanceof Promise) this.background(r);
        } catch (err) {
          this.o.log.error({ err: (err as Error).message }, 'isolation timer failed');
        }
      }, ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.o.evaluateIntervalMs, () => this.handleAll(this.engine.evaluate()));
    every(this.o.appRefreshMs, () => this.refreshApps());
    every(this.o.sweepIntervalMs, () => this.sweep());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.unwatch?.();
    await this.o.feed?.stop();
    await Promise.allSettled([...this.pending]);
    await Promise.allSettled([...this.writes.values()]);
  }

  status(): IsolationControllerStatus {
    return {
      site: this.o.site,
      watched: this.engine.status().instances,
      quarantined: this.o.driver
        .list()
        .filter((i) => i.phase === 'quarantined')
        .map((i) => i.id),
      openIncidents: this.active.size,
      matches: this.matches,
      engine: this.engine.status(),
    };
  }

  /** Prometheus text of the isolation metrics. */
  metrics(): string {
    return this.metricsSink.render();
  }

  // ------------------------------------------------------------ operator actions

  /** Put a quarantined instance back into service (a false positive, or fixed in place). */
  async release(instanceId: string): Promise<Incident> {
    const inst = this.requireQuarantined(instanceId);
    await this.o.driver.unquarantine(inst.id);
    this.o.reconciler.holdOut(inst.id, false);
    this.engine.reset(inst.id);
    this.track(this.o.driver.get(inst.id) ?? inst);
    this.o.reconciler.trigger();
    const inc = await this.incidentOf(inst.id);
    addEvent(inc, 'released', Date.now(), 'returned to supervision and to traffic by an operator');
    this.finish(inc);
    return inc;
  }

  /** Stop and remove a quarantined instance (its evidence stays). */
  async deleteQuarantined(instanceId: string, why = 'stopped and removed by an operator'): Promise<Incident> {
    const inst = this.requireQuarantined(instanceId);
    const inc = await this.incidentOf(inst.id);
    await this.o.driver.remove(inst.id);
    this.o.reconciler.holdOut(inst.id, false);
    this.engine.forget(inst.id);
    addEvent(inc, 'deleted', Date.now(), why);
    this.finish(inc);
    return inc;
  }

  private requireQuarantined(instanceId: string): InstanceStatus {
    const inst = this.o.driver.get(instanceId);
    if (!inst) throw new NotFoundError(`instance '${instanceId}' not found on site ${this.o.site}`);
    if (inst.phase !== 'quarantined') {
      throw new ConflictError(
        `instance '${instanceId}' is ${inst.phase}, not quarantined: only quarantined instances can be released or deleted`,
      );
    }
    return inst;
  }

  private async incidentOf(instanceId: string): Promise<Incident> {
    const known = this.active.get(instanceId);
    if (known) return known;
    const stored = (await this.o.store.listIncidents({ instanceId, limit: 10 })).find(
      (i) => i.action.kind === 'isolate' && i.state !== 'resolved',
    );
    if (stored) return stored;
    throw new NotFoundError(`no open incident for quarantined instance '${instanceId}'`);
  }

  // ------------------------------------------------------------ tracking

  /** Re-read App specs now (an App changed): policies and rules apply without waiting for the periodic refresh. */
  refresh(): void {
    if (!this.stopped) this.background(this.refreshApps());
  }

  private async refreshApps(): Promise<void> {
    const apps = (await this.o.store.list('App')) as AppResource[];
    this.apps = new Map(apps.map((a) => [`${a.metadata.project}/${a.metadata.name}`, a]));
    this.secrets = [...new Set(apps.flatMap((a) => a.spec.workloads.flatMap((w) => secretsOfEnv(w.env))))];
    // Rules may have changed with a new generation: re-watch (the engine keeps windows).
    for (const inst of this.o.driver.list()) if (this.watchable(inst.id)) this.track(inst);
  }

  /**
   * Secret values of every known workload's env (by name: DB_PASSWORD, API_TOKEN, URL
   * passwords; see util/secrets.ts), for the control plane's log to remove.
   */
  secretValues(): readonly string[] {
    return this.secrets;
  }

  private appOf(i: { project: string; app: string }): AppResource | undefined {
    return this.apps.get(`${i.project}/${i.app}`);
  }

  /** The fast probe of an instance: its workload's readiness probe (HTTP or TCP), else none. */
  probeTargetOf(inst: InstanceStatus): ProbeTarget | undefined {
    const w = this.appOf(inst)?.spec.workloads.find((x) => x.name === inst.workload);
    const r = w?.health?.readiness;
    if (!r) return undefined;
    if ('http' in r) {
      const port = inst.ports[r.http.port];
      return port ? { http: { port, path: r.http.path } } : undefined;
    }
    if ('tcp' in r) {
      const port = inst.ports[r.tcp.port];
      return port ? { tcp: { port } } : undefined;
    }
    return undefined;
  }

  private policyOf(i: { project: string; app: string }): EffectivePolicy {
    return effectivePolicy(this.appOf(i)?.spec.isolation);
  }

  private watchable(id: string): boolean {
    const inst = this.o.driver.get(id);
    return (
      !!inst &&
      inst.site === this.o.site &&
      inst.phase !== 'quarantined' &&
      inst.phase !== 'stopping' &&
      !this.stopped
    );
  }

  private track(inst: InstanceStatus): void {
    if (inst.site !== this.o.site || inst.phase === 'quarantined') return;
    const app = this.appOf(inst);
    this.engine.watch(inst.id, app ? this.rules.rulesFor(app) : undefined);
  }

  private onRemoved(id: string): void {
    this.engine.forget(id);
    const inc = this.active.get(id);
    if (inc && inc.state !== 'resolved') {
      addEvent(
        inc,
        inc.action.kind === 'isolate' ? 'deleted' : 'resolved',
        Date.now(),
        'the instance was removed (app deleted or scaled)',
      );
      this.finish(inc);
    } else if (inc) {
      this.active.delete(id);
    }
    // Earlier incidents of the instance that are still open (alerts, start failures) end with it.
    this.background(this.resolveStored(id, inc?.id, 'the instance was removed (app deleted or scaled)'));
    this.o.reconciler.holdOut(id, false);
  }

  private async resolveStored(instanceId: string, except: string | undefined, why: string): Promise<void> {
    for (const old of await this.o.store.listIncidents({ instanceId, state: 'open', limit: 100 })) {
      if (old.id === except || old.site !== this.o.site) continue;
      addEvent(old, old.action.kind === 'isolate' ? 'deleted' : 'resolved', Date.now(), why);
      this.persist(old);
    }
  }

  private onChanged(inst: InstanceStatus): void {
    if (inst.site !== this.o.site) return;
    if (inst.phase !== 'quarantined') this.track(inst);
    this.closeIfRestarted(inst);
    for (const waiting of this.awaitingReplacement.values()) this.checkReplacement(waiting, inst);
  }

  /**
   * A crashed instance whose restarted process is ready closes its episode. Checked on every
   * driver event and again when a match is handled: the exit may be matched after the
   * restarted process already reported ready, and an episode left open would make the
   * controller ignore every later fault of that instance.
   */
  private closeIfRestarted(inst: InstanceStatus | undefined): void {
    if (!inst) return;
    const inc = this.active.get(inst.id);
    if (!inc || inc.action.kind !== 'restart' || !inst.ready || inst.pid === undefined) return;
    // The ready process must be a run started after this episode's exit (not the one that died).
    const exitAt = inst.lastExit ? Date.parse(inst.lastExit.at) : NaN;
    if (!inst.startedAt || !(Date.parse(inst.startedAt) >= exitAt)) return;
    if (exitAt < Date.parse(inc.detectedAt) - 10_000) return;
    const now = Date.now();
    addEvent(inc, 'replacement-ready', now, `restarted process ${inst.pid} is ready`);
    // Nothing is kept of a crash (the process is gone): once its successor serves, it is over.
    addEvent(inc, 'resolved', now, `recovered: the restarted process ${inst.pid} is ready and in traffic`);
    this.engine.reset(inst.id);
    this.active.delete(inst.id);
    this.persist(inc);
  }

  private checkReplacement(inc: Incident, inst: InstanceStatus): void {
    const quarantined = this.o.driver.get(inc.instanceId);
    if (
      inst.id === inc.instanceId ||
      workloadKey(inst) !== workloadKey(inc) ||
      inst.phase === 'quarantined' ||
      (quarantined && inst.ordinal !== quarantined.ordinal)
    )
      return;
    if (!inc.replacementId) {
      inc.replacementId = inst.id;
      addEvent(inc, 'replacement-started', Date.now(), `replacement ${inst.id} started`);
      this.persist(inc);
    }
    if (inc.replacementId === inst.id && inst.ready) {
      addEvent(inc, 'replacement-ready', Date.now(), `replacement ${inst.id} is ready and in traffic`);
      this.awaitingReplacement.delete(inc.id);
      this.persist(inc);
    }
  }

  /** After a control-plane restart: keep quarantined instances out, continue open incidents. */
  private async resumeIncidents(): Promise<void> {
    for (const inst of this.o.driver.list()) {
      if (inst.site === this.o.site && inst.phase === 'quarantined') this.o.reconciler.holdOut(inst.id, true);
    }
    for (const inc of await this.o.store.listIncidents({ state: 'open', limit: 1000 })) {
      if (inc.site !== this.o.site) continue;
      const inst = this.o.driver.get(inc.instanceId);
      if (inc.action.kind === 'isolate' && inst?.phase === 'quarantined') {
        this.active.set(inc.instanceId, inc);
        if (!inc.replacementReadyAt) this.awaitingReplacement.set(inc.id, inc);
      } else if (!inst) {
        // Its instance is gone (deleted with its app, scaled away, or never came back): nothing
        // is left to act on, so the incident ends, saying why.
        addEvent(
          inc,
          inc.action.kind === 'isolate' ? 'deleted' : 'resolved',
          Date.now(),
          'the instance was gone after a control-plane restart',
        );
        this.persist(inc);
      } else if (inc.action.kind === 'restart' && !inc.replacementReadyAt) {
        this.active.set(inc.instanceId, inc);
      } else if (inc.action.kind !== 'isolate') {
        // A restart that recovered, or an alert, whose end a previous process did not record.
        addEvent(
          inc,
          'resolved',
          Date.now(),
          'ended before a control-plane restart (the instance is running)',
        );
        this.persist(inc);
      }
    }
  }

  // ------------------------------------------------------------ matching

  private onSignal(id: string, s: Signal): void {
    if (!this.watchable(id)) return;
    this.handleAll(this.engine.observe(id, s));
  }

  private handleAll(matches: Match[]): void {
    for (const m of matches) this.background(this.handle(m));
  }

  private background(p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) =>
      this.o.log.error({ err: (err as Error).message }, 'isolation action failed'),
    );
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }

  private async handle(m: Match): Promise<void> {
    if (this.stopped) return;
    const inst = this.o.driver.get(m.instanceId);
    if (!inst || inst.phase === 'quarantined' || inst.phase === 'stopping') return;
    // One episode at a time per instance: a crashed process also stops answering probes,
    // which must not turn its restart into an isolation.
    this.closeIfRestarted(inst);
    const ongoing = this.active.get(inst.id);
    if (ongoing) {
      // The same failure again (a start failure or crash retried with backoff): one incident
      // with a count, not one per attempt.
      if (ongoing.signature === m.rule) {
        ongoing.occurrences = (ongoing.occurrences ?? 1) + 1;
        ongoing.lastSeenAt = new Date(m.detectedAt).toISOString();
        this.persist(ongoing);
      }
      return;
    }
    // A crash whose exit is not reported yet: the local driver notices exits on its 200 ms poll,
    // while HAProxy's failed attempts on the dead server (server-stats) can complete a 5xx streak
    // sooner. Isolating then would "quarantine" a dead process and file the crash as a 5xx burst
    // (and the crash itself would be dropped as a second episode). The exit's `crash` match follows
    // within a poll; re-arm the rules later in case it never does (the crash rule switched off).
    if (m.action === 'isolate' && (this.o.processGone ?? hostProcessGone)(inst)) {
      this.o.log.info(
        { instance: inst.id, signature: m.rule },
        'match on an instance whose process already exited: left to the crash rule',
      );
      const t = setTimeout(() => {
        if (!this.active.has(inst.id)) this.engine.reset(inst.id);
      }, REARM_AFTER_MS);
      t.unref();
      return;
    }
    this.matches++;
    const now = Date.now();
    const wk = workloadKey(inst);
    const faults = this.recentFaults.get(wk) ?? new Map<string, number>();
    this.recentFaults.set(wk, faults);
    // Only faults that would take an instance out of traffic count towards "most instances at
    // once": crashes are restarted whatever happens, and counting them made the first hang after
    // a series of crashes look like a shared-dependency failure (bench/isolation).
    if (m.action === 'isolate') faults.set(inst.id, now);
    for (const [id, at] of faults) if (now - at > MASS_FAULT_WINDOW_MS) faults.delete(id);
    const siblings = this.o.driver
      .list()
      .filter((i) => i.site === this.o.site && workloadKey(i) === wk && i.phase !== 'quarantined');
    const recent = (this.isolations.get(wk) ?? []).filter((t) => now - t < RATE_WINDOW_MS);
    this.isolations.set(wk, recent);
    const policy = this.policyOf(inst);
    const decision = decide({
      action: m.action,
      policy,
      otherReady: siblings.filter((i) => i.id !== inst.id && i.ready && !this.active.has(i.id)).length,
      total: siblings.length,
      recentIsolations: recent.length,
      recentlyFaulty: [...faults.keys()].filter((id) => siblings.some((s) => s.id === id)).length,
      ...(m.condition === 'latency'
        ? this.latencyContext(inst, siblings, now)
        : this.looksOverloaded(inst, m.condition)
          ? this.loadShiftContext(inst, siblings, now)
          : {}),
    });
    if (decision.action === 'alert' && this.dedupeAlert(inst.id, m.rule, now)) return;
    const inc = newIncident(inst, m, decision, now);
    this.o.log.warn(
      {
        incident: inc.id,
        instance: inst.id,
        signature: m.rule,
        action: decision.action,
        why: decision.reason,
      },
      `fault detected: ${m.evidence}`,
    );
    if (decision.action === 'isolate') {
      recent.push(now);
      this.active.set(inst.id, inc);
      await this.isolate(inst, inc, policy, m.unresponsive);
    } else if (decision.action === 'restart') {
      this.active.set(inst.id, inc);
      await this.takeOutOfTraffic(
        inst,
        inc,
        'out of traffic (server in maint) while the runtime restarts the process',
      );
      this.persist(inc);
      this.closeIfRestarted(this.o.driver.get(inst.id));
    } else {
      addEvent(
        inc,
        decision.action === 'alert' && m.action !== 'alert' ? 'suppressed' : 'alert',
        now,
        decision.reason,
      );
      addEvent(inc, 'resolved', now, 'alert only: nothing was changed');
      this.persist(inc);
      // Let the rules fire again later: a suppressed isolation may be allowed once the workload recovers.
      if (m.action === 'isolate') {
        const t = setTimeout(() => this.engine.reset(inst.id), REARM_AFTER_MS);
        t.unref();
      }
    }
  }

  private dedupeAlert(id: string, rule: string, now: number): boolean {
    const key = `${id}/${rule}`;
    const last = this.alerted.get(key);
    if (last !== undefined && now - last < ALERT_DEDUPE_MS) return true;
    this.alerted.set(key, now);
    return false;
  }

  private async takeOutOfTraffic(
    inst: InstanceStatus,
    inc: Incident,
    detail: string,
    unresponsive = false,
  ): Promise<void> {
    this.leftTraffic.set(workloadKey(inst), Date.now());
    const backend = serviceName(inst.project, inst.app, inst.workload);
    try {
      await this.o.dataplane.setServerState(backend, inst.id, 'maint');
      const at = Date.now();
      const handedBack = unresponsive ? await this.handBackHeldRequests(inst, backend) : '';
      addEvent(inc, 'isolated', at, `${detail}: ${backend}/${inst.id}${handedBack}`);
    } catch (err) {
      // Not routed (no HTTP port, or not synced yet): nothing to take out of traffic.
      addEvent(inc, 'isolated', Date.now(), `not in the data plane (${(err as Error).message}); ${detail}`);
    }
  }

  /**
   * Requests a stopped or deadlocked instance already holds would wait for the server timeout
   * and then be retried, often too late for the client's own timeout (bench/isolation: 2% of
   * requests lost per hang). Closing the gateway's connections to it makes them retry at once.
   * The process, its memory and its own sockets stay as they are (the fault scene).
   */
  /** What decides whether a slow instance is the fault: its own CPU throttling and its peers' latency. */
  private latencyContext(
    inst: InstanceStatus,
    siblings: InstanceStatus[],
    now: number,
  ): Pick<SafetyContext, 'peersSlow' | 'throttledRatio' | 'loadShift'> {
    const throttled = this.engine.window(inst.id)?.throttledRatio(2000, now);
    const shift = this.loadShift(inst, siblings, now);
    return {
      peersSlow: this.peersSlow(inst, siblings, now),
      ...(throttled !== undefined ? { throttledRatio: throttled } : {}),
      ...(shift ? { loadShift: shift } : {}),
    };
  }

  private loadShiftContext(
    inst: InstanceStatus,
    siblings: InstanceStatus[],
    now: number,
  ): Pick<SafetyContext, 'loadShift'> {
    const shift = this.loadShift(inst, siblings, now);
    return shift ? { loadShift: shift } : {};
  }

  /** Peers not serving now, and how long ago the last one left traffic (none left: undefined). */
  private loadShift(
    inst: InstanceStatus,
    siblings: InstanceStatus[],
    now: number,
  ): SafetyContext['loadShift'] {
    const left = this.leftTraffic.get(workloadKey(inst));
    const notReady = siblings.filter((s) => s.id !== inst.id && (!s.ready || this.active.has(s.id))).length;
    return left !== undefined && notReady > 0 ? { notReady, msAgo: now - left } : undefined;
  }

  /**
   * A match that an instance swamped by its peers' shed load also produces: probes or
   * connections that time out (a refusal or a bad status is no overload), or no answer while
   * requests are being accepted and wait (a stopped process is the `stopped` rule, which this
   * does not cover).
   */
  private looksOverloaded(inst: InstanceStatus, condition: string): boolean {
    const w = this.engine.window(inst.id);
    if (!w) return false;
    if (condition === 'probeFailures') return w.probeStreakOnlyTimeouts;
    // An overflowing accept backlog drops SYNs (Linux does not refuse them): connect timeouts.
    if (condition === 'connectFailures') return w.connectStreakOnlyTimeouts;
    if (condition === 'noResponse') return w.inflight > 0;
    return false;
  }

  /** How many ready peers are slower than their own p99 baseline (PEER_SLOW_FACTOR x) now. */
  private peersSlow(
    inst: InstanceStatus,
    siblings: InstanceStatus[],
    now: number,
  ): { slow: number; judged: number } {
    let slow = 0;
    let judged = 0;
    for (const s of siblings) {
      if (s.id === inst.id || !s.ready) continue;
      const w = this.engine.window(s.id);
      const base = w?.baseline(99, now);
      const p99 = w?.latencyPercentile(99, 1000, now, 5);
      if (!base || p99 === undefined) continue;
      judged++;
      if (p99 >= PEER_SLOW_FACTOR * base.valueMs) slow++;
    }
    return { slow, judged };
  }

  private async handBackHeldRequests(inst: InstanceStatus, backend: string): Promise<string> {
    // Once more a little later: a request HAProxy had assigned to the server just before the
    // maint took effect may open its connection after the first pass, and would then wait the
    // whole server timeout (the chaos suite's SIGSTOP runs saw such stragglers time out).
    const again = setTimeout(() => {
      this.o.dataplane.abortServerConnections(backend, inst.id).catch(() => undefined);
    }, HAND_BACK_AGAIN_MS);
    again.unref();
    try {
      const n = await this.o.dataplane.abortServerConnections(backend, inst.id);
      return n > 0
        ? `; ${n} gateway connection(s) to the unresponsive instance closed: the requests it held are retried on other instances`
        : '';
    } catch (err) {
      this.o.log.warn(
        { instance: inst.id, err: (err as Error).message },
        'could not hand back the requests held by an unresponsive instance; they run into the server timeout',
      );
      return '';
    }
  }

  private async isolate(
    inst: InstanceStatus,
    inc: Incident,
    policy: EffectivePolicy,
    unresponsive: boolean,
  ): Promise<void> {
    this.o.reconciler.holdOut(inst.id, true);
    await this.takeOutOfTraffic(inst, inc, 'out of traffic (server in maint)', unresponsive);
    const limit = this.o.driver.stats(inst.id)?.memoryLimitBytes;
    const caps = {
      ...(policy.quarantine.cpu !== undefined ? { cpu: policy.quarantine.cpu } : {}),
      ...(limit && policy.quarantine.memoryFactor > 1
        ? { memoryBytes: Math.round(limit * policy.quarantine.memoryFactor) }
        : {}),
    };
    const window = this.engine.window(inst.id);
    const requestHistory = window?.lastRequests(500) ?? [];
    this.engine.forget(inst.id);
    try {
      await this.o.driver.quarantine(inst.id, { reason: `${inc.id}: ${inc.signature}`, ...caps });
      const capText = [
        caps.cpu !== undefined ? `cpu capped at ${caps.cpu}` : '',
        caps.memoryBytes !== undefined
          ? `memory limit raised to ${Math.round(caps.memoryBytes / 2 ** 20)} MiB`
          : '',
      ]
        .filter(Boolean)
        .join(', ');
      addEvent(
        inc,
        'quarantined',
        Date.now(),
        `process ${inst.pid ?? '?'} kept alive, not probed, not restarted${capText ? `; ${capText}` : ''}`,
      );
    } catch (err) {
      addEvent(inc, 'quarantined', Date.now(), `quarantine failed: ${(err as Error).message}`);
    }
    this.awaitingReplacement.set(inc.id, inc);
    this.persist(inc);
    // The next pass starts the replacement: quarantined instances do not count as replicas.
    this.o.reconciler.trigger();
    this.background(this.collect(inst.id, inc, policy, requestHistory));
    this.background(this.enforceRetention(inst));
  }

  private async collect(
    id: string,
    inc: Incident,
    policy: EffectivePolicy,
    requestHistory: unknown[],
  ): Promise<void> {
    const inst = this.o.driver.get(id);
    if (!inst) return;
    const collect = this.o.collectEvidence ?? defaultCollect;
    const bundle = await collect({
      instance: inst,
      logs: (iid, q) => this.o.driver.logs(iid, q),
      requestHistory,
      outDir: this.o.evidenceDir,
      profile: policy.evidence.profile,
      profileDurationMs: policy.evidence.profileDurationMs,
      // What the instance prints of its own secrets is removed from the bundle.
      secrets: secretsOfEnv(this.appOf(inst)?.spec.workloads.find((w) => w.name === inst.workload)?.env),
    });
    inc.evidenceDir = bundle.dir;
    const parts = Object.entries(bundle.parts)
      .map(([k, p]) => `${k} ${p.status}`)
      .join(', ');
    addEvent(inc, 'evidence-collected', Date.now(), `bundle in ${bundle.durationMs} ms: ${parts}`);
    this.persist(inc);
  }

  /** Keep at most `maxInstances` quarantined instances per workload, deleting the oldest. */
  private async enforceRetention(inst: InstanceStatus): Promise<void> {
    const max = this.policyOf(inst).quarantine.maxInstances;
    const q = this.o.driver
      .list()
      .filter((i) => i.phase === 'quarantined' && workloadKey(i) === workloadKey(inst))
      .sort((a, b) => (a.quarantine?.since ?? '').localeCompare(b.quarantine?.since ?? ''));
    for (const old of q.slice(0, Math.max(0, q.length - max))) {
      await this.deleteQuarantined(
        old.id,
        `retention: more than quarantine.maxInstances ${max} quarantined instances of ${workloadKey(inst)}`,
      ).catch((err: unknown) =>
        this.o.log.warn({ instance: old.id, err: (err as Error).message }, 'retention delete failed'),
      );
    }
  }

  /** Delete quarantined instances older than their app's ttl. */
  private async sweep(): Promise<void> {
    const now = Date.now();
    for (const i of this.o.driver.list()) {
      if (i.phase !== 'quarantined' || !i.quarantine) continue;
      const ttl = this.policyOf(i).quarantine.ttlSeconds * 1000;
      if (now - Date.parse(i.quarantine.since) > ttl) {
        await this.deleteQuarantined(
          i.id,
          `retention: quarantined longer than ttlSeconds ${ttl / 1000}`,
        ).catch(() => undefined);
      }
    }
  }

  private finish(inc: Incident): void {
    this.active.delete(inc.instanceId);
    this.awaitingReplacement.delete(inc.id);
    this.persist(inc);
  }

  /** Writes of one incident are serialized so the store always ends with the latest document. */
  private persist(inc: Incident): void {
    const doc = structuredClone(inc);
    this.metricsSink.recordIncident(doc, this.lastWritten.get(inc.id));
    this.lastWritten.set(inc.id, doc);
    // Bounded: the oldest incidents are long finished (Map iterates in insertion order).
    if (this.lastWritten.size > 5000) this.lastWritten.delete(this.lastWritten.keys().next().value!);
    const prev = this.writes.get(inc.id) ?? Promise.resolve();
    const next = prev
      .then(() => this.o.store.putIncident(doc))
      .catch((err: unknown) =>
        this.o.log.error({ incident: inc.id, err: (err as Error).message }, 'cannot persist incident'),
      );
    this.writes.set(inc.id, next);
    void next.finally(() => {
      if (this.writes.get(inc.id) === next) this.writes.delete(inc.id);
    });
  }
}

export type { Decision };
