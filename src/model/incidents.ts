/**
 * Incidents: what fault isolation did about one instance, and why. Persisted
 * in the store (one row per incident, the whole document as JSON), served by
 * `/api/v1/incidents` and `bulwark incidents`, and summarised as Prometheus
 * metrics. All times are ISO-8601 strings; durations are milliseconds.
 */
/** How bad a signature's match is. */
export type Severity = 'critical' | 'major' | 'minor';
/** What a signature's match asks for: take out of traffic, restart, or only tell. */
export type Action = 'isolate' | 'restart' | 'alert';

/**
 * Stages of an incident. Every stage but `resolved` is "open": a query for state `open` (API,
 * `bulwark incidents --state open`) returns all of them, and the console counts them as open.
 */
export type IncidentState =
  /** Detected; the action is under way (isolation, restart or alert). */
  | 'open'
  /** Out of traffic and quarantined; the replacement may or may not be ready yet. */
  | 'isolated'
  /** Service restored: the replacement (or the restarted process) is ready. */
  | 'mitigated'
  /** Closed: the quarantined instance was released or deleted, or the alert acknowledged. */
  | 'resolved';

export type TimelineEvent =
  | 'onset' // first bad signal (estimate)
  | 'detected' // a signature matched
  | 'isolated' // out of traffic (server in maint)
  | 'quarantined' // process kept alive, supervision off
  | 'replacement-started'
  | 'replacement-ready'
  | 'evidence-collected'
  | 'alert' // action was alert only, or a safety rule turned isolation into an alert
  | 'suppressed' // a safety rule prevented the action (see detail)
  | 'released' // quarantined instance returned to traffic by an operator
  | 'deleted' // quarantined instance stopped and removed by an operator
  | 'resolved';

export interface TimelineEntry {
  at: string;
  event: TimelineEvent;
  /** Human-readable explanation with the numbers (why this happened). */
  detail: string;
}

export interface IncidentAction {
  /** What was done: isolate (maint + quarantine), restart (the process died), alert (nothing automatic). */
  kind: Action | 'none';
  /** Why this action (and not another): the rule's action, or the safety rule that changed it. */
  reason: string;
}

export interface Incident {
  /** `inc-<yyyymmdd>-<hhmmss>-<random>`, sortable by creation time. */
  id: string;
  site: string;
  project: string;
  app: string;
  workload: string;
  instanceId: string;
  /** Signature (rule) name that matched, e.g. `http-5xx-burst`. */
  signature: string;
  severity: Severity;
  /** The engine's explanation with the numbers. */
  evidenceSummary: string;
  state: IncidentState;
  action: IncidentAction;
  /** Replacement instance id, when one was started. */
  replacementId?: string;
  /** Evidence bundle directory (absent until collected); the manifest is at `<dir>/manifest.json`. */
  evidenceDir?: string;
  onsetAt?: string;
  detectedAt: string;
  isolatedAt?: string;
  replacementReadyAt?: string;
  resolvedAt?: string;
  /** detected - onset, isolated - detected, replacementReady - detected, resolved/mitigated - onset. */
  durations: {
    detectMs?: number;
    isolateMs?: number;
    replaceMs?: number;
    /** Mean time to recovery of this incident: mitigation (replacement ready) minus onset (or detection). */
    mttrMs?: number;
  };
  timeline: TimelineEntry[];
  /** How often this failure was seen while the incident was open (repeats are grouped). @default 1 */
  occurrences?: number;
  /** When it was last seen, for a grouped incident. */
  lastSeenAt?: string;
  createdAt: string;
  updatedAt: string;
}

export interface IncidentQuery {
  project?: string;
  app?: string;
  state?: IncidentState;
  instanceId?: string;
  /** Newest first. @default 100 */
  limit?: number;
}
