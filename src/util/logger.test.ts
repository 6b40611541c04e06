import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from './time.ts';
import { createLogger } from './logger.ts';

/** The file once the asynchronous destination has written a whole line to it. */
const writtenTo = (file: string): Promise<string> =>
  waitFor(`a line in ${file}`, () => {
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    return text.endsWith('\n') ? text : undefined;
  });

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-logger-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Log through a real file destination and return what reached the file. */
async function logged(
  secrets: string[],
  write: (log: ReturnType<typeof createLogger>) => void,
): Promise<string> {
  const file = path.join(dir, `${Math.random().toString(36).slice(2)}.log`);
  const log = createLogger({ destination: file, secrets: () => secrets });
  write(log);
  return writtenTo(file);
}

describe('createLogger', () => {
  it('removes registered secrets from the message, nested fields, errors and child bindings of a line', async () => {
    const out = await logged(['pw-registered-1'], (log) => {
      log.child({ component: 'x' }).warn(
        {
          why: 'probe said pw-registered-1',
          nested: { deeper: ['pw-registered-1'] },
          err: new Error('connect failed with pw-registered-1'),
        },
        'start failed: pw-registered-1',
      );
    });
    expect(out).not.toContain('pw-registered-1');
    const line = JSON.parse(out) as Record<string, unknown>;
    expect(line.msg).toBe('start failed: <redacted>');
    expect(line.why).toBe('probe said <redacted>');
    expect(line.nested).toEqual({ deeper: ['<redacted>'] });
    expect((line.err as { message: string }).message).toBe('connect failed with <redacted>');
    expect(line.component).toBe('x');
  });

  it('censors credential fields by name and URL passwords, Bearer tokens whatever their source', async () => {
    const out = await logged([], (log) => {
      log.info({
        req: { headers: { authorization: 'Bearer abcdef123456', host: 'h' } },
        env: { ANY: 'value-of-env' },
        spec: { password: 'field-password' },
        store: 'postgres://u:url-password@db/bulwark',
        note: 'sent Authorization: Bearer tok-in-text',
      });
    });
    for (const s of ['abcdef123456', 'value-of-env', 'field-password', 'url-password', 'tok-in-text'])
      expect(out, s).not.toContain(s);
    const line = JSON.parse(out) as Record<string, unknown>;
    expect(line.req).toEqual({ headers: { authorization: '<redacted>', host: 'h' } });
    expect(line.store).toBe('postgres://u:<redacted>@db/bulwark');
  });

  it('creates the log file 0600 and tightens an existing one', async () => {
    const existing = path.join(dir, 'existing.log');
    fs.writeFileSync(existing, '', { mode: 0o644 });
    fs.chmodSync(existing, 0o644);
    const a = createLogger({ destination: existing });
    a.info({}, 'x');
    await writtenTo(existing);
    expect(fs.statSync(existing).mode & 0o777).toBe(0o600);
    const fresh = path.join(dir, 'sub', 'fresh.log');
    const b = createLogger({ destination: fresh });
    b.info({}, 'x');
    await writtenTo(fresh);
    expect(fs.statSync(fresh).mode & 0o777).toBe(0o600);
  });
});
