/**
 * An incident's timeline with each step shown once. The engine appends an
 * entry for every transition it records, so a step can repeat: the same
 * event with the same text anywhere in the timeline (a state recorded again
 * after a control-plane restart), or the same event several times in a row
 * (a retried quarantine, repeated probe failures or restarts whose texts
 * differ in their numbers or reasons). Each collapses into one step with a
 * count, the first and last time, and the other texts kept for a details
 * element.
 */

export interface TimelineEntry {
  at: string;
  event: string;
  detail: string;
}

export interface TimelineStep {
  event: string;
  /** The first occurrence's time and text. */
  at: string;
  detail: string;
  /** How many entries this step stands for (1 when it happened once). */
  count: number;
  /** The last occurrence's time, when count > 1. */
  lastAt?: string;
  /** Texts of the collapsed entries that differ from `detail`, in order, each once. */
  others: string[];
}

export function collapseTimeline(entries: readonly TimelineEntry[]): TimelineStep[] {
  const sorted = [...entries].sort((a, b) => a.at.localeCompare(b.at));
  const steps: TimelineStep[] = [];
  const byText = new Map<string, TimelineStep>();
  for (const e of sorted) {
    const exact = byText.get(`${e.event}\u0000${e.detail}`);
    const prev = steps[steps.length - 1];
    const target = exact ?? (prev?.event === e.event ? prev : undefined);
    if (target) {
      target.count++;
      target.lastAt = e.at;
      if (e.detail !== target.detail && !target.others.includes(e.detail)) target.others.push(e.detail);
      byText.set(`${e.event}\u0000${e.detail}`, target);
      continue;
    }
    const step: TimelineStep = { event: e.event, at: e.at, detail: e.detail, count: 1, others: [] };
    steps.push(step);
    byText.set(`${e.event}\u0000${e.detail}`, step);
  }
  return steps;
}
