import { describe, expect, it } from 'vitest';
import { isUsable, redactSecrets, SiteHealth } from './site-health.ts';

const ok = { ok: true } as const;
const fail = (error = 'timeout after 800 ms') => ({ ok: false, error }) as const;

describe('SiteHealth', () => {
  it('is usable before the first probe and healthy after the first answer', () => {
    const h = new SiteHealth({ failureThreshold: 3, failbackAfterMs: 30_000 }, 0);
    expect(h.state).toBe('unknown');
    expect(isUsable(h.state)).toBe(true);
    expect(h.record(ok, 1000, 5)).toMatchObject({ from: 'unknown', to: 'healthy' });
  });

  it('turns unreachable on exactly the Nth consecutive failure, and a success resets the count', () => {
    const h = new SiteHealth({ failureThreshold: 3, failbackAfterMs: 30_000 }, 0);
    h.record(ok, 0, 1);
    expect(h.record(fail(), 1000, 800)).toBeUndefined();
    expect(h.record(fail(), 2000, 800)).toBeUndefined();
    expect(h.record(ok, 3000, 2)).toBeUndefined();
    expect(h.record(fail(), 4000, 800)).toBeUndefined();
    expect(h.record(fail(), 5000, 800)).toBeUndefined();
    const t = h.record(fail('connect ECONNREFUSED'), 6000, 800);
    expect(t).toMatchObject({ from: 'healthy', to: 'unreachable', at: 6000 });
    expect(t?.reason).toBe('3 consecutive probes failed: connect ECONNREFUSED');
    expect(isUsable(h.state)).toBe(false);
  });

  it('gets its share back only after answering for the whole failback period', () => {
    const h = new SiteHealth({ failureThreshold: 1, failbackAfterMs: 10_000 }, 0);
    h.record(ok, 0, 1);
    h.record(fail(), 1000, 800);
    expect(h.record(ok, 2000, 3)).toMatchObject({ to: 'recovering' });
    expect(h.failbackAt()).toBe(12_000);
    expect(isUsable(h.state)).toBe(false);
    expect(h.record(ok, 11_999, 3)).toBeUndefined();
    expect(h.record(ok, 12_000, 3)).toMatchObject({ from: 'recovering', to: 'healthy' });
    expect(isUsable(h.state)).toBe(true);
  });

  it('goes back to unreachable on one failure during the failback period (no flapping)', () => {
    const h = new SiteHealth({ failureThreshold: 3, failbackAfterMs: 10_000 }, 0);
    for (let t = 0; t < 3; t++) h.record(fail(), t * 1000, 800);
    expect(h.state).toBe('unreachable');
    h.record(ok, 4000, 2);
    expect(h.record(fail(), 9000, 800)).toMatchObject({ from: 'recovering', to: 'unreachable' });
    // The period restarts from the next answer.
    h.record(ok, 10_000, 2);
    expect(h.record(ok, 19_999, 2)).toBeUndefined();
    expect(h.record(ok, 20_000, 2)).toMatchObject({ to: 'healthy' });
  });

  it('with failbackAfterMs 0 a returning site is healthy at its first answer', () => {
    const h = new SiteHealth({ failureThreshold: 1, failbackAfterMs: 0 }, 0);
    h.record(fail(), 0, 1);
    expect(h.record(ok, 1000, 1)).toMatchObject({ from: 'unreachable', to: 'healthy' });
  });
});

describe('redactSecrets', () => {
  it('removes bearer tokens, token fields, JWTs and the known secrets', () => {
    const jwt = 'eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl';
    const text = `401 for Authorization: Bearer s3cr3t-value token: abcdefgh ${jwt} and my-static-token-123`;
    const out = redactSecrets(text, ['my-static-token-123']);
    expect(out).not.toMatch(/s3cr3t|abcdefgh|eyJ|my-static-token/);
    expect(out).toContain('Bearer <redacted>');
  });
});
