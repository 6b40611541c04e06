import { describe, expect, it } from 'vitest';
import { ApplyProgress, KEEP_FINISHED } from './apply-progress.ts';

describe('ApplyProgress', () => {
  it('shows a running apply with its phase and counts, then keeps it finished with its outcome', () => {
    const p = new ApplyProgress();
    const run = p.start(false);
    expect(p.list().running).toEqual([expect.objectContaining({ id: run.id, phase: 'parsing', done: 0 })]);
    run.phase('validating', 3);
    run.phase('writing');
    run.item(1, 'created');
    run.item(2, 'unchanged');
    expect(p.list().running[0]).toMatchObject({
      phase: 'writing',
      total: 3,
      done: 2,
      created: 1,
      unchanged: 1,
    });
    run.item(3, 'updated');
    run.done();
    const { running, finished } = p.list();
    expect(running).toEqual([]);
    expect(finished[0]).toMatchObject({
      id: run.id,
      phase: 'done',
      total: 3,
      done: 3,
      created: 1,
      updated: 1,
    });
    expect(finished[0]?.durationMs).toBeGreaterThanOrEqual(0);
    expect(finished[0]).not.toHaveProperty('t0');
  });

  it('records why an apply failed, once, and keeps only the last finished ones', () => {
    const p = new ApplyProgress();
    const bad = p.start(true);
    bad.failed('3 reference error(s) in the manifests');
    bad.done();
    expect(p.list().finished).toEqual([
      expect.objectContaining({
        id: bad.id,
        dryRun: true,
        phase: 'failed',
        error: '3 reference error(s) in the manifests',
      }),
    ]);
    for (let i = 0; i < KEEP_FINISHED + 5; i++) p.start(false).done();
    expect(p.list().finished).toHaveLength(KEEP_FINISHED);
    expect(p.list().finished.some((r) => r.id === bad.id)).toBe(false);
  });
});
