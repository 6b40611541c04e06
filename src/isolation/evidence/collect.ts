/**
 * Collect the evidence bundle of an instance, typically right after it was
 * quarantined: the scene of the fault as it is, before anything changes it.
 *
 * Parts run concurrently, each within its own time budget; a part that fails,
 * times out or does not apply is recorded in the manifest with the reason and
 * never stops the others, so a bundle is always produced, also for a process
 * that is stopped, hung or already gone. Host-side parts (/proc, cgroup, ss)
 * never talk to the process; only the CPU profile needs its cooperation.
 *
 * Layout of `<outDir>/<instance id>-<timestamp>/`:
 *   manifest.json            EvidenceBundle (what worked, why not, summaries)
 *   instance.json            the InstanceStatus snapshot
 *   logs.txt                 last log lines, stdout and stderr interleaved
 *   process/{status,stat,limits}, cgroup/<file>, sockets.txt
 *   requests.json, probes.json   outcome histories handed in by the caller
 *   profile/*.cpuprofile, *.folded, heap.json
 *
 * @example
 *   const bundle = await collectEvidence({ instance, logs: (id, q) => driver.logs(id, q), outDir });
 *   const tgz = await packBundle(bundle.dir);
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { InstanceStatus, LogQuery } from '../../runtime/driver.ts';
import { ProfileError, profileNodeProcess } from '../../profiling/inspector.ts';
import { processState } from '../../profiling/proc-net.ts';
import { readCgroup, readProcess, readSockets } from './readers.ts';
import { mkdirPrivate, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../../util/private-files.ts';
import { MIN_SECRET_LENGTH, REDACTED, redactText } from '../../util/secrets.ts';
import type { EvidenceBundle, EvidencePart, PartName, PartStatus } from './types.ts';

export interface CollectOptions {
  instance: InstanceStatus;
  /** The driver's log reader, e.g. `(id, q) => driver.logs(id, q)`. */
  logs: (id: string, query?: LogQuery) => Promise<string[]>;
  /** Data-plane request outcomes of this instance, newest last, stored as given. */
  requestHistory?: unknown[];
  /** Probe results of this instance, newest last, stored as given. */
  probeHistory?: unknown[];
  /** Root directory of bundles; the bundle gets its own directory under it. */
  outDir: string;
  /** Take a CPU profile and heap statistics of Node.js processes. @default true */
  profile?: boolean;
  /** @default 500 */
  logLines?: number;
  /** How long the CPU profile samples. @default 2000 */
  profileDurationMs?: number;
  /** Budget for the inspector to open and for each of its answers. @default 2000 */
  inspectorTimeoutMs?: number;
  /** Budget of each host-side part (logs, /proc, cgroup, sockets, histories). @default 3000 */
  partBudgetMs?: number;
  /** cgroup v1 mount root. @default "/sys/fs/cgroup" */
  cgroupRoot?: string;
  /**
   * Secret values of the instance (its secret env values, see `secretsOfEnv`): removed from
   * every file of the bundle, with URL passwords, Bearer tokens and JWTs (`redactText`).
   */
  secrets?: readonly string[];
}

interface PartOutcome {
  status?: PartStatus;
  reason?: string;
  files?: string[];
  data?: unknown;
}

class Skip extends Error {}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Run one part within `budgetMs`; whatever happens, return its record. */
async function runPart(budgetMs: number, fn: () => Promise<PartOutcome>): Promise<EvidencePart> {
  const t0 = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<EvidencePart>((resolve) => {
    timer = setTimeout(
      () =>
        resolve({
          status: 'timeout',
          reason: `did not finish within ${budgetMs} ms`,
          files: [],
          durationMs: budgetMs,
        }),
      budgetMs,
    );
  });
  const work = fn().then(
    (o): EvidencePart => ({
      status: o.status ?? 'ok',
      ...(o.reason ? { reason: o.reason } : {}),
      files: o.files ?? [],
      durationMs: Date.now() - t0,
      ...(o.data !== undefined ? { data: o.data } : {}),
    }),
    (err: unknown): EvidencePart => ({
      status: err instanceof Skip ? 'skipped' : 'failed',
      reason: errorText(err),
      files: [],
      durationMs: Date.now() - t0,
    }),
  );
  try {
    return await Promise.race([work, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;

export async function collectEvidence(o: CollectOptions): Promise<EvidenceBundle> {
  const inst = o.instance;
  if (!inst?.id) throw new Error('instance.id is required: pass the InstanceStatus of the instance');
  if (typeof o.outDir !== 'string' || o.outDir === '') throw new Error('outDir must be a directory path');
  const logLines = o.logLines ?? 500;
  const profileDurationMs = o.profileDurationMs ?? 2000;
  const inspectorTimeoutMs = o.inspectorTimeoutMs ?? 2000;
  const budgetMs = o.partBudgetMs ?? 3000;
  const cgroupRoot = o.cgroupRoot ?? '/sys/fs/cgroup';

  const started = new Date();
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const dir = path.resolve(o.outDir, `${inst.id}-${stamp}-${randomBytes(2).toString('hex')}`);
  const secrets = o.secrets ?? [];
  // 0700 and 0600 from creation: logs, /proc and profiles of an instance may hold its secrets.
  await mkdirPrivate(o.outDir);
  await mkdir(dir, { mode: PRIVATE_DIR_MODE });
  const write = async (rel: string, data: string): Promise<string> => {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true, mode: PRIVATE_DIR_MODE });
    await writeFile(path.join(dir, rel), redactText(data, secrets), { mode: PRIVATE_FILE_MODE });
    return rel;
  };
  /** A file written by another part (the profiler): its known secrets replaced in place. */
  const redactFile = async (rel: string): Promise<string> => {
    const file = path.join(dir, rel);
    const text = await readFile(file, 'utf8');
    // Only the known values: a profile is JSON whose function names are not credentials.
    let clean = text;
    for (const s of secrets) if (s.length >= MIN_SECRET_LENGTH) clean = clean.split(s).join(REDACTED);
    if (clean !== text) await writeFile(file, clean, { mode: PRIVATE_FILE_MODE });
    return rel;
  };
  const pid = inst.pid;
  const netns = inst.isolation.netns;
  const cgroup = inst.isolation.cgroup;
  const needPid = (): number => {
    if (pid === undefined) throw new Skip(`instance has no process (phase ${inst.phase})`);
    return pid;
  };

  const parts: Record<PartName, Promise<EvidencePart>> = {
    instance: runPart(budgetMs, async () => ({ files: [await write('instance.json', json(inst))] })),

    logs: runPart(budgetMs, async () => {
      const lines = await o.logs(inst.id, { tail: logLines, stream: 'both' });
      return {
        files: [await write('logs.txt', lines.map((l) => `${l}\n`).join(''))],
        data: { lines: lines.length },
      };
    }),

    process: runPart(budgetMs, async () => {
      const { raw, stats } = await readProcess(needPid());
      const files = await Promise.all([
        write('process/status', raw.status),
        write('process/stat', raw.stat),
        write('process/limits', raw.limits),
      ]);
      return { files, data: stats };
    }),

    cgroup: runPart(budgetMs, async () => {
      if (!cgroup) throw new Skip('instance has no cgroup (unprivileged mode or limits unavailable)');
      const { raw, stats } = await readCgroup(cgroupRoot, cgroup);
      const files = await Promise.all(Object.entries(raw).map(([f, text]) => write(`cgroup/${f}`, text)));
      return { files, data: stats };
    }),

    sockets: runPart(budgetMs, async () => {
      if (!netns) needPid();
      const { text, states } = await readSockets(pid, netns, budgetMs);
      return {
        files: [await write('sockets.txt', text)],
        data: { states, scope: netns ? `netns ${netns}` : `pid ${pid}` },
      };
    }),

    history: runPart(budgetMs, async () => {
      if (!o.requestHistory && !o.probeHistory) throw new Skip('no request or probe history was provided');
      const files: string[] = [];
      if (o.requestHistory) files.push(await write('requests.json', json(o.requestHistory)));
      if (o.probeHistory) files.push(await write('probes.json', json(o.probeHistory)));
      return {
        files,
        data: { requests: o.requestHistory?.length ?? 0, probes: o.probeHistory?.length ?? 0 },
      };
    }),

    // The backstop budget covers the inspector's own timeouts (open, each
    // answer, close) plus helper start-up; those normally end it first.
    profile: runPart(profileDurationMs + 6 * inspectorTimeoutMs + 3000, async () => {
      if (o.profile === false) throw new Skip('profiling not requested');
      const p = needPid();
      const state = await processState(p);
      if (state === 'T' || state === 't') {
        throw new Skip(
          `process ${p} is stopped (state ${state}): a stopped process cannot answer the inspector`,
        );
      }
      try {
        const r = await profileNodeProcess({
          pid: p,
          ...(netns ? { netns } : {}),
          durationMs: profileDurationMs,
          outDir: path.join(dir, 'profile'),
          logTail: () => o.logs(inst.id, { tail: 20, stream: 'stderr' }),
          openTimeoutMs: inspectorTimeoutMs,
          answerTimeoutMs: inspectorTimeoutMs,
        });
        const heapFile = await write('profile/heap.json', json(r.heap ?? null));
        const profileFiles = await Promise.all(
          [r.cpuProfilePath, r.foldedPath].map((f) => redactFile(path.relative(dir, f))),
        );
        return {
          files: [...profileFiles, heapFile],
          data: {
            samples: r.samples,
            durationMs: r.durationMs,
            heap: r.heap,
            inspectorClosed: r.inspectorClosed,
            audit: r.audit,
            warnings: r.warnings,
          },
        };
      } catch (err) {
        if (!(err instanceof ProfileError)) throw err;
        if (
          err.code === 'not-node' ||
          err.code === 'stopped' ||
          err.code === 'zombie' ||
          err.code === 'not-found'
        ) {
          throw new Skip(err.message);
        }
        const timeout = err.code === 'inspector-not-open' || err.code === 'inspector-timeout';
        return {
          status: timeout ? 'timeout' : 'failed',
          reason: err.message,
          data: { code: err.code, inspectorClosed: err.inspectorClosed ?? null },
        };
      }
    }),
  };

  const names = Object.keys(parts) as PartName[];
  const settled = await Promise.all(names.map((n) => parts[n]));
  const completed = new Date();
  const bundle: EvidenceBundle = {
    version: 1,
    dir,
    instanceId: inst.id,
    app: inst.app,
    project: inst.project,
    site: inst.site,
    ...(pid !== undefined ? { pid } : {}),
    ...(netns ? { netns } : {}),
    ...(cgroup ? { cgroup } : {}),
    phase: inst.phase,
    createdAt: started.toISOString(),
    completedAt: completed.toISOString(),
    durationMs: completed.getTime() - started.getTime(),
    parts: Object.fromEntries(names.map((n, i) => [n, settled[i]!])) as Record<PartName, EvidencePart>,
  };
  await write('manifest.json', json(bundle));
  return bundle;
}
