import type { Condition, ConditionStatus } from '../../model/types.ts';

/**
 * Set a condition, keeping `lastTransitionTime` when the status did not flip
 * (so "since when is this app degraded" stays true across resyncs).
 */
export function setCondition(
  list: Condition[],
  type: string,
  status: ConditionStatus,
  reason: string,
  message: string,
  now: string,
): Condition[] {
  const prev = list.find((c) => c.type === type);
  const next: Condition = {
    type,
    status,
    reason,
    message,
    lastTransitionTime: prev && prev.status === status ? prev.lastTransitionTime : now,
  };
  return [...list.filter((c) => c.type !== type), next].sort((a, b) => a.type.localeCompare(b.type));
}
