/**
 * SignatureEngine: matches fault signatures against per-instance signal
 * windows. Pure and synchronous (no timers, no I/O): the isolation controller
 * feeds it signals as they arrive and calls `evaluate()` on its own tick
 * (every 50-100 ms), acting on the returned matches.
 *
 * Cost: `observe` updates the instance window (O(1)) and runs only the rules
 * woken by that signal type; `evaluate` runs only time-driven rules (latency,
 * no response, error rate, memory, CPU), each O(log n) or a sort of the last
 * second of requests, cached between ticks.
 *
 * Dedupe: once a rule matched an instance it stays matched (and is not
 * evaluated) until `reset(instanceId)`, so an ongoing fault yields one match.
 *
 * @example
 * const engine = new SignatureEngine({ now: Date.now });
 * engine.watch('bank.accounts.api-0-k3f9', resolveRules(app.spec.isolation?.signatures));
 * dataPlane.onRequest((log) => {
 *   const r = fromRequestLog(log);
 *   if (r) act(engine.observe(r.instanceId, r.signal));
 * });
 * setInterval(() => act(engine.evaluate()), 50);
 */
import { LogLineAssembler } from '../signals/log-assembler.ts';
import type { LogLineAssemblerOptions } from '../signals/log-assembler.ts';
import type { LogStream, Signal, SignalType } from '../signals/types.ts';
import { InstanceWindow, compileWindowOptions } from '../signals/window.ts';
import type { CompiledWindowOptions, InstanceWindowOptions } from '../signals/window.ts';
import { BUILTIN_RULES } from './builtins.ts';
import { compileCondition } from './conditions.ts';
import type { CompiledCondition } from './conditions.ts';
import type { Match, Rule } from './types.ts';

export interface SignatureEngineOptions {
  /** Rules for instances watched without their own. @default BUILTIN_RULES */
  defaultRules?: readonly Rule[];
  window?: InstanceWindowOptions;
  logAssembler?: LogLineAssemblerOptions;
  /** Clock for `evaluate()` without an argument and for `detectedAt`. @default Date.now */
  now?: () => number;
}

interface CompiledRule {
  rule: Rule;
  cond: CompiledCondition;
}

/** A rule set compiled once and shared by every instance of an app. */
class CompiledRuleSet {
  readonly rules: CompiledRule[];
  readonly bySignal = new Map<SignalType, number[]>();
  readonly timed: number[] = [];

  constructor(rules: readonly Rule[]) {
    this.rules = rules
      .filter((r) => r.enabled !== false)
      .map((rule) => ({ rule, cond: compileCondition(rule.when) }));
    this.rules.forEach((r, i) => {
      for (const t of r.cond.signals) {
        let list = this.bySignal.get(t);
        if (!list) this.bySignal.set(t, (list = []));
        list.push(i);
      }
      if (r.cond.timed) this.timed.push(i);
    });
  }
}

interface InstanceState {
  set: CompiledRuleSet;
  window: InstanceWindow;
  ruleStates: unknown[];
  matched: Map<string, Match>;
}

export interface SignatureEngineStatus {
  instances: number;
  signalsObserved: number;
  evaluations: number;
  activeMatches: number;
  pendingLogEvents: number;
}

export class SignatureEngine {
  private readonly clock: () => number;
  private readonly windowOptions: CompiledWindowOptions;
  private readonly defaultSet: CompiledRuleSet;
  private readonly setCache = new WeakMap<readonly Rule[], CompiledRuleSet>();
  private readonly instances = new Map<string, InstanceState>();
  private readonly logs: LogLineAssembler;
  private signalsObserved = 0;
  private evaluations = 0;

  constructor(opts: SignatureEngineOptions = {}) {
    this.clock = opts.now ?? Date.now;
    this.windowOptions = compileWindowOptions(opts.window);
    this.defaultSet = new CompiledRuleSet(opts.defaultRules ?? BUILTIN_RULES);
    this.logs = new LogLineAssembler(opts.logAssembler);
  }

  /**
   * Start watching an instance with its app's resolved rules (see
   * `resolveRules`); pass the same array for every instance of an app so it
   * is compiled once. Re-watching with other rules keeps the window and
   * clears rule state and matches.
   */
  watch(instanceId: string, rules?: readonly Rule[]): void {
    const set = rules ? this.compiled(rules) : this.defaultSet;
    const cur = this.instances.get(instanceId);
    if (cur && cur.set === set) return;
    this.instances.set(instanceId, {
      set,
      window: cur?.window ?? new InstanceWindow(this.windowOptions),
      ruleStates: set.rules.map((r) => r.cond.newState()),
      matched: new Map(),
    });
  }

  private compiled(rules: readonly Rule[]): CompiledRuleSet {
    let set = this.setCache.get(rules);
    if (!set) this.setCache.set(rules, (set = new CompiledRuleSet(rules)));
    return set;
  }

  private state(instanceId: string): InstanceState {
    let st = this.instances.get(instanceId);
    if (!st) {
      this.watch(instanceId);
      st = this.instances.get(instanceId)!;
    }
    return st;
  }

  /**
   * Feed one signal; returns the matches it completed right away (event-driven
   * rules: exits, streaks, log patterns, ...). Instances not yet watched get
   * the default rules.
   */
  observe(instanceId: string, signal: Signal): Match[] {
    this.signalsObserved++;
    const st = this.state(instanceId);
    const at = st.window.observe(signal);
    const idx = st.set.bySignal.get(signal.type);
    if (!idx) return [];
    const out: Match[] = [];
    for (const i of idx) this.run(instanceId, st, i, at, signal, out);
    return out;
  }

  /**
   * Feed one raw stdout/stderr line; stack traces are grouped into one log
   * event first (see `LogLineAssembler`), so a match may come from a later
   * `observeLogLine` or from `evaluate` once the event is complete.
   */
  observeLogLine(instanceId: string, stream: LogStream, line: string, at: number = this.clock()): Match[] {
    const out: Match[] = [];
    for (const ev of this.logs.push(instanceId, stream, line, at))
      out.push(...this.observe(ev.instanceId, ev.signal));
    return out;
  }

  /** Check time-driven rules at `now` (and complete held log events). */
  evaluate(now: number = this.clock()): Match[] {
    this.evaluations++;
    const out: Match[] = [];
    for (const ev of this.logs.flushDue(now)) out.push(...this.observe(ev.instanceId, ev.signal));
    for (const [id, st] of this.instances) {
      for (const i of st.set.timed) this.run(id, st, i, now, undefined, out);
    }
    return out;
  }

  private run(
    instanceId: string,
    st: InstanceState,
    i: number,
    now: number,
    signal: Signal | undefined,
    out: Match[],
  ): void {
    const r = st.set.rules[i]!;
    if (st.matched.has(r.rule.name)) return;
    const d = r.cond.check(st.window, st.ruleStates[i], now, signal);
    if (!d) return;
    const match: Match = {
      instanceId,
      rule: r.rule.name,
      severity: r.rule.severity,
      action: r.rule.action,
      detectedAt: this.clock(),
      onsetAt: Math.min(d.onsetAt, now),
      evidence: d.evidence,
      unresponsive: 'noResponse' in r.rule.when || 'stopped' in r.rule.when,
      condition: r.cond.kind,
    };
    st.matched.set(r.rule.name, match);
    out.push(match);
  }

  /** Active (deduplicated) matches, of one instance or all. */
  activeMatches(instanceId?: string): Match[] {
    if (instanceId !== undefined) return [...(this.instances.get(instanceId)?.matched.values() ?? [])];
    return [...this.instances.values()].flatMap((s) => [...s.matched.values()]);
  }

  /** Read-only view of an instance's window (for evidence bundles and tests). */
  window(instanceId: string): InstanceWindow | undefined {
    return this.instances.get(instanceId)?.window;
  }

  /**
   * Start the instance afresh: clears its matches, rule state and history
   * (after it was replaced or released from quarantine). Keeps its rules.
   */
  reset(instanceId: string): void {
    const st = this.instances.get(instanceId);
    if (!st) return;
    this.logs.flushAll(instanceId);
    this.instances.set(instanceId, {
      set: st.set,
      window: new InstanceWindow(this.windowOptions),
      ruleStates: st.set.rules.map((r) => r.cond.newState()),
      matched: new Map(),
    });
  }

  /** Stop watching an instance (removed). */
  forget(instanceId: string): void {
    this.logs.flushAll(instanceId);
    this.instances.delete(instanceId);
  }

  status(): SignatureEngineStatus {
    let active = 0;
    for (const s of this.instances.values()) active += s.matched.size;
    return {
      instances: this.instances.size,
      signalsObserved: this.signalsObserved,
      evaluations: this.evaluations,
      activeMatches: active,
      pendingLogEvents: this.logs.status().pendingEvents,
    };
  }
}
