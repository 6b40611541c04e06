import { describe, expect, it } from 'vitest';
import { waitFor } from '../../util/time.ts';
import { Informer, type InformerEvent, type ListWatcher } from './informer.ts';
import type { KubeList, KubeObject, WatchEvent } from './types.ts';

const obj = (name: string, rv: string): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'ns', resourceVersion: rv },
});

type Step =
  | { list: KubeList<KubeObject> }
  | { watch: WatchEvent<KubeObject>[]; end?: 'close' | { status: number } | 'hang' };

/** A ListWatcher that replays a recorded sequence of API answers and records what was asked. */
function recorded(steps: Step[]) {
  const calls: string[] = [];
  const next = (kind: 'list' | 'watch'): Step => {
    const s = steps.shift();
    if (!s || !(kind in s)) throw new Error(`unexpected ${kind} (next step: ${JSON.stringify(s)})`);
    return s;
  };
  const lw: ListWatcher<KubeObject> = {
    list: async () => {
      calls.push('list');
      return (next('list') as { list: KubeList<KubeObject> }).list;
    },
    watch: async (rv, onEvent, signal) => {
      calls.push(`watch@${rv}`);
      const s = next('watch') as Extract<Step, { watch: unknown }>;
      for (const ev of s.watch) onEvent(ev);
      if (s.end && typeof s.end === 'object')
        throw Object.assign(new Error(`HTTP ${s.end.status}`), { status: s.end.status });
      if (s.end === 'hang' || steps.length === 0)
        await new Promise<void>((r) => signal.addEventListener('abort', () => r()));
    },
  };
  return { lw, calls, steps };
}

describe('Informer', () => {
  it('lists, watches from the list version, follows bookmarks, and relists on 410 reporting vanished objects as deleted', async () => {
    const { lw, calls, steps } = recorded([
      { list: { metadata: { resourceVersion: '10' }, items: [obj('a', '5'), obj('b', '7')] } },
      {
        watch: [
          { type: 'MODIFIED', object: obj('a', '11') },
          { type: 'ADDED', object: obj('c', '12') },
          { type: 'BOOKMARK', object: obj('', '15') },
        ],
        end: 'close',
      },
      // The resumed watch starts from the bookmark, and the server says that version is compacted.
      {
        watch: [
          { type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old' } },
        ],
      },
      // Meanwhile b was deleted and c changed: the relist must tell.
      { list: { metadata: { resourceVersion: '30' }, items: [obj('a', '11'), obj('c', '25')] } },
      { watch: [{ type: 'DELETED', object: obj('c', '31') }], end: 'hang' },
    ]);
    const events: string[] = [];
    const inf = new Informer(
      lw,
      (e: InformerEvent<KubeObject>) => events.push(`${e.type} ${e.object.metadata.name}`),
      {
        backoffInitialMs: 1,
      },
    );
    await inf.start();
    await waitFor('all steps consumed', () => steps.length === 0, { timeoutMs: 2000 });
    await waitFor('c deleted', () => events.includes('deleted c'), { timeoutMs: 2000 });
    await inf.stop();
    expect(calls).toEqual(['list', 'watch@10', 'watch@15', 'list', 'watch@30']);
    expect(events).toEqual([
      'added a',
      'added b',
      'modified a',
      'added c',
      'modified c', // from the relist: version 12 -> 25
      'deleted b', // vanished while the watch was gone
      'deleted c',
    ]);
    expect(inf.list().map((o) => o.metadata.name)).toEqual(['a']);
    expect(inf.status()).toMatchObject({ synced: true, lists: 2, gone: 1, resourceVersion: '31' });
  });

  it('relists on an HTTP 410 and reconnects with backoff after failures', async () => {
    const { lw, calls, steps } = recorded([
      { list: { metadata: { resourceVersion: '1' }, items: [] } },
      { watch: [], end: { status: 500 } },
      { watch: [{ type: 'ADDED', object: obj('a', '2') }], end: { status: 410 } },
      { list: { metadata: { resourceVersion: '9' }, items: [obj('a', '2'), obj('z', '8')] } },
      { watch: [], end: 'hang' },
    ]);
    const errors: string[] = [];
    const inf = new Informer(lw, () => {}, { backoffInitialMs: 1, onError: (e) => errors.push(e.message) });
    await inf.start();
    await waitFor('all steps consumed', () => steps.length === 0, { timeoutMs: 2000 });
    await inf.stop();
    expect(calls).toEqual(['list', 'watch@1', 'watch@1', 'list', 'watch@9']);
    expect(errors).toEqual(['HTTP 500']);
    expect(
      inf
        .list()
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['a', 'z']);
  });

  it('keeps an upserted newer object over an older watch event', async () => {
    const { lw, steps } = recorded([
      { list: { metadata: { resourceVersion: '1' }, items: [obj('a', '1')] } },
      { watch: [], end: 'hang' },
    ]);
    const inf = new Informer(lw, () => {});
    await inf.start();
    inf.upsert(obj('a', '20'));
    inf.upsert(obj('a', '19'));
    expect(inf.get('ns/a')?.metadata.resourceVersion).toBe('20');
    await waitFor('watching', () => steps.length === 0);
    await inf.stop();
  });
});
