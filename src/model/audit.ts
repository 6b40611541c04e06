/**
 * Audit trail records (issue 18): what the store keeps and what a verifier
 * reads. Types only, so the store, the API and the offline verifier share
 * them without importing each other.
 */

/** Who acted: a person, a service account, a bearer token (bootstrap), or Bulwark itself. */
export interface AuditActor {
  kind: 'user' | 'service-account' | 'token' | 'system';
  /** Stable id: the user's subject, the token's id, or the controller's name (`isolation`). */
  id: string;
  /** For people reading the trail (e-mail, token name). */
  name?: string;
}

/** The content of one entry, as the caller gives it. */
export interface AuditRecord {
  /** ISO time of the action. */
  at: string;
  actor: AuditActor;
  /** Where the call came from (absent for automatic actions). */
  source?: { ip?: string; userAgent?: string };
  /** What was done: `apply`, `delete`, `scale`, `token.create`, `isolate`, `replace`, ... */
  action: string;
  /** The tenant whose part of the trail this belongs to (absent: the platform's own). */
  tenant?: string;
  resource?: { kind: string; project?: string; name: string };
  requestId?: string;
  outcome: 'ok' | 'denied' | 'failed';
  /** The change: a digest of its canonical form and the diff itself. */
  change?: { digest: string; diff: unknown };
  /** Why (a rule name, a user's comment, the error for a failure). */
  reason?: string;
}

/**
 * One stored entry. `body` is the record's canonical JSON: the exact bytes
 * that were hashed, so verification never depends on how JSON is printed.
 * `hash` = SHA-256(prevHash ‖ "\n" ‖ body), hex; the first entry's prevHash
 * is 64 zeros. `seq` is the position (1, 2, ...), not part of the hash: the
 * chain of prevHash links is what fixes the order.
 */
export interface AuditEntry {
  seq: number;
  prevHash: string;
  hash: string;
  /**
   * Absent only in an export for one tenant, for another tenant's entry: its
   * links still prove the order and completeness, its content is not shown.
   */
  body?: string;
}

/** A search of the trail (newest last); every field narrows it. */
export interface AuditQuery {
  afterSeq?: number;
  /** At most this many entries (default 100, at most 10,000). */
  limit?: number;
  tenant?: string;
  /** `actor.id`. */
  actor?: string;
  /** ISO times, inclusive. */
  since?: string;
  until?: string;
}

/**
 * A signed statement "the trail's entry `seq` has hash `hash`", made at `at`
 * with the key `keyId` (Ed25519 over the canonical JSON of the other four
 * fields, base64). Published outside the database, so deleting the newest
 * rows, or rewriting the chain after some entry, cannot go unnoticed.
 */
export interface AuditCheckpoint {
  seq: number;
  hash: string;
  at: string;
  keyId: string;
  signature: string;
}
