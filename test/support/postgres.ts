/**
 * Start a throwaway PostgreSQL 15 server for integration tests: a fresh
 * initdb'd data directory in a temp dir, listening on a free loopback port,
 * trust auth, removed again by `stop()`. PostgreSQL refuses to run as root,
 * so as root the server runs as the `postgres` system user.
 */
import { spawn, execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from '../../src/util/ports.ts';
import { waitFor } from '../../src/util/time.ts';

const execFileP = promisify(execFile);

export const PG_BIN = '/usr/lib/postgresql/15/bin';

export interface PostgresServer {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  stop(): Promise<void>;
}

export interface StartPostgresOptions {
  /** How long to wait for the server to accept connections. @default 30000 */
  startTimeoutMs?: number;
}

/** Wrap argv so it runs as the postgres user when we are root. */
function asPostgresUser(argv: string[]): string[] {
  if (process.getuid?.() !== 0) return argv;
  // setpriv execs the target directly (no helper process in between), so the
  // pid we hold is the postmaster's and signals reach it.
  return ['setpriv', '--reuid=postgres', '--regid=postgres', '--init-groups', '--', ...argv];
}

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PostgresServer> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'bulwark-pg-'));
  const dataDir = path.join(root, 'data');
  const sockDir = path.join(root, 'sock');
  let child: ChildProcess | undefined;
  const cleanup = async (): Promise<void> => {
    if (child) await stopProcess(child);
    await fs.rm(root, { recursive: true, force: true });
  };
  try {
    await fs.mkdir(sockDir);
    if (process.getuid?.() === 0) {
      const { uid, gid } = await postgresIds();
      await fs.chown(root, uid, gid);
      await fs.chown(sockDir, uid, gid);
    }
    const [initCmd, ...initArgs] = asPostgresUser([
      path.join(PG_BIN, 'initdb'),
      '-D',
      dataDir,
      '-U',
      'postgres',
      '-A',
      'trust',
      '-E',
      'UTF8',
      '--no-sync',
      '--no-instructions',
    ]);
    await execFileP(initCmd!, initArgs, { timeout: 60_000 });

    const port = await freePort();
    const [cmd, ...args] = asPostgresUser([
      path.join(PG_BIN, 'postgres'),
      '-D',
      dataDir,
      '-p',
      String(port),
      '-k',
      sockDir,
      '-c',
      'listen_addresses=127.0.0.1',
      // Test data is disposable: skip durability work to keep the shared machine fast.
      '-c',
      'fsync=off',
      '-c',
      'full_page_writes=off',
      '-c',
      'max_connections=50',
    ]);
    let output = '';
    const proc = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    // If the test process dies without calling stop(), do not leave a server behind.
    const killOnExit = (): void => {
      proc.kill('SIGKILL');
    };
    process.once('exit', killOnExit);
    proc.once('exit', () => process.off('exit', killOnExit));
    const collect = (b: Buffer): void => {
      output = (output + b.toString()).slice(-4000);
    };
    proc.stdout?.on('data', collect);
    proc.stderr?.on('data', collect);
    let exited = false;
    proc.on('exit', () => {
      exited = true;
    });

    const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    await waitFor(
      `PostgreSQL on 127.0.0.1:${port} to accept connections`,
      async () => {
        if (exited) throw new Error(`postgres exited during start-up:\n${output}`);
        const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
        try {
          await c.connect();
          await c.query('SELECT 1');
          return true;
        } finally {
          await c.end().catch(() => undefined);
        }
      },
      { timeoutMs: opts.startTimeoutMs ?? 30_000, intervalMs: 100 },
    ).catch((err: unknown) => {
      if (exited) throw new Error(`postgres exited during start-up:\n${output}`, { cause: err });
      throw err;
    });

    let stopped: Promise<void> | undefined;
    return {
      url,
      port,
      stop: () => (stopped ??= cleanup()),
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const [{ stdout: uid }, { stdout: gid }] = await Promise.all([
    execFileP('id', ['-u', 'postgres']),
    execFileP('id', ['-g', 'postgres']),
  ]);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

/** Fast shutdown (SIGINT), escalating to SIGKILL after 10 s. */
async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGINT');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
