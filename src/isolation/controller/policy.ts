/**
 * The effective isolation policy of an App: its `spec.isolation` with the
 * defaults filled in, and its resolved signature rules (built-ins merged with
 * the app's own). Rules are cached per App generation so every instance of an
 * app shares one compiled rule set in the engine.
 */
import type { AppResource, IsolationPolicy } from '../../model/types.ts';
import { resolveRules } from '../signatures/rules.ts';
import type { Rule } from '../signatures/types.ts';

export interface EffectivePolicy {
  enabled: boolean;
  minHealthy: number;
  maxIsolationsPerMinute: number;
  massFaultRatio: number;
  quarantine: { cpu?: number; memoryFactor: number; maxInstances: number; ttlSeconds: number };
  evidence: { profile: boolean; profileDurationMs: number };
}

export const POLICY_DEFAULTS = {
  enabled: true,
  minHealthy: 1,
  maxIsolationsPerMinute: 3,
  massFaultRatio: 0.5,
  memoryFactor: 1.5,
  maxInstances: 3,
  ttlSeconds: 86_400,
  profile: true,
  profileDurationMs: 2000,
} as const;

export function effectivePolicy(p: IsolationPolicy | undefined): EffectivePolicy {
  const d = POLICY_DEFAULTS;
  return {
    enabled: p?.enabled ?? d.enabled,
    minHealthy: p?.minHealthy ?? d.minHealthy,
    maxIsolationsPerMinute: p?.maxIsolationsPerMinute ?? d.maxIsolationsPerMinute,
    massFaultRatio: p?.massFaultRatio ?? d.massFaultRatio,
    quarantine: {
      ...(p?.quarantine?.cpu !== undefined ? { cpu: p.quarantine.cpu } : {}),
      memoryFactor: p?.quarantine?.memoryFactor ?? d.memoryFactor,
      maxInstances: p?.quarantine?.maxInstances ?? d.maxInstances,
      ttlSeconds: p?.quarantine?.ttlSeconds ?? d.ttlSeconds,
    },
    evidence: {
      profile: p?.evidence?.profile ?? d.profile,
      profileDurationMs: p?.evidence?.profileDurationMs ?? d.profileDurationMs,
    },
  };
}

/** Resolved rules per app, recomputed only when the app's generation changes. */
export class RuleCache {
  private readonly byApp = new Map<string, { generation: number; rules: Rule[] }>();

  rulesFor(app: AppResource): Rule[] {
    const key = `${app.metadata.project}/${app.metadata.name}`;
    const gen = app.metadata.generation ?? 0;
    const hit = this.byApp.get(key);
    if (hit && hit.generation === gen) return hit.rules;
    // The manifest was validated on apply, so resolving cannot fail here.
    const rules = resolveRules(app.spec.isolation?.signatures ?? []);
    this.byApp.set(key, { generation: gen, rules });
    return rules;
  }
}
