/**
 * Pure replica arithmetic of multi-site placement: split a workload's total
 * replicas across the healthy sites by weight, honouring per-site minimums,
 * and hold capacity during a failback until the returning site is ready.
 * No I/O and no clocks, so every rule is unit-tested (split.test.ts).
 */

export interface SiteWeight {
  name: string;
  weight: number;
  minReplicas: number;
}

export interface Split {
  /** Replicas per site, for every site given (0 for excluded ones). */
  shares: Record<string, number>;
  /** Replicas no eligible site could take (no site is eligible). */
  unplaced: number;
}

/**
 * Split `total` replicas across the `eligible` sites.
 *
 * Weights define the overall proportion (ideal share = total × weight / Σweights); a site
 * whose ideal share is below its minimum is raised to the minimum and the rest is split
 * again among the others (water filling), so minimums take replicas from the biggest
 * shares rather than skewing every site. Fractions are rounded by largest remainder (ties:
 * higher weight, then list order), so the shares always add up to `total`. When the
 * minimums alone exceed `total`, they are granted in descending weight order until the
 * replicas run out. Excluded sites get 0; their share lands on the eligible ones. When
 * every eligible site has weight 0 the replicas are spread evenly.
 */
export function splitReplicas(total: number, sites: SiteWeight[], eligible: ReadonlySet<string>): Split {
  const shares: Record<string, number> = Object.fromEntries(sites.map((s) => [s.name, 0]));
  const active = sites.filter((s) => eligible.has(s.name));
  if (total <= 0) return { shares, unplaced: 0 };
  if (active.length === 0) return { shares, unplaced: total };
  const order = new Map(active.map((s, i) => [s.name, i]));
  const byWeight = (a: SiteWeight, b: SiteWeight): number =>
    b.weight - a.weight || order.get(a.name)! - order.get(b.name)!;

  const minSum = active.reduce((n, s) => n + s.minReplicas, 0);
  if (minSum >= total) {
    let left = total;
    for (const s of [...active].sort(byWeight)) {
      const n = Math.min(s.minReplicas, left);
      shares[s.name] = n;
      left -= n;
    }
    return { shares, unplaced: 0 };
  }

  // Even spread when no weight says otherwise.
  const weightOf = (s: SiteWeight): number => (active.every((a) => a.weight === 0) ? 1 : s.weight);
  const pinned = new Map<string, number>();
  for (;;) {
    const free = active.filter((s) => !pinned.has(s.name));
    const left = total - [...pinned.values()].reduce((a, b) => a + b, 0);
    const w = free.reduce((n, s) => n + weightOf(s), 0);
    const below = free.filter((s) => (w === 0 ? 0 : (left * weightOf(s)) / w) < s.minReplicas);
    if (below.length === 0) break;
    for (const s of below) pinned.set(s.name, s.minReplicas);
  }
  const free = active.filter((s) => !pinned.has(s.name));
  const left = total - [...pinned.values()].reduce((a, b) => a + b, 0);
  const w = free.reduce((n, s) => n + weightOf(s), 0);
  for (const [name, n] of pinned) shares[name] = n;
  const ideal = free.map((s) => ({ s, exact: w === 0 ? 0 : (left * weightOf(s)) / w }));
  let given = 0;
  for (const { s, exact } of ideal) {
    shares[s.name] = Math.floor(exact);
    given += Math.floor(exact);
  }
  const byRemainder = [...ideal].sort(
    (a, b) => b.exact - Math.floor(b.exact) - (a.exact - Math.floor(a.exact)) || byWeight(a.s, b.s),
  );
  for (let i = 0; given < left && byRemainder.length > 0; i = (i + 1) % byRemainder.length) {
    const site = byRemainder[i]!.s.name;
    shares[site] = shares[site]! + 1;
    given++;
  }
  return { shares, unplaced: 0 };
}

/**
 * Make-before-break when replicas move onto a site (failback, or a weight change): while a
 * site that gains replicas has fewer ready than its new share, every eligible site that
 * loses replicas keeps its settled share, so capacity never dips below what ran before.
 * Sites that are not eligible (unreachable) are never held: there is nothing to keep.
 *
 * @param target  the new split (splitReplicas)
 * @param settled the split in force before this change (undefined: first decision). The
 *                caller replaces it with the result only once `holding` is empty.
 * @param ready   ready replicas per site, as the drivers report them
 */
export function holdForFailback(
  target: Record<string, number>,
  settled: Record<string, number> | undefined,
  ready: Record<string, number>,
  eligible: ReadonlySet<string>,
): { shares: Record<string, number>; holding: string[] } {
  if (!settled) return { shares: { ...target }, holding: [] };
  const gaining = Object.keys(target).filter((s) => target[s]! > (settled[s] ?? 0));
  const pending = gaining.filter((s) => (ready[s] ?? 0) < target[s]!);
  if (pending.length === 0) return { shares: { ...target }, holding: [] };
  const shares = { ...target };
  const holding: string[] = [];
  for (const s of Object.keys(target)) {
    if (eligible.has(s) && (settled[s] ?? 0) > target[s]!) {
      shares[s] = settled[s]!;
      holding.push(s);
    }
  }
  return { shares, holding };
}
