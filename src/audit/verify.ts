/**
 * Verify an audit trail: the chain of entries (as stored, in seq order) and
 * the signed checkpoints (as published outside the database). Names the
 * first entry that was changed, removed, inserted or reordered.
 *
 * What each tampering looks like (docs/audit.md has the table):
 * - a body or hash edited in place: the entry's hash no longer matches it;
 * - an entry deleted: a gap in seq, and the next entry's prevHash is unknown;
 * - an entry inserted: the entry after it links to the one before it;
 * - entries swapped: an entry links to one that comes later;
 * - the newest entries deleted: a checkpoint names a seq past the end;
 * - the chain re-hashed after an edit (a careful attacker): a checkpoint's
 *   hash differs; the change is located between that checkpoint and the one
 *   before it (no bare chain can do better: that is what checkpoints are for).
 */
import type { KeyObject } from 'node:crypto';
import type { AuditCheckpoint, AuditEntry } from '../model/audit.ts';
import { entryHash, GENESIS } from './chain.ts';
import { checkpointSignatureValid } from './checkpoint.ts';

export type AuditProblemKind =
  'changed' | 'removed' | 'inserted' | 'reordered' | 'rewritten' | 'truncated' | 'bad-checkpoint';

export interface AuditProblem {
  kind: AuditProblemKind;
  /** The first seq concerned, and the last where it is a range. */
  seq: number;
  toSeq?: number;
  message: string;
}

export interface AuditReport {
  ok: boolean;
  entries: number;
  lastSeq: number;
  checkpoints: { total: number; valid: number; latestSeq?: number };
  /** Entries after the latest valid checkpoint: their deletion could not be seen yet. */
  unconfirmed: number;
  /** In seq order; problems[0] is the first tampering. */
  problems: AuditProblem[];
}

const range = (a: number, b: number): string => (a === b ? `entry ${a}` : `entries ${a}-${b}`);

/** Entries `from` up to (not including) `next` are missing. */
function removed(from: number, next: number, how: string): AuditProblem {
  const to = next - 1;
  return {
    kind: 'removed',
    seq: from,
    ...(to !== from ? { toSeq: to } : {}),
    message: `${range(from, to)} ${to !== from ? 'were' : 'was'} removed: ${how}`,
  };
}

function chainProblems(entries: readonly AuditEntry[]): AuditProblem[] {
  const problems: AuditProblem[] = [];
  // Built on the first anomaly only: a clean trail is verified with one hash per entry.
  let index: Map<string, number> | undefined;
  const positionOf = (hash: string): number | undefined => {
    index ??= new Map(entries.map((e, i) => [e.hash, i]));
    return index.get(hash);
  };
  let prev: { seq: number; hash: string } = { seq: 0, hash: GENESIS };
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const expected = prev.seq + 1;
    // A redacted entry (another tenant's, in a tenant export) is proved by its links only.
    const selfOk =
      typeof e.prevHash === 'string' &&
      typeof e.hash === 'string' &&
      (e.body === undefined ? /^[0-9a-f]{64}$/.test(e.hash) : entryHash(e.prevHash, e.body) === e.hash);
    const linkOk = e.prevHash === prev.hash;
    if (selfOk && linkOk && e.seq === expected) {
      prev = e;
      continue;
    }
    const next = entries[i + 1];
    if (!selfOk) {
      if (next && next.prevHash === prev.hash) {
        problems.push({
          kind: 'inserted',
          seq: e.seq,
          message: `entry ${e.seq} was inserted: entry ${next.seq} follows entry ${prev.seq} directly, and entry ${e.seq}'s hash does not match its content`,
        });
        continue; // prev stays: the chain goes on from the entry before the insertion
      }
      problems.push({
        kind: 'changed',
        seq: e.seq,
        message: `entry ${e.seq} was changed: its stored hash does not match its content`,
      });
      prev = e;
      continue;
    }
    if (!linkOk) {
      const j = positionOf(e.prevHash);
      if (j !== undefined && j > i) {
        problems.push({
          kind: 'reordered',
          seq: e.seq,
          message: `entry ${e.seq} was moved: it follows entry ${entries[j]!.seq} in the chain, which is stored after it`,
        });
        // Two entries swapped: consume both, so one swap is one problem.
        if (j === i + 1 && next && next.prevHash === prev.hash) {
          prev = { seq: next.seq, hash: e.hash };
          i++;
          continue;
        }
        prev = e;
        continue;
      }
      if (j !== undefined && j < i - 1) {
        const from = entries[j + 1]!.seq;
        const to = entries[i - 1]!.seq;
        problems.push({
          kind: 'inserted',
          seq: from,
          ...(to !== from ? { toSeq: to } : {}),
          message: `${range(from, to)} ${to !== from ? 'were' : 'was'} inserted: entry ${e.seq} follows entry ${entries[j]!.seq} in the chain`,
        });
        prev = e;
        continue;
      }
      if (e.seq > expected) {
        problems.push(removed(expected, e.seq, `entry ${e.seq} follows an entry that is not there`));
        prev = e;
        continue;
      }
      problems.push({
        kind: 'changed',
        seq: prev.seq,
        message: `entry ${prev.seq} was changed and re-hashed, or removed with the later entries renumbered: entry ${e.seq} records another hash for its predecessor`,
      });
      prev = e;
      continue;
    }
    // Content and links intact, only the numbering is off.
    if (e.seq > expected) {
      problems.push(
        removed(expected, e.seq, `the chain was re-linked around it: seq jumps from ${prev.seq} to ${e.seq}`),
      );
    } else {
      problems.push({
        kind: 'inserted',
        seq: e.seq,
        message: `entry ${e.seq} appears twice or out of order (after entry ${prev.seq})`,
      });
    }
    prev = e;
  }
  return problems;
}

export function verifyAudit(
  entries: readonly AuditEntry[],
  checkpoints: readonly AuditCheckpoint[],
  publicKeys: ReadonlyMap<string, KeyObject>,
): AuditReport {
  const problems = chainProblems(entries);
  const bySeq = new Map(entries.map((e) => [e.seq, e]));
  const lastSeq = entries.at(-1)?.seq ?? 0;
  const valid: AuditCheckpoint[] = [];
  for (const c of checkpoints) {
    if (checkpointSignatureValid(c, publicKeys)) valid.push(c);
    else
      problems.push({
        kind: 'bad-checkpoint',
        seq: typeof c.seq === 'number' ? c.seq : 0,
        message: `the checkpoint for entry ${String(c.seq)} does not carry a valid signature of a known key (${String(c.keyId)}): it was edited or forged`,
      });
  }
  valid.sort((a, b) => a.seq - b.seq);
  const chainFlagged = (from: number, to: number): boolean =>
    problems.some((p) => p.kind !== 'bad-checkpoint' && p.seq <= to && (p.toSeq ?? p.seq) >= from - 1);
  let before = 0;
  for (const c of valid) {
    const e = bySeq.get(c.seq);
    if (c.seq > lastSeq) {
      problems.push({
        kind: 'truncated',
        seq: lastSeq + 1,
        ...(c.seq !== lastSeq + 1 ? { toSeq: c.seq } : {}),
        message: `${range(lastSeq + 1, c.seq)} ${c.seq !== lastSeq + 1 ? 'were' : 'was'} removed from the end: a checkpoint signed at ${c.at} covers entry ${c.seq}, the trail ends at ${lastSeq}`,
      });
    } else if (!e || e.hash !== c.hash) {
      if (!chainFlagged(before + 1, c.seq))
        problems.push({
          kind: 'rewritten',
          seq: before + 1,
          toSeq: c.seq,
          message: `the trail was rewritten between ${range(before + 1, c.seq)}: entry ${c.seq}'s hash is not the one the checkpoint signed at ${c.at} recorded, though the chain is consistent (it was re-hashed after a change)`,
        });
    }
    before = c.seq;
  }
  problems.sort((a, b) => a.seq - b.seq);
  const latest = valid.at(-1)?.seq;
  return {
    ok: problems.length === 0,
    entries: entries.length,
    lastSeq,
    checkpoints: {
      total: checkpoints.length,
      valid: valid.length,
      ...(latest !== undefined ? { latestSeq: latest } : {}),
    },
    unconfirmed: entries.filter((e) => e.seq > (latest ?? 0)).length,
    problems,
  };
}
