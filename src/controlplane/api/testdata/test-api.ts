/**
 * A real control-plane HTTP server for tests, in-process: a PGlite store in
 * a temporary directory, an admin token, the change feed, and (optionally)
 * a loopback port for a real HTTP client such as the CLI.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { main } from '../../../cli/main.ts';
import { openStore } from '../../../store/open.ts';
import type { Store } from '../../../store/store.ts';
import { freePort } from '../../../util/ports.ts';
import { createLogger } from '../../../util/logger.ts';
import { ensureInitialToken } from '../../auth.ts';
import { ChangeFeed } from '../../change-feed.ts';
import { buildServer } from '../../server.ts';
import type { ApiDeps } from '../deps.ts';

export interface TestApi {
  dir: string;
  store: Store;
  server: FastifyInstance;
  /** `http://127.0.0.1:<port>` when started with `listen`. */
  url: string;
  close(): Promise<void>;
}

export async function startTestApi(o: {
  token: string;
  /** The temporary directory's name prefix (names the test in leftovers). */
  prefix: string;
  /** Extra dependencies (e.g. `isolation`) given the store. */
  deps?: (store: Store) => Partial<ApiDeps>;
  listen?: boolean;
}): Promise<TestApi> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), o.prefix));
  const store = await openStore({ dataDir: path.join(dir, 'data') });
  await ensureInitialToken(store, o.token);
  const feed = new ChangeFeed(store, { pollIntervalMs: 50 });
  await feed.start();
  const server = await buildServer(
    { store, feed, sites: new Map(), kick: () => undefined, status: async () => ({}), ...o.deps?.(store) },
    { logger: createLogger({ level: 'silent' }) },
  );
  let url = '';
  if (o.listen) {
    const port = await freePort();
    await server.listen({ host: '127.0.0.1', port });
    url = `http://127.0.0.1:${port}`;
  }
  return {
    dir,
    store,
    server,
    url,
    close: async () => {
      await server.close();
      await feed.stop();
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Run the CLI in-process against `url` with `token`, capturing what it prints. */
export async function runCli(
  url: string,
  token: string,
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main([...args, '--server', url, '--token', token], {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
}
