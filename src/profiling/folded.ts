/**
 * Convert a V8 `.cpuprofile` (the DevTools `Profiler.Profile` shape) into
 * folded stacks, one line per distinct stack: `root;caller;callee <samples>`.
 * That is the input of flamegraph.pl, speedscope and inferno.
 */

export interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
  children?: number[];
}

export interface CpuProfile {
  nodes: CpuProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** Frame label: `name (file:line)`, 1-based line as editors show it; no ';' (the folded separator). */
function frameLabel(node: CpuProfileNode): string {
  const cf = node.callFrame;
  const name = cf.functionName || '(anonymous)';
  const where = cf.url ? ` (${cf.url.replace(/^file:\/\//, '')}:${cf.lineNumber + 1})` : '';
  return `${name}${where}`.replace(/;/g, ':').replace(/[\r\n]/g, ' ');
}

/**
 * Folded stacks, heaviest first. The synthetic `(root)` frame is left out;
 * `(idle)`, `(program)` and `(garbage collector)` stay, they are real time.
 */
export function toFolded(profile: CpuProfile): string {
  const byId = new Map<number, CpuProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const stackOf = new Map<number, string>();
  const stack = (id: number): string => {
    const cached = stackOf.get(id);
    if (cached !== undefined) return cached;
    const frames: string[] = [];
    // Bounded by the node count: a malformed profile with a parent cycle cannot loop forever.
    for (let cur: number | undefined = id, i = 0; cur !== undefined && i <= byId.size; i++) {
      const node = byId.get(cur);
      if (!node) break;
      if (node.callFrame.functionName !== '(root)' || parent.has(cur)) frames.push(frameLabel(node));
      cur = parent.get(cur);
    }
    const s = frames.reverse().join(';');
    stackOf.set(id, s);
    return s;
  };
  const counts = new Map<string, number>();
  for (const id of profile.samples ?? []) {
    const s = stack(id);
    if (s) counts.set(s, (counts.get(s) ?? 0) + 1);
  }
  return [...counts]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .map(([s, n]) => `${s} ${n}\n`)
    .join('');
}

/** Throws when `value` does not have the shape of a cpuprofile (nodes with ids, samples). */
export function assertCpuProfile(value: unknown): asserts value is CpuProfile {
  const p = value as Partial<CpuProfile> | null;
  if (!p || !Array.isArray(p.nodes) || !p.nodes.every((n) => typeof n?.id === 'number' && n.callFrame)) {
    throw new Error('not a cpuprofile: expected { nodes: [{ id, callFrame }], samples: [] }');
  }
  if (p.samples !== undefined && !Array.isArray(p.samples)) {
    throw new Error('not a cpuprofile: samples must be an array of node ids');
  }
}
