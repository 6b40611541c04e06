/** Test doubles for the incident routes and the CLI: a fake IsolationApi and a bundle on disk. */
import fs from 'node:fs';
import path from 'node:path';
import type { EvidenceBundle } from '../../../isolation/evidence/types.ts';
import type { Incident } from '../../../model/incidents.ts';
import { ConflictError, NotFoundError, type Store } from '../../../store/store.ts';
import { createIsolationMetrics } from '../../../isolation/metrics.ts';
import type { IsolationApi } from '../deps.ts';

/**
 * Stands in for the isolation controller: resolves the newest incident of a
 * quarantined instance and fails the documented ways otherwise.
 */
export class FakeIsolation implements IsolationApi {
  readonly quarantined = new Set<string>();
  readonly metricsImpl = createIsolationMetrics({ quarantined: () => this.quarantined.size });
  failMetrics = false;
  readonly #store: Store;
  constructor(store: Store) {
    this.#store = store;
  }
  release(instanceId: string): Promise<Incident> {
    return this.#resolve(instanceId, 'released');
  }
  deleteQuarantined(instanceId: string): Promise<Incident> {
    return this.#resolve(instanceId, 'deleted');
  }
  metrics(): string {
    if (this.failMetrics) throw new Error('exporter broke');
    return this.metricsImpl.render();
  }
  async #resolve(instanceId: string, event: 'released' | 'deleted'): Promise<Incident> {
    const [inc] = await this.#store.listIncidents({ instanceId, limit: 1 });
    if (!inc) throw new NotFoundError(`instance '${instanceId}' has no incident`);
    if (!this.quarantined.has(instanceId)) {
      throw new ConflictError(`instance '${instanceId}' is not quarantined`);
    }
    this.quarantined.delete(instanceId);
    const at = new Date().toISOString();
    const next: Incident = {
      ...inc,
      state: 'resolved',
      resolvedAt: at,
      updatedAt: at,
      timeline: [...inc.timeline, { at, event, detail: `${event} by operator` }],
    };
    await this.#store.putIncident(next);
    this.metricsImpl.recordIncident(next, inc);
    return next;
  }
}

/** A bundle directory like collectEvidence writes: manifest.json plus part files. */
export function writeBundle(root: string, instanceId: string): { dir: string; manifest: EvidenceBundle } {
  const dir = path.join(root, `${instanceId}-20260102T030406Z`);
  fs.mkdirSync(path.join(dir, 'logs'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'logs', 'stderr.log'), 'Error: ECONNRESET\n');
  const part = (status: 'ok' | 'skipped' | 'failed', files: string[], reason?: string) => ({
    status,
    files,
    durationMs: 3.5,
    ...(reason ? { reason } : {}),
  });
  const manifest: EvidenceBundle = {
    version: 1,
    dir,
    instanceId,
    app: 'payments',
    project: 'bank',
    site: 'local',
    pid: 4242,
    phase: 'quarantined',
    createdAt: '2026-01-02T03:04:06.000Z',
    completedAt: '2026-01-02T03:04:07.250Z',
    durationMs: 1250,
    parts: {
      instance: part('ok', ['instance.json']),
      logs: part('ok', ['logs/stderr.log']),
      process: part('ok', ['process.json']),
      cgroup: part('skipped', [], 'no cgroup (unprivileged run)'),
      sockets: part('ok', ['sockets.txt']),
      history: part('ok', ['history.json']),
      profile: part('failed', [], 'inspector did not answer within 5000 ms'),
    },
  };
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
  return { dir, manifest };
}
