/**
 * `bulwark server` takes its PostgreSQL URL from BULWARK_STORE_URL, so a
 * password need not be on the command line (every local user reads it with
 * ps). Against a real PostgreSQL server and a real control plane process.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlaneProcess } from '../support/control-plane-process.ts';
import { startPostgres, type PostgresServer } from '../support/postgres.ts';

describe('the store URL from the environment', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bw-store-url-env-'));
  let pg: PostgresServer | undefined;
  let cp: ControlPlaneProcess | undefined;
  afterAll(async () => {
    await cp?.stop();
    await pg?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('uses BULWARK_STORE_URL, and the URL is not in the command line', async () => {
    pg = await startPostgres();
    cp = await startControlPlane({
      dataDir: path.join(dir, 'bulwark'),
      unprivileged: true,
      env: { BULWARK_STORE_URL: pg.url },
    });
    const status = await cp.api<{ store: string }>('GET', '/api/v1/status');
    expect(status.status).toBe(200);
    expect(status.body.store).toMatch(/postgres/i);
    expect(status.body.store).toContain(String(pg.port));
    const cmdline = fs.readFileSync(`/proc/${cp.pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
    expect(cmdline).not.toContain('postgres://');
    // Written through to the server: the default Site is a row in PostgreSQL.
    const sites = await cp.api<{ items: { metadata: { name: string } }[] }>('GET', '/api/v1/sites');
    expect(sites.body.items.map((s) => s.metadata.name)).toContain('local');
  }, 120_000);
});
