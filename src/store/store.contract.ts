/**
 * The behaviour every Store must have, run by each backend's test file
 * (`pglite.test.ts`, `postgres.test.ts`). Tests use names unique to each test
 * and measure the change log relative to where it stood, so they share one
 * open store per file (opening PGlite is slow) without clearing it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppResource, ProjectResource, Resource, SiteResource } from '../model/types.ts';
import { migrate } from './migrations.ts';
import type { SqlExecutor } from './sql.ts';
import { LIST_PAGE, MAX_AUDIT_LIMIT, SqlStore } from './sql-store.ts';
import type { AuditEntry, AuditRecord } from '../model/audit.ts';
import { verifyAudit } from '../audit/verify.ts';
import { chainEntry } from '../audit/chain.ts';
import { newCheckpointKey, signCheckpoint } from '../audit/checkpoint.ts';
import { ConflictError, MAX_INCIDENT_LIMIT } from './store.ts';
import type { Store } from './store.ts';
import { sampleIncident } from './testdata/incidents.ts';

let counter = 0;
/** A name no other test in this run uses. */
function unique(prefix: string): string {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${counter}`;
}

export function app(
  project: string,
  name: string,
  replicas = 1,
  extra: Partial<AppResource['metadata']> = {},
): AppResource {
  return {
    apiVersion: 'bulwark.io/v1',
    kind: 'App',
    metadata: { name, project, ...extra },
    spec: {
      workloads: [{ name: 'web', type: 'service', replicas, run: { command: ['node', 'server.js'] } }],
    },
  };
}

function project(name: string, tenant = 'payments'): ProjectResource {
  return { apiVersion: 'bulwark.io/v1', kind: 'Project', metadata: { name }, spec: { tenant } };
}

function site(name: string): SiteResource {
  return {
    apiVersion: 'bulwark.io/v1',
    kind: 'Site',
    metadata: { name },
    spec: { kind: 'local', gatewayPort: 8080 },
  };
}

const appKey = (p: string, n: string) => ({ kind: 'App' as const, project: p, name: n });

/** An executor that fails any statement matching `pattern`, to prove transactions roll back. */
function failingOn(pattern: RegExp, inner: SqlExecutor): SqlExecutor {
  return {
    description: inner.description,
    query: (text, params) =>
      pattern.test(text)
        ? Promise.reject(new Error(`injected failure on: ${text}`))
        : inner.query(text, params),
    transaction: (fn) => inner.transaction((tx) => fn(failingOn(pattern, tx))),
    close: () => Promise.resolve(),
  };
}

export function runStoreContract(name: string, open: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;

    beforeAll(async () => {
      store = await open();
    });
    afterAll(async () => {
      await store?.close();
    });

    it('creates a resource at generation 1 and resourceVersion 1 in the full envelope, with a created event', async () => {
      const p = unique('p');
      const before = await store.latestSeq();
      const res = await store.apply(app(p, 'api'));
      expect(res.action).toBe('created');
      expect(res.resource).toMatchObject({
        apiVersion: 'bulwark.io/v1',
        kind: 'App',
        metadata: { name: 'api', project: p, generation: 1, resourceVersion: 1 },
        spec: app(p, 'api').spec,
      });
      expect(res.resource.metadata.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(res.resource.metadata.updatedAt).toBe(res.resource.metadata.createdAt);
      expect(await store.get(appKey(p, 'api'))).toEqual(res.resource);

      const events = await store.changesSince(before);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ seq: before + 1, type: 'created', key: appKey(p, 'api') });
      expect(events[0]!.resource).toEqual(res.resource);
      expect(await store.latestSeq()).toBe(before + 1);
    });

    it("returns from apply exactly what get reads back, detached from the caller's object", async () => {
      const p = unique('p');
      const input = app(p, 'api');
      input.spec.workloads[0]!.image = undefined;
      const res = await store.apply(input);
      input.spec.workloads[0]!.replicas = 99;
      expect(await store.get(appKey(p, 'api'))).toStrictEqual(res.resource);
      expect((res.resource as AppResource).spec.workloads[0]!.replicas).toBe(1);
    });

    it('returns unchanged and writes nothing when spec and labels are equal in a different key order', async () => {
      const p = unique('p');
      const first = await store.apply(app(p, 'api', 2, { labels: { tier: 'gold', team: 'core' } }));
      const before = await store.latestSeq();
      const reordered: AppResource = {
        kind: 'App',
        spec: {
          workloads: [{ run: { command: ['node', 'server.js'] }, replicas: 2, type: 'service', name: 'web' }],
        },
        metadata: { labels: { team: 'core', tier: 'gold' }, project: p, name: 'api' },
        apiVersion: 'bulwark.io/v1',
      };
      const res = await store.apply(reordered);
      expect(res.action).toBe('unchanged');
      expect(res.resource).toEqual(first.resource);
      expect(await store.latestSeq()).toBe(before);
      expect(await store.get(appKey(p, 'api'))).toEqual(first.resource);
    });

    it('bumps generation and resourceVersion on a spec change and emits an updated event with the new resource', async () => {
      const p = unique('p');
      await store.apply(app(p, 'api', 1));
      const before = await store.latestSeq();
      const res = await store.apply(app(p, 'api', 3));
      expect(res.action).toBe('updated');
      expect(res.resource.metadata).toMatchObject({ generation: 2, resourceVersion: 2 });
      expect((res.resource as AppResource).spec.workloads[0]!.replicas).toBe(3);
      const events = await store.changesSince(before);
      expect(events.map((e) => [e.seq, e.type])).toEqual([[before + 1, 'updated']]);
      expect(events[0]!.resource).toEqual(res.resource);
    });

    it('treats a label change as a new generation and ignores server-owned metadata on input', async () => {
      const p = unique('p');
      await store.apply(
        app(p, 'api', 1, { generation: 40, resourceVersion: 41, createdAt: '2000-01-01T00:00:00.000Z' }),
      );
      const got = await store.get(appKey(p, 'api'));
      expect(got!.metadata).toMatchObject({ generation: 1, resourceVersion: 1 });
      expect(got!.metadata.createdAt).not.toBe('2000-01-01T00:00:00.000Z');
      const res = await store.apply(app(p, 'api', 1, { labels: { env: 'prod' } }));
      expect(res.action).toBe('updated');
      expect(res.resource.metadata).toMatchObject({
        labels: { env: 'prod' },
        generation: 2,
        resourceVersion: 2,
      });
      expect(res.resource.metadata.createdAt).toBe(got!.metadata.createdAt);
    });

    it('updates status without a new generation, emits a status event only when the status changed', async () => {
      const p = unique('p');
      await store.apply(app(p, 'api'));
      const before = await store.latestSeq();
      const status: AppResource['status'] = {
        observedGeneration: 1,
        conditions: [
          { type: 'Ready', status: 'True', reason: 'AllReady', message: '', lastTransitionTime: 'x' },
        ],
      };
      expect(await store.updateStatus(appKey(p, 'api'), status)).toBe(true);
      const got = await store.get(appKey(p, 'api'));
      expect(got!.status).toEqual(status);
      expect(got!.metadata).toMatchObject({ generation: 1, resourceVersion: 2 });
      // Same status, keys reordered: no write, no event.
      expect(
        await store.updateStatus(appKey(p, 'api'), { conditions: status.conditions, observedGeneration: 1 }),
      ).toBe(true);
      const events = await store.changesSince(before);
      expect(events.map((e) => e.type)).toEqual(['status']);
      expect(events[0]!.resource.status).toEqual(status);
      expect((await store.get(appKey(p, 'api')))!.metadata.resourceVersion).toBe(2);
      // A later spec apply keeps the status controllers wrote.
      const applied = await store.apply(app(p, 'api', 5));
      expect(applied.resource.status).toEqual(status);
      expect(applied.resource.metadata).toMatchObject({ generation: 2, resourceVersion: 3 });
    });

    it('returns false from updateStatus for a missing resource and writes no event', async () => {
      const before = await store.latestSeq();
      expect(await store.updateStatus(appKey(unique('p'), 'ghost'), { conditions: [] })).toBe(false);
      expect(await store.latestSeq()).toBe(before);
    });

    it('rejects a write with a stale expectedResourceVersion with ConflictError and writes nothing', async () => {
      const p = unique('p');
      const created = await store.apply(app(p, 'api', 1));
      await store.updateStatus(appKey(p, 'api'), { conditions: [] }); // resourceVersion 2
      const before = await store.latestSeq();
      await expect(store.apply(app(p, 'api', 9), { expectedResourceVersion: 1 })).rejects.toBeInstanceOf(
        ConflictError,
      );
      expect(await store.latestSeq()).toBe(before);
      expect((await store.get(appKey(p, 'api')))!.spec).toEqual(created.resource.spec);
      const ok = await store.apply(app(p, 'api', 9), { expectedResourceVersion: 2 });
      expect(ok.action).toBe('updated');
      expect(ok.resource.metadata.resourceVersion).toBe(3);
    });

    it('treats expectedResourceVersion 0 as create-only and any other version on a missing resource as a conflict', async () => {
      const p = unique('p');
      await expect(store.apply(app(p, 'api'), { expectedResourceVersion: 4 })).rejects.toThrow(
        /does not exist/,
      );
      expect((await store.apply(app(p, 'api'), { expectedResourceVersion: 0 })).action).toBe('created');
      await expect(store.apply(app(p, 'api', 2), { expectedResourceVersion: 0 })).rejects.toBeInstanceOf(
        ConflictError,
      );
    });

    it('lists by kind, optionally by project, sorted by name', async () => {
      const p1 = unique('p');
      const p2 = unique('p');
      await store.apply(app(p1, 'zeta'));
      await store.apply(app(p1, 'alpha'));
      await store.apply(app(p2, 'mid'));
      const s = unique('s');
      await store.apply(site(s));
      expect((await store.list('App', { project: p1 })).map((r) => r.metadata.name)).toEqual([
        'alpha',
        'zeta',
      ]);
      expect((await store.list('App', { project: p2 })).map((r) => r.metadata.name)).toEqual(['mid']);
      const all = await store.list('App');
      expect(all.filter((r) => r.metadata.project === p1 || r.metadata.project === p2)).toHaveLength(3);
      const sites = await store.list('Site');
      expect(sites.find((r) => r.metadata.name === s)).toMatchObject({
        kind: 'Site',
        spec: { kind: 'local' },
      });
      expect(sites.every((r) => r.metadata.project === undefined)).toBe(true);
      expect(await store.get({ kind: 'App', project: p1, name: 'nope' })).toBeUndefined();
    });

    it('lists more than one page (LIST_PAGE rows) completely, in order, each row once', async () => {
      const p1 = unique('p');
      const p2 = unique('p');
      const names = Array.from({ length: 2 * LIST_PAGE + 7 }, (_, i) => `a${String(i).padStart(4, '0')}`);
      for (const n of names) await store.apply(app(p1, n));
      await store.apply(app(p2, 'other'));
      expect((await store.list('App', { project: p1 })).map((r) => r.metadata.name)).toEqual(names);
      const all = (await store.list('App')).map((r) => `${r.metadata.project}/${r.metadata.name}`);
      expect(new Set(all).size).toBe(all.length);
      expect(all.filter((k) => k.startsWith(`${p1}/`))).toEqual(names.map((n) => `${p1}/${n}`));
      expect(all).toContain(`${p2}/other`);
    });

    it('deletes a resource, returning it and emitting a deleted event; deleting again is a no-op', async () => {
      const pr = unique('proj');
      const created = await store.apply(project(pr));
      const key = { kind: 'Project' as const, project: '', name: pr };
      const before = await store.latestSeq();
      expect(await store.delete(key)).toEqual(created.resource);
      expect(await store.get(key)).toBeUndefined();
      const events = await store.changesSince(before);
      expect(events.map((e) => [e.type, e.key])).toEqual([['deleted', key]]);
      expect(events[0]!.resource).toEqual(created.resource);
      expect(await store.delete(key)).toBeUndefined();
      expect(await store.latestSeq()).toBe(before + 1);
      // Re-creating starts a fresh history.
      expect((await store.apply(project(pr))).resource.metadata).toMatchObject({
        generation: 1,
        resourceVersion: 1,
      });
    });

    it('numbers changes gap-free in order under concurrent writers, and pages with changesSince', async () => {
      const p = unique('p');
      const before = await store.latestSeq();
      const writes: Promise<unknown>[] = [];
      for (let i = 0; i < 8; i++) writes.push(store.apply(app(p, `a${i}`)));
      // Concurrent creates and updates of one key must serialise, not fail.
      for (let i = 0; i < 4; i++) writes.push(store.apply(app(p, 'shared', i + 1)));
      await Promise.all(writes);
      const events = await store.changesSince(before);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => before + 1 + i));
      expect(await store.latestSeq()).toBe(before + events.length);
      const shared = events.filter((e) => e.key.name === 'shared');
      expect(shared[0]!.type).toBe('created');
      // Every change of `shared` is one resourceVersion step, in seq order.
      expect(shared.map((e) => e.resource.metadata.resourceVersion)).toEqual(shared.map((_, i) => i + 1));
      expect((await store.get(appKey(p, 'shared')))!.metadata.resourceVersion).toBe(shared.length);

      const page1 = await store.changesSince(before, 5);
      const page2 = await store.changesSince(page1.at(-1)!.seq, 5);
      expect([...page1, ...page2].map((e) => e.seq)).toEqual(events.slice(0, 10).map((e) => e.seq));
    });

    it('leaves no row and no event when the database rejects a write', async () => {
      const p = unique('p');
      const before = await store.latestSeq();
      const bad = app(p, 'api');
      bad.spec.workloads[0]!.env = { BAD: 'nul\u0000byte' }; // jsonb cannot hold \u0000
      await expect(store.apply(bad)).rejects.toThrow();
      expect(await store.get(appKey(p, 'api'))).toBeUndefined();
      expect(await store.latestSeq()).toBe(before);
      expect((await store.apply(app(p, 'api'))).action).toBe('created');
      expect(await store.latestSeq()).toBe(before + 1);
    });

    it('rejects a resource without its key fields with an error naming the field', async () => {
      const noProject = app('x', 'api');
      delete noProject.metadata.project;
      await expect(store.apply(noProject)).rejects.toThrow(/metadata\.project is required/);
      await expect(store.apply({ ...site('s'), metadata: { name: '' } })).rejects.toThrow(/metadata\.name/);
      await expect(store.apply({ ...site('s'), kind: 'Bogus' } as unknown as Resource)).rejects.toThrow(
        /kind must be/,
      );
      await expect(store.changesSince(-1)).rejects.toThrow(/afterSeq/);
    });

    it('rolls back the resource write when its change event cannot be written', async () => {
      if (!(store instanceof SqlStore)) return;
      const p = unique('p');
      await store.apply(app(p, 'kept', 1));
      const before = await store.latestSeq();
      const broken = new SqlStore(failingOn(/INSERT INTO changes/, store.executor));
      await expect(broken.apply(app(p, 'new'))).rejects.toThrow(/injected failure/);
      await expect(broken.apply(app(p, 'kept', 7))).rejects.toThrow(/injected failure/);
      await expect(broken.updateStatus(appKey(p, 'kept'), { conditions: [] })).rejects.toThrow(/injected/);
      await expect(broken.delete(appKey(p, 'kept'))).rejects.toThrow(/injected failure/);
      expect(await store.get(appKey(p, 'new'))).toBeUndefined();
      const kept = await store.get(appKey(p, 'kept'));
      expect(kept!.metadata).toMatchObject({ generation: 1, resourceVersion: 1 });
      expect(kept!.status).toBeUndefined();
      // The counter rolled back too: the next change takes the very next seq.
      expect(await store.latestSeq()).toBe(before);
      await store.apply(app(p, 'new'));
      expect((await store.changesSince(before)).map((e) => e.seq)).toEqual([before + 1]);
    });

    describe('audit trail', () => {
      const rec = (p: string, action: string, extra: Partial<AuditRecord> = {}): AuditRecord => ({
        at: new Date().toISOString(),
        actor: { kind: 'user', id: `alice-${p}` },
        action,
        tenant: `t-${p}`,
        resource: { kind: 'App', project: p, name: 'api' },
        outcome: 'ok',
        ...extra,
      });
      const all = (): Promise<AuditEntry[]> => store.listAudit({ limit: MAX_AUDIT_LIMIT });

      it('records a change in its own transaction, chained, and reads back exactly what was hashed', async () => {
        const p = unique('p');
        const before = (await all()).at(-1)?.seq ?? 0;
        await store.apply(app(p, 'api'), { audit: rec(p, 'apply') });
        await store.apply(app(p, 'api'), { audit: rec(p, 'apply', { reason: 'unchanged' }) });
        await store.delete(appKey(p, 'api'), { audit: rec(p, 'delete') });
        const e = await store.appendAudit(rec(p, 'scale', { outcome: 'denied' }));
        const mine = await store.listAudit({ afterSeq: before });
        expect(mine.map((x) => x.seq)).toEqual([before + 1, before + 2, before + 3, before + 4]);
        expect(mine.map((x) => (JSON.parse(x.body!) as AuditRecord).action)).toEqual([
          'apply',
          'apply',
          'delete',
          'scale',
        ]);
        expect(mine[3]).toEqual(e);
        const r = verifyAudit(await all(), [], new Map());
        expect(r.problems).toEqual([]);
      });

      it('writes neither the change nor its record when either fails', async () => {
        if (!(store instanceof SqlStore)) throw new Error('the audit atomicity case needs the SqlStore');
        const p = unique('p');
        const before = (await all()).at(-1)?.seq ?? 0;
        const seq = await store.latestSeq();
        const noAudit = new SqlStore(failingOn(/INSERT INTO audit_entries/, store.executor));
        await expect(noAudit.apply(app(p, 'api'), { audit: rec(p, 'apply') })).rejects.toThrow(/injected/);
        expect(await store.get(appKey(p, 'api'))).toBeUndefined();
        expect(await store.latestSeq()).toBe(seq);
        const noChange = new SqlStore(failingOn(/INSERT INTO changes/, store.executor));
        await expect(noChange.apply(app(p, 'api'), { audit: rec(p, 'apply') })).rejects.toThrow(/injected/);
        expect(await store.listAudit({ afterSeq: before })).toEqual([]);
        // The head rolled back too: the next entry takes the very next seq.
        expect((await store.appendAudit(rec(p, 'apply'))).seq).toBe(before + 1);
      });

      it('detects and locates 100 random tamperings made with SQL (edits, deletions, insertions, swaps)', async () => {
        if (!(store instanceof SqlStore)) throw new Error('the SQL tamper case needs the SqlStore');
        const p = unique('p');
        for (let i = 0; i < 60; i++) await store.appendAudit(rec(p, `act${i}`));
        const intact = await all();
        const last = intact.at(-1)!;
        const key = newCheckpointKey();
        const keys = new Map([[key.keyId, key.publicKey]]);
        const checkpoints = [signCheckpoint(key, last.seq, last.hash)];
        const base = last.seq - 60;
        class Rollback extends Error {}
        const read = async (tx: SqlExecutor): Promise<AuditEntry[]> =>
          (
            await tx.query<{ seq: string | number; prev_hash: string; hash: string; body: string }>(
              'SELECT seq, prev_hash, hash, body FROM audit_entries ORDER BY seq',
            )
          ).rows.map((r) => ({ seq: Number(r.seq), prevHash: r.prev_hash, hash: r.hash, body: r.body }));
        const BIG = 1_000_000_000;
        const tampers: [string, (tx: SqlExecutor, k: number) => Promise<unknown>, string[]][] = [
          [
            'edit',
            (tx, k) =>
              tx.query(`UPDATE audit_entries SET body = replace(body, '"ok"', '"denied"') WHERE seq = $1`, [
                k,
              ]),
            ['changed'],
          ],
          ['delete', (tx, k) => tx.query('DELETE FROM audit_entries WHERE seq = $1', [k]), ['removed']],
          [
            'delete newest',
            (tx, k) => tx.query('DELETE FROM audit_entries WHERE seq >= $1', [k]),
            ['truncated'],
          ],
          [
            'swap',
            async (tx, k) => {
              await tx.query('UPDATE audit_entries SET seq = $2 WHERE seq = $1', [k, -k]);
              await tx.query('UPDATE audit_entries SET seq = $2 WHERE seq = $1', [k + 1, k]);
              await tx.query('UPDATE audit_entries SET seq = $2 WHERE seq = $1', [-k, k + 1]);
            },
            ['reordered'],
          ],
          [
            'insert',
            async (tx, k) => {
              await tx.query('UPDATE audit_entries SET seq = seq + $2 WHERE seq >= $1', [k, BIG]);
              await tx.query('UPDATE audit_entries SET seq = seq - $1 + 1 WHERE seq >= $1', [BIG]);
              const prev = (
                await tx.query<{ hash: string }>('SELECT hash FROM audit_entries WHERE seq = $1', [k - 1])
              ).rows[0]!;
              const forged = chainEntry({ seq: k - 1, hash: prev.hash }, rec(p, 'forged'));
              await tx.query(
                `INSERT INTO audit_entries (seq, prev_hash, hash, body, at, actor, action) VALUES ($1, $2, $3, $4, now(), 'x', 'forged')`,
                [k, forged.prevHash, forged.hash, forged.body],
              );
            },
            ['inserted'],
          ],
        ];
        let seed = 7;
        const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
        for (let n = 0; n < 100; n++) {
          const [name, tamper, kinds] = tampers[n % tampers.length]!;
          const k = base + 2 + Math.floor(random() * 50);
          let report: ReturnType<typeof verifyAudit> | undefined;
          await store.executor
            .transaction(async (tx) => {
              await tamper(tx, k);
              report = verifyAudit(await read(tx), checkpoints, keys);
              throw new Rollback();
            })
            .catch((err: unknown) => {
              if (!(err instanceof Rollback)) throw err;
            });
          const first = report!.problems[0];
          expect(report!.ok, `${name} at ${k}`).toBe(false);
          expect(kinds, `${name} at ${k}: ${JSON.stringify(first)}`).toContain(first!.kind);
          expect(first!.seq, `${name} at ${k}: ${JSON.stringify(first)}`).toBe(k);
        }
        // Every tampering was rolled back: the trail is intact again.
        expect(verifyAudit(await all(), checkpoints, keys).problems).toEqual([]);
      });

      it('chains concurrent writers in commit order, without a gap, and filters by tenant, actor and time', async () => {
        const p = unique('p');
        const before = (await all()).at(-1)?.seq ?? 0;
        const from = new Date(Date.now() - 1000).toISOString();
        await Promise.all(
          Array.from({ length: 12 }, (_, i) =>
            i % 2
              ? store.apply(app(p, `a${i}`), {
                  audit: rec(p, 'apply', { actor: { kind: 'user', id: `bob-${p}` } }),
                })
              : store.appendAudit(rec(p, 'scale')),
          ),
        );
        const mine = await store.listAudit({ afterSeq: before });
        expect(mine.map((x) => x.seq)).toEqual(Array.from({ length: 12 }, (_, i) => before + 1 + i));
        expect(verifyAudit(await all(), [], new Map()).problems).toEqual([]);
        expect(await store.listAudit({ tenant: `t-${p}`, actor: `bob-${p}` })).toHaveLength(6);
        expect(await store.listAudit({ tenant: `t-${p}`, since: from, limit: 5 })).toHaveLength(5);
        expect(await store.listAudit({ tenant: `t-${p}`, until: from })).toEqual([]);
        await expect(store.listAudit({ limit: 0 })).rejects.toThrow(
          /limit must be an integer from 1 to 10000/,
        );
      });
    });

    it('applies no migration the second time', async () => {
      if (!(store instanceof SqlStore)) return;
      const report = await migrate(store.executor);
      expect(report.applied).toEqual([]);
      expect(report.version).toBeGreaterThanOrEqual(1);
    });

    it('stores, replaces, lists by site and deletes instance records', async () => {
      const s1 = unique('site');
      const s2 = unique('site');
      const base = { project: 'p', app: 'api', workload: 'web' };
      await store.putInstance({ id: `${s1}-b`, site: s1, ...base, data: { pid: 1 } });
      await store.putInstance({ id: `${s1}-a`, site: s1, ...base, data: { pid: 2, netns: 'ns1' } });
      await store.putInstance({ id: `${s2}-a`, site: s2, ...base, data: {} });
      await store.putInstance({ id: `${s1}-b`, site: s1, ...base, data: { pid: 3 } });
      const list = await store.listInstances(s1);
      expect(list.map((r) => [r.id, r.data])).toEqual([
        [`${s1}-a`, { pid: 2, netns: 'ns1' }],
        [`${s1}-b`, { pid: 3 }],
      ]);
      expect(list[0]!.updatedAt).toMatch(/Z$/);
      expect((await store.listInstances()).filter((r) => r.site === s2)).toHaveLength(1);
      await store.deleteInstance(`${s1}-a`);
      await store.deleteInstance(`${s1}-missing`);
      expect((await store.listInstances(s1)).map((r) => r.id)).toEqual([`${s1}-b`]);
    });

    it('stores tokens by hash, finds and counts them, and refuses a duplicate secret', async () => {
      const n = await store.countTokens();
      const hash = (Date.now().toString(16) + unique('t'))
        .replace(/[^0-9a-f]/g, '')
        .padEnd(64, 'a')
        .slice(0, 64);
      const rec = {
        id: unique('tok'),
        name: 'ci',
        hash,
        createdAt: '2026-01-02T03:04:05.000Z',
        scope: 'admin' as const,
      };
      await store.addToken(rec);
      expect(await store.findTokenByHash(hash)).toEqual(rec);
      expect(await store.findTokenByHash('f'.repeat(64))).toBeUndefined();
      expect(await store.countTokens()).toBe(n + 1);
      await expect(store.addToken({ ...rec, id: unique('tok') })).rejects.toBeInstanceOf(ConflictError);
      await expect(store.addToken({ ...rec, id: unique('tok'), hash: 'secret' })).rejects.toThrow(/sha256/);
      expect(await store.countTokens()).toBe(n + 1);
    });

    it('keeps a token scope, refuses an unknown one, lists tokens oldest first, and revokes once', async () => {
      const hashOf = (tag: string): string =>
        Buffer.from(unique(tag)).toString('hex').padEnd(64, '0').slice(0, 64);
      const older = {
        id: unique('tok'),
        name: 'node-a',
        hash: hashOf('a'),
        createdAt: '2026-01-02T03:04:05.000Z',
        scope: 'agent' as const,
      };
      const newer = {
        ...older,
        id: unique('tok'),
        name: 'node-b',
        hash: hashOf('b'),
        createdAt: '2026-01-03T00:00:00.000Z',
      };
      await store.addToken(newer);
      await store.addToken(older);
      expect(await store.findTokenByHash(older.hash)).toEqual(older);
      await expect(
        store.addToken({ ...older, id: unique('tok'), hash: hashOf('c'), scope: 'root' as 'admin' }),
      ).rejects.toThrow(/scope must be one of admin, agent; got root/);

      const listed = (await store.listTokens()).filter((t) => t.id === older.id || t.id === newer.id);
      expect(listed).toEqual([older, newer]);

      const revoked = await store.revokeToken(older.id, {
        at: '2026-02-01T00:00:00.000Z',
        reason: 'node retired',
      });
      expect(revoked).toEqual({
        ...older,
        revokedAt: '2026-02-01T00:00:00.000Z',
        revokedReason: 'node retired',
      });
      // A second revocation (a retry) keeps the first time and reason.
      expect(await store.revokeToken(older.id, { at: '2026-03-01T00:00:00.000Z', reason: 'again' })).toEqual(
        revoked,
      );
      expect(await store.findTokenByHash(older.hash)).toEqual(revoked);
      expect(await store.findTokenByHash(newer.hash)).toEqual(newer);
      const noReason = await store.revokeToken(newer.id, { at: '2026-02-02T00:00:00.000Z' });
      expect(noReason).toEqual({ ...newer, revokedAt: '2026-02-02T00:00:00.000Z' });
      expect(await store.revokeToken(unique('missing'), { at: '2026-02-01T00:00:00.000Z' })).toBeUndefined();
    });

    it('stores an incident and replaces it by id, round-tripping the whole document and re-indexing it', async () => {
      const p = unique('p');
      const first = sampleIncident({ id: unique('inc'), project: p, replacementId: undefined });
      await store.putIncident(first);
      // undefined members are dropped, as JSON would; everything else comes back as written.
      expect(await store.getIncident(first.id)).toStrictEqual(JSON.parse(JSON.stringify(first)));
      const resolved = sampleIncident({
        ...first,
        state: 'resolved',
        resolvedAt: '2026-01-02T03:10:00.000Z',
        durations: { ...first.durations, mttrMs: 1200 },
        timeline: [...first.timeline, { at: '2026-01-02T03:10:00.000Z', event: 'released', detail: 'op' }],
      });
      await store.putIncident(resolved);
      expect(await store.getIncident(first.id)).toEqual(resolved);
      expect(await store.listIncidents({ project: p })).toEqual([resolved]);
      expect(await store.listIncidents({ project: p, state: 'isolated' })).toEqual([]);
      expect(await store.listIncidents({ project: p, state: 'resolved' })).toEqual([resolved]);
      expect(await store.getIncident(unique('inc-missing'))).toBeUndefined();
    });

    it('stores automatic actions and lists them newest first, filtered by project and app, up to the limit', async () => {
      const p = unique('p');
      const at = (s: number) => `2026-03-01T00:00:${String(s).padStart(2, '0')}.000Z`;
      const action = (id: string, app: string, s: number, kind: 'failover' | 'failback' = 'failover') => ({
        id: `${p}-${id}`,
        at: at(s),
        kind,
        project: p,
        app,
        summary: `${kind} of ${p}/${app}`,
        changes: [{ workload: 'api', site: 'dc1', from: 2, to: 4 }],
      });
      for (const a of [action('a', 'pay', 1), action('b', 'pay', 3, 'failback'), action('c', 'ledger', 2)])
        await store.putAction(a);
      const ids = (list: { id: string }[]) => list.map((i) => i.id.slice(p.length + 1));
      expect(ids(await store.listActions({ project: p }))).toEqual(['b', 'c', 'a']);
      expect(ids(await store.listActions({ project: p, app: 'pay' }))).toEqual(['b', 'a']);
      expect(ids(await store.listActions({ project: p, limit: 1 }))).toEqual(['b']);
      expect((await store.listActions({ project: p, app: 'pay' }))[1]).toEqual(action('a', 'pay', 1));
      await expect(store.listActions({ limit: 501 })).rejects.toThrow(
        /limit must be an integer from 1 to 500/,
      );
      await expect(
        store.putAction({ ...action('d', 'pay', 4), kind: 'exploded' as 'failover' }),
      ).rejects.toThrow(/kind must be one of failover, failback, rebalance/);
      expect(await store.listActions({ project: p })).toHaveLength(3);
    });

    it('lists incidents newest first (ties by id), filtered by project, app, state and instance, up to the limit', async () => {
      const p = unique('p');
      const at = (s: number) => `2026-03-01T00:00:${String(s).padStart(2, '0')}.000Z`;
      const incs = [
        sampleIncident({ id: `${p}-a`, project: p, app: 'pay', instanceId: 'pay-0', createdAt: at(1) }),
        sampleIncident({ id: `${p}-b`, project: p, app: 'pay', instanceId: 'pay-1', createdAt: at(3) }),
        sampleIncident({ id: `${p}-c`, project: p, app: 'ledger', instanceId: 'led-0', createdAt: at(2) }),
        sampleIncident({
          id: `${p}-d`,
          project: p,
          app: 'pay',
          instanceId: 'pay-0',
          createdAt: at(3),
          state: 'open',
        }),
      ];
      for (const i of incs) await store.putIncident(i);
      const ids = (list: { id: string }[]) => list.map((i) => i.id.slice(p.length + 1));
      expect(ids(await store.listIncidents({ project: p }))).toEqual(['d', 'b', 'c', 'a']);
      expect(ids(await store.listIncidents({ project: p, app: 'pay' }))).toEqual(['d', 'b', 'a']);
      expect(ids(await store.listIncidents({ project: p, instanceId: 'pay-0' }))).toEqual(['d', 'a']);
      // 'open' is every incident not resolved yet (the isolated and mitigated ones too).
      expect(ids(await store.listIncidents({ project: p, state: 'open' }))).toEqual(['d', 'b', 'c', 'a']);
      await store.putIncident({ ...incs[1]!, state: 'resolved' });
      expect(ids(await store.listIncidents({ project: p, state: 'open' }))).toEqual(['d', 'c', 'a']);
      expect(ids(await store.listIncidents({ project: p, state: 'resolved' }))).toEqual(['b']);
      await store.putIncident(incs[1]!);
      expect(ids(await store.listIncidents({ project: p, app: 'pay', state: 'isolated' }))).toEqual([
        'b',
        'a',
      ]);
      expect(ids(await store.listIncidents({ project: p, limit: 2 }))).toEqual(['d', 'b']);
      expect(await store.listIncidents({ project: unique('p') })).toEqual([]);
      const all = await store.listIncidents({ limit: MAX_INCIDENT_LIMIT });
      expect(all.filter((i) => i.project === p)).toHaveLength(4);
    });

    it('refuses a bad incident limit, state or key field with an error naming it', async () => {
      await expect(store.listIncidents({ limit: MAX_INCIDENT_LIMIT + 1 })).rejects.toThrow(
        /limit must be an integer from 1 to 1000, got 1001/,
      );
      await expect(store.listIncidents({ limit: 0 })).rejects.toThrow(/limit must be/);
      await expect(store.listIncidents({ limit: 2.5 })).rejects.toThrow(/limit must be/);
      await expect(store.listIncidents({ state: 'closed' as 'open' })).rejects.toThrow(
        /state must be one of open, isolated, mitigated, resolved, got "closed"/,
      );
      const p = unique('p');
      await expect(store.putIncident(sampleIncident({ project: p, instanceId: '' }))).rejects.toThrow(
        /instanceId must be a non-empty string/,
      );
      await expect(
        store.putIncident(sampleIncident({ project: p, state: 'gone' as 'open' })),
      ).rejects.toThrow(/state must be one of/);
      await expect(store.putIncident(sampleIncident({ project: p, createdAt: 'yesterday' }))).rejects.toThrow(
        /createdAt must be an ISO-8601 time/,
      );
      expect(await store.listIncidents({ project: p })).toEqual([]);
    });

    it('keeps resources, the change log, instances, incidents and tokens across close and reopen', async () => {
      const p = unique('p');
      const res = await store.apply(app(p, 'durable'));
      await store.updateStatus(appKey(p, 'durable'), { conditions: [] });
      await store.putInstance({
        id: unique('inst'),
        site: p,
        project: p,
        app: 'durable',
        workload: 'web',
        data: { x: 1 },
      });
      const incident = sampleIncident({ id: unique('inc'), project: p });
      await store.putIncident(incident);
      const seq = await store.latestSeq();
      const tokens = await store.countTokens();
      const events = await store.changesSince(seq - 2);
      await store.close();
      store = await open();
      const got = await store.get(appKey(p, 'durable'));
      expect(got).toMatchObject({
        spec: res.resource.spec,
        metadata: { resourceVersion: 2 },
        status: { conditions: [] },
      });
      expect(await store.latestSeq()).toBe(seq);
      expect(await store.changesSince(seq - 2)).toEqual(events);
      expect(await store.listInstances(p)).toHaveLength(1);
      expect(await store.countTokens()).toBe(tokens);
      expect(await store.getIncident(incident.id)).toEqual(incident);
    });
  });
}
