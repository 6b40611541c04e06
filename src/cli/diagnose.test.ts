/**
 * `bulwark diagnose|profile|topology` input checks: bad input is refused with
 * a usage exit code and a message naming the flag and the fix, before any
 * request is sent (the server below is a closed port: reaching it would fail
 * with "unreachable" instead). The commands against a live server are
 * exercised by test/integration/observability.test.ts through the same API.
 */
import { describe, expect, it } from 'vitest';
import { EXIT } from './exit-codes.ts';
import { main } from './main.ts';

async function run(args: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const code = await main([...args, '--server', 'http://127.0.0.1:1', '--token', 'bwk_x'], {
    out: () => undefined,
    err: (s) => (err += s),
  });
  return { code, err };
}

describe('observability CLI input', () => {
  it('refuses a window that is not a duration, naming --window and an example', async () => {
    const r = await run(['diagnose', 'bank/ledger', '--window', 'abc']);
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/--window abc: use a duration like 60s or 5m/);
    expect((await run(['topology', '--window', '10x'])).code).toBe(EXIT.usage);
  });

  it('refuses a missing app reference and a missing instance id with an example', async () => {
    const d = await run(['diagnose']);
    expect(d.code).toBe(EXIT.usage);
    expect(d.err).toMatch(/PROJECT\/APP/);
    const p = await run(['profile']);
    expect(p.code).toBe(EXIT.usage);
    expect(p.err).toMatch(/missing instance id; e\.g\. bulwark profile/);
  });

  it('refuses a profile duration outside 1..120 seconds', async () => {
    const r = await run(['profile', 'bank.ledger.api-0-abc123', '--duration', '0']);
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/--duration 0: must be an integer from 1 to 120/);
  });

  it('gets as far as the network with valid input (unreachable, not usage)', async () => {
    expect((await run(['diagnose', 'bank/ledger', '--window', '30s'])).code).toBe(EXIT.unreachable);
  });
});
