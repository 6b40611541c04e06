/**
 * Apply: validate a batch of manifests completely (schema, semantics,
 * references) before writing any of them, then write in dependency order
 * (Sites and Projects before Apps). Each write is its own transaction with
 * its change event; re-applying the same batch is a no-op, so a crash in the
 * middle is repaired by applying again.
 *
 * A batch of up to 1000 resources (the request limit) is thousands of store
 * queries: the loop yields to the event loop every few milliseconds
 * (TimeSlice), so health and reads keep answering while it runs, and reports
 * its progress (`onProgress`, shown by `GET /api/v1/applies`).
 */
import { diffResources, type DiffEntry } from '../model/diff.ts';
import type { Kind, Resource } from '../model/types.ts';
import type { Store } from '../store/store.ts';
import { TimeSlice } from '../util/time-slice.ts';
import { ApiError, type ErrorDetail } from './errors.ts';
import type { AuditRecordOf } from './audit-record.ts';

export interface ApplyItemResult {
  kind: Kind;
  project?: string;
  name: string;
  action: 'created' | 'updated' | 'unchanged';
  generation?: number;
  changes: DiffEntry[];
}

const ORDER: Record<Kind, number> = { Site: 0, Project: 1, App: 2 };

function label(r: Resource): string {
  return r.metadata.project
    ? `${r.kind} ${r.metadata.project}/${r.metadata.name}`
    : `${r.kind} ${r.metadata.name}`;
}

/** Cross-resource checks that need the store: referenced projects and sites must exist. */
async function checkReferences(store: Store, batch: Resource[]): Promise<ErrorDetail[]> {
  const errors: ErrorDetail[] = [];
  const projects = new Set([
    ...(await store.list('Project')).map((p) => p.metadata.name),
    ...batch.filter((r) => r.kind === 'Project').map((r) => r.metadata.name),
  ]);
  const sites = new Set([
    ...(await store.list('Site')).map((s) => s.metadata.name),
    ...batch.filter((r) => r.kind === 'Site').map((r) => r.metadata.name),
  ]);
  batch.forEach((r, i) => {
    if (r.kind !== 'App') return;
    const project = r.metadata.project ?? '';
    if (!projects.has(project)) {
      errors.push({
        path: `[${i}].metadata.project`,
        message: `${label(r)}: project '${project}' does not exist`,
        fix: `create Project '${project}' first, or include it in the same apply`,
      });
    }
    (r.spec.placement?.sites ?? []).forEach((s, j) => {
      if (!sites.has(s.name)) {
        errors.push({
          path: `[${i}].spec.placement.sites[${j}].name`,
          message: `${label(r)}: site '${s.name}' does not exist (known: ${[...sites].sort().join(', ') || 'none'})`,
          fix: `use one of the known sites or create Site '${s.name}' first`,
        });
      }
    });
  });
  return errors;
}

export interface ApplyBatchOptions {
  /** Shared with the parse so the whole request keeps one slice budget. @default new TimeSlice() */
  slice?: TimeSlice;
  /** Called after each resource is planned or written: how many of the batch are done. */
  onProgress?: (done: number, result: ApplyItemResult) => void;
  /** The audit record of each write, stored in the same transaction (src/controlplane/audit-record.ts). */
  audit?: AuditRecordOf;
}

export async function applyBatch(
  store: Store,
  batch: Resource[],
  dryRun: boolean,
  opts: ApplyBatchOptions = {},
): Promise<ApplyItemResult[]> {
  const slice = opts.slice ?? new TimeSlice();
  const refErrors = await checkReferences(store, batch);
  if (refErrors.length > 0) {
    throw new ApiError(422, 'Invalid', `${refErrors.length} reference error(s) in the manifests`, refErrors);
  }
  const ordered = [...batch].sort((a, b) => ORDER[a.kind] - ORDER[b.kind]);
  const results: ApplyItemResult[] = [];
  for (const r of ordered) {
    const key = { kind: r.kind, project: r.metadata.project ?? '', name: r.metadata.name };
    const before = await store.get(key);
    const changes = diffResources(before, r);
    const base = {
      kind: r.kind,
      ...(r.metadata.project ? { project: r.metadata.project } : {}),
      name: r.metadata.name,
      changes,
    };
    let result: ApplyItemResult;
    if (dryRun) {
      result = {
        ...base,
        action: !before ? 'created' : changes.length > 0 ? 'updated' : 'unchanged',
        ...(before?.metadata.generation !== undefined ? { generation: before.metadata.generation } : {}),
      };
    } else {
      const audit = await opts.audit?.(
        'apply',
        key,
        changes,
        'ok',
        r.kind === 'Project' ? (r.spec as { tenant?: string }).tenant : undefined,
      );
      const res = await store.apply(r, audit ? { audit } : {});
      result = {
        ...base,
        action: res.action,
        ...(res.resource.metadata.generation !== undefined
          ? { generation: res.resource.metadata.generation }
          : {}),
      };
    }
    results.push(result);
    opts.onProgress?.(results.length, result);
    await slice.yieldIfDue();
  }
  return results;
}
