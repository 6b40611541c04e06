/**
 * Persistence of instance records so a restarted control plane can re-adopt
 * its processes. The driver needs only this subset of the Store; the
 * in-memory and file implementations here serve tests and store-less use.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { InstanceRecord, Store } from '../../store/store.ts';

export type InstanceRecords = Pick<Store, 'putInstance' | 'listInstances' | 'deleteInstance'>;

export class MemoryInstanceRecords implements InstanceRecords {
  private readonly recs = new Map<string, InstanceRecord>();

  async putInstance(rec: InstanceRecord): Promise<void> {
    this.recs.set(rec.id, structuredClone({ ...rec, updatedAt: new Date().toISOString() }));
  }
  async listInstances(site?: string): Promise<InstanceRecord[]> {
    return [...this.recs.values()]
      .filter((r) => site === undefined || r.site === site)
      .map((r) => structuredClone(r));
  }
  async deleteInstance(id: string): Promise<void> {
    this.recs.delete(id);
  }
}

/** One JSON file per instance in `dir`; survives the process (used across processes in tests). */
export class FileInstanceRecords implements InstanceRecords {
  private readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  private file(id: string): string {
    return path.join(this.dir, `${encodeURIComponent(id)}.json`);
  }
  async putInstance(rec: InstanceRecord): Promise<void> {
    const tmp = `${this.file(rec.id)}.tmp`;
    // 0600: a record holds the instance's spec, its env (secrets) included.
    writeFileSync(tmp, JSON.stringify({ ...rec, updatedAt: new Date().toISOString() }), { mode: 0o600 });
    renameSync(tmp, this.file(rec.id));
  }
  async listInstances(site?: string): Promise<InstanceRecord[]> {
    const out: InstanceRecord[] = [];
    for (const f of readdirSync(this.dir)) {
      if (!f.endsWith('.json')) continue;
      try {
        const rec = JSON.parse(readFileSync(path.join(this.dir, f), 'utf8')) as InstanceRecord;
        if (site === undefined || rec.site === site) out.push(rec);
      } catch {
        // a torn file cannot happen with rename; skip anything foreign
      }
    }
    return out;
  }
  async deleteInstance(id: string): Promise<void> {
    rmSync(this.file(id), { force: true });
  }
}
