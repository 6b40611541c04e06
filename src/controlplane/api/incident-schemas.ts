/**
 * JSON Schemas of incidents and evidence manifests (see
 * `model/incidents.ts` and `isolation/evidence/types.ts`). Every
 * known field is listed so the OpenAPI document describes it; objects stay
 * open so a field added later is served before the schema learns about it.
 * Durations are `number`, not `integer`: the serializer would round them.
 */
import { INCIDENT_STATES } from '../../store/store.ts';

const time = { type: 'string', description: 'ISO-8601 time' } as const;

export const incidentSchema = {
  $id: 'Incident',
  type: 'object',
  description: 'What fault isolation did about one instance, and why.',
  additionalProperties: true,
  required: [
    'id',
    'site',
    'project',
    'app',
    'workload',
    'instanceId',
    'signature',
    'severity',
    'state',
    'action',
    'detectedAt',
    'durations',
    'timeline',
    'createdAt',
    'updatedAt',
  ],
  properties: {
    id: { type: 'string', description: 'inc-<yyyymmdd>-<random>, sortable by creation time' },
    site: { type: 'string' },
    project: { type: 'string' },
    app: { type: 'string' },
    workload: { type: 'string' },
    instanceId: { type: 'string' },
    signature: { type: 'string', description: 'Rule that matched, e.g. http-5xx-burst' },
    severity: { type: 'string', enum: ['critical', 'major', 'minor'] },
    evidenceSummary: { type: 'string', description: "The engine's explanation with the numbers" },
    state: {
      type: 'string',
      enum: [...INCIDENT_STATES],
      description:
        'open (detected, action under way), isolated, mitigated, resolved; every state but resolved counts as open',
    },
    action: {
      type: 'object',
      additionalProperties: true,
      required: ['kind', 'reason'],
      properties: {
        kind: { type: 'string', enum: ['isolate', 'restart', 'alert', 'none'] },
        reason: { type: 'string' },
      },
    },
    replacementId: { type: 'string' },
    occurrences: { type: 'integer', description: 'Times this failure was seen while open (repeats grouped)' },
    lastSeenAt: time,
    evidenceDir: { type: 'string', description: 'Evidence bundle directory on the control plane host' },
    onsetAt: time,
    detectedAt: time,
    isolatedAt: time,
    replacementReadyAt: time,
    resolvedAt: time,
    durations: {
      type: 'object',
      additionalProperties: true,
      description: 'Milliseconds',
      properties: {
        detectMs: { type: 'number', description: 'detected - onset' },
        isolateMs: { type: 'number', description: 'isolated - detected' },
        replaceMs: { type: 'number', description: 'replacement ready - detected' },
        mttrMs: { type: 'number', description: 'mitigated - onset (or detection)' },
      },
    },
    timeline: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: true,
        required: ['at', 'event', 'detail'],
        properties: { at: time, event: { type: 'string' }, detail: { type: 'string' } },
      },
    },
    createdAt: time,
    updatedAt: time,
  },
} as const;

export const incidentListSchema = {
  $id: 'IncidentList',
  type: 'object',
  required: ['items'],
  properties: { items: { type: 'array', items: { $ref: 'Incident#' } } },
} as const;

const evidencePart = {
  type: 'object',
  additionalProperties: true,
  required: ['status', 'files', 'durationMs'],
  properties: {
    status: { type: 'string', enum: ['ok', 'skipped', 'failed', 'timeout'] },
    reason: { type: 'string', description: 'Why the part was skipped, failed or timed out' },
    files: { type: 'array', items: { type: 'string' }, description: 'Relative to the bundle directory' },
    durationMs: { type: 'number' },
    data: { description: 'Small structured summary; the full data is in the files' },
  },
} as const;

export const evidenceManifestSchema = {
  $id: 'EvidenceManifest',
  type: 'object',
  description: "manifest.json of an incident's evidence bundle: every part with its status.",
  additionalProperties: true,
  required: ['version', 'dir', 'instanceId', 'parts'],
  properties: {
    version: { type: 'integer' },
    dir: { type: 'string' },
    instanceId: { type: 'string' },
    app: { type: 'string' },
    project: { type: 'string' },
    site: { type: 'string' },
    pid: { type: 'integer' },
    netns: { type: 'string' },
    cgroup: { type: 'string' },
    phase: { type: 'string' },
    createdAt: time,
    completedAt: time,
    durationMs: { type: 'number' },
    parts: { type: 'object', additionalProperties: evidencePart },
  },
} as const;

export const incidentSchemas = [incidentSchema, incidentListSchema, evidenceManifestSchema];
