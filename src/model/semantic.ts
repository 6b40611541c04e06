/**
 * Rules JSON Schema cannot express: uniqueness inside lists, references
 * between fields, and combinations that make no sense. Written defensively:
 * it also runs on documents that failed the schema, so users see every
 * problem in one pass.
 */
import type { RawIssue } from './issues.ts';
import type { PathSegment } from './paths.ts';
import { formatPath } from './paths.ts';
import { parseMemory } from './defaults.ts';
import { RuleValidationError, resolveRules, validateRules } from '../isolation/signatures/rules.ts';

/** `spec.isolation.signatures[2].when.x: message` → segments + message. */
function ruleIssue(text: string): RawIssue {
  const colon = text.indexOf(': ');
  const where = colon > 0 ? text.slice(0, colon) : 'spec.isolation.signatures';
  const segments: PathSegment[] = [];
  for (const m of where.matchAll(/([A-Za-z_$][\w$-]*)|\[(\d+)\]/g))
    segments.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  return { segments, message: colon > 0 ? text.slice(colon + 2) : text };
}

/** What the schema cannot check in rules: regexes compile, names unique, disabled names exist. */
function checkSignatures(signatures: unknown, out: RawIssue[]): void {
  if (signatures === undefined) return;
  try {
    resolveRules(validateRules(signatures));
  } catch (err) {
    if (!(err instanceof RuleValidationError)) throw err;
    // Schema-level problems (types, unknown keys) are already reported by the schema pass.
    for (const i of err.issues)
      if (/regex|duplicate|disabled but there is no such rule|threshold/i.test(i)) out.push(ruleIssue(i));
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Report the second and later occurrences of the same value of `field` in `items`. */
function duplicates(
  items: unknown[],
  field: string,
  base: PathSegment[],
  what: string,
  out: RawIssue[],
): void {
  const first = new Map<unknown, number>();
  items.forEach((it, i) => {
    if (!isObj(it) || it[field] === undefined) return;
    const v = it[field];
    const seen = first.get(v);
    if (seen === undefined) first.set(v, i);
    else
      out.push({
        segments: [...base, i, field],
        message: `duplicate ${what} ${JSON.stringify(v)} (already used by ${formatPath([...base, seen])})`,
        fix: `${what}s must be unique`,
      });
  });
}

function checkProbe(
  probe: unknown,
  at: PathSegment[],
  portNames: string[],
  wlPath: string,
  out: RawIssue[],
): void {
  if (!isObj(probe)) return;
  for (const action of ['http', 'tcp'] as const) {
    const a = probe[action];
    if (!isObj(a) || typeof a.port !== 'string') continue;
    if (portNames.includes(a.port)) continue;
    out.push({
      segments: [...at, action, 'port'],
      message: `unknown port '${a.port}' (${portNames.length ? `declared: ${portNames.join(', ')}` : 'no ports declared'})`,
      fix: portNames.length
        ? `use one of ${portNames.join(', ')} or declare '${a.port}' in ${wlPath}.ports`
        : `declare it in ${wlPath}.ports, e.g. { name: ${a.port}, port: 8080 }`,
    });
  }
}

function checkWorkload(w: unknown, i: number, out: RawIssue[]): void {
  if (!isObj(w)) return;
  const at: PathSegment[] = ['spec', 'workloads', i];
  const wlPath = formatPath(at);
  const ports = list(w.ports);
  duplicates(ports, 'name', [...at, 'ports'], 'port name', out);
  duplicates(ports, 'port', [...at, 'ports'], 'port number', out);
  const portNames = [
    ...new Set(ports.filter(isObj).flatMap((p) => (typeof p.name === 'string' ? [p.name] : []))),
  ];
  if (isObj(w.health)) {
    checkProbe(w.health.readiness, [...at, 'health', 'readiness'], portNames, wlPath, out);
    checkProbe(w.health.liveness, [...at, 'health', 'liveness'], portNames, wlPath, out);
  }
  if ((w.type === 'service' || w.type === 'stateful') && w.run === undefined && w.image === undefined) {
    out.push({
      segments: at,
      message: `a ${w.type} workload needs 'run' or 'image'`,
      fix: 'add run.command (local runtime), e.g. run: { command: [node, server.ts] }, or image (Kubernetes)',
    });
  }
  if (w.type === 'job' && w.restartPolicy === 'Always') {
    out.push({
      segments: [...at, 'restartPolicy'],
      message: 'a job cannot use restartPolicy Always (it would run again forever)',
      fix: 'use OnFailure or Never, or make the workload a service',
    });
  }
  if (isObj(w.resources) && typeof w.resources.memory === 'string') {
    try {
      if (parseMemory(w.resources.memory) === 0) {
        out.push({
          segments: [...at, 'resources', 'memory'],
          message: 'must be more than 0 bytes',
          fix: "e.g. '128Mi'",
        });
      }
    } catch {
      // The schema's pattern error already explains it.
    }
  }
}

/** Kind-specific Site fields: a kubernetes site needs exactly one kubeconfig source; a local one none. */
function checkSite(spec: Obj, out: RawIssue[]): void {
  if (spec.kind === 'kubernetes') {
    const kc = spec.kubeconfig;
    if (kc === undefined) {
      out.push({
        segments: ['spec', 'kubeconfig'],
        message: 'is required for a kubernetes site',
        fix: 'add kubeconfig: { path: /etc/bulwark/dc1.kubeconfig } (or { env: DC1_KUBECONFIG } naming a control-plane environment variable)',
      });
    } else if (isObj(kc)) {
      const set = ['path', 'env'].filter((k) => kc[k] !== undefined);
      if (set.length !== 1) {
        out.push({
          segments: ['spec', 'kubeconfig'],
          message:
            set.length === 0 ? 'must set path or env' : 'must set only one of path or env (found both)',
          fix: 'keep one: path (a kubeconfig file on the control-plane host) or env (an environment variable holding it)',
        });
      }
    }
    if (spec.gatewayPort !== undefined) {
      out.push({
        segments: ['spec', 'gatewayPort'],
        atKey: true,
        message:
          'a kubernetes site has no Bulwark gateway (traffic inside the cluster goes through its Services)',
        fix: "remove 'gatewayPort'",
      });
    }
  } else if (spec.kind === 'local') {
    for (const field of ['kubeconfig', 'context', 'bindBeforeStart'] as const) {
      if (spec[field] === undefined) continue;
      out.push({
        segments: ['spec', field],
        atKey: true,
        message:
          field === 'bindBeforeStart'
            ? 'only a kubernetes site binds pods'
            : 'only a kubernetes site has a kubeconfig',
        fix: `remove '${field}' or set kind: kubernetes`,
      });
    }
  }
}

/** spread: the minimums must fit in every workload's total, and some weight must be positive. */
function checkPlacement(placement: Obj, workloads: unknown[], out: RawIssue[]): void {
  const sites = list(placement.sites).filter(isObj);
  duplicates(list(placement.sites), 'name', ['spec', 'placement', 'sites'], 'site', out);
  const spread = placement.strategy === 'spread';
  if (!spread) {
    list(placement.sites).forEach((s, i) => {
      if (!isObj(s) || s.minReplicas === undefined) return;
      out.push({
        segments: ['spec', 'placement', 'sites', i, 'minReplicas'],
        atKey: true,
        message: 'applies only to strategy spread (replicate runs the full replicas on every site)',
        fix: "set spec.placement.strategy: spread, or remove 'minReplicas'",
      });
    });
    return;
  }
  const weight = (s: Obj): number => (typeof s.weight === 'number' ? s.weight : 100);
  if (sites.length > 0 && sites.every((s) => weight(s) === 0)) {
    out.push({
      segments: ['spec', 'placement', 'sites'],
      message: 'strategy spread needs at least one site with a weight above 0',
      fix: 'give the sites that should run replicas a weight, e.g. weight: 1',
    });
  }
  const minSum = sites.reduce((n, s) => n + (typeof s.minReplicas === 'number' ? s.minReplicas : 0), 0);
  workloads.forEach((w, i) => {
    if (!isObj(w)) return;
    const replicas = typeof w.replicas === 'number' ? w.replicas : 1;
    if (replicas === 0 || minSum <= replicas) return;
    out.push({
      segments: ['spec', 'workloads', i, 'replicas'],
      message: `is ${replicas} but the placement's minReplicas add up to ${minSum} (strategy spread: replicas is the total across sites)`,
      fix: `raise replicas to at least ${minSum} or lower spec.placement.sites[].minReplicas`,
    });
  });
}

/** Semantic checks of one resource (cross-resource rules live in `validate.ts`). */
export function semanticIssues(r: unknown): RawIssue[] {
  const out: RawIssue[] = [];
  if (isObj(r) && r.kind === 'Site' && isObj(r.spec)) checkSite(r.spec, out);
  if (!isObj(r) || r.kind !== 'App' || !isObj(r.spec)) return out;
  const workloads = list(r.spec.workloads);
  duplicates(workloads, 'name', ['spec', 'workloads'], 'workload name', out);
  workloads.forEach((w, i) => checkWorkload(w, i, out));
  if (isObj(r.spec.placement)) checkPlacement(r.spec.placement, workloads, out);
  if (isObj(r.spec.isolation)) checkSignatures(r.spec.isolation.signatures, out);
  return out;
}
