/**
 * The audit record of an API call: who (the principal the auth hook found),
 * from where, what, on which resource, and the change as a digest plus the
 * diff. The store writes it in the same transaction as the change.
 */
import type { FastifyRequest } from 'fastify';
import { changeDigest } from '../audit/chain.ts';
import type { AuditRecord } from '../model/audit.ts';
import type { ResourceKey } from '../model/types.ts';
import type { Store } from '../store/store.ts';

export type AuditRecordOf = (
  action: string,
  key: ResourceKey,
  change: unknown,
  outcome?: AuditRecord['outcome'],
  /** A Project being written: its own tenant (the store still has the old one, or none). */
  tenant?: string,
) => Promise<AuditRecord>;

/**
 * A builder for one request. The tenant is the Project's (`spec.tenant`), looked up once per
 * project per request; a Site or Project without one is the platform's own part of the trail.
 */
export function auditRecordsFor(req: FastifyRequest, store: Store): AuditRecordOf {
  const tenants = new Map<string, Promise<string | undefined>>();
  const tenantOf = (project: string): Promise<string | undefined> => {
    let t = tenants.get(project);
    if (!t) {
      t = store
        .get({ kind: 'Project', project: '', name: project })
        .then((p) => (p?.spec as { tenant?: string } | undefined)?.tenant);
      tenants.set(project, t);
    }
    return t;
  };
  return async (action, key, change, outcome = 'ok', own) => {
    if (key.kind === 'Project' && own !== undefined) tenants.set(key.name, Promise.resolve(own));
    const p = req.principal;
    const project = key.kind === 'Project' ? key.name : key.project;
    const tenant = project ? await tenantOf(project) : undefined;
    const ua = req.headers['user-agent'];
    return {
      at: new Date().toISOString(),
      actor: p ? { kind: 'token', id: p.id, name: p.name } : { kind: 'token', id: 'anonymous' },
      source: { ip: req.ip, ...(typeof ua === 'string' ? { userAgent: ua.slice(0, 200) } : {}) },
      action,
      ...(tenant ? { tenant } : {}),
      resource: { kind: key.kind, ...(key.project ? { project: key.project } : {}), name: key.name },
      requestId: String(req.id),
      outcome,
      ...(change !== undefined ? { change: { digest: changeDigest(change), diff: change } } : {}),
    };
  };
}
