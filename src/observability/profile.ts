/**
 * On-demand profiling of a running Node.js instance, reusing the evidence
 * bundles' inspector profiler (src/profiling): SIGUSR1 opens the inspector,
 * the helper talks to it from inside the instance's own network namespace
 * (or, for an instance in the host's, on a random loopback port it was
 * started for with --inspect-port=0; a fixed port is refused), takes a CPU
 * profile and heap statistics, and closes it again. The instance keeps its
 * PID and keeps serving. Each profile gets an id and a directory; every
 * attempt (also a refused or failed one) is appended to an audit log
 * (`audit.jsonl`, one JSON line per action) naming the caller: the id and
 * name of the API token that asked.
 */
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { RuntimeDriver } from '../runtime/driver.ts';
import { profileNodeProcess, ProfileError, type ProfileResult } from '../profiling/inspector.ts';

/** Who asked for a profile: the API token the request carried. */
export interface ProfileCaller {
  tokenId: string;
  tokenName: string;
}

export interface ProfileRequest {
  instanceId: string;
  /** 1..120. @default 10 */
  durationSeconds?: number;
  /** Recorded in the audit log and the profile record; required, a profile without a caller is not taken. */
  caller: ProfileCaller;
}

export interface ProfileRecord {
  id: string;
  instanceId: string;
  pid: number;
  startedAt: string;
  durationMs: number;
  samples: number;
  heap: ProfileResult['heap'];
  inspectorClosed: boolean;
  via: ProfileResult['audit']['via'];
  /** The port the inspector had while it was open (random on the host loopback). */
  inspectorPort: number;
  caller: ProfileCaller;
  files: { cpuprofile: string; folded: string };
  warnings: string[];
}

export class ProfileBusyError extends Error {}
export class ProfileTargetError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export const MAX_PROFILE_SECONDS = 120;

export class Profiler {
  readonly #dir: string;
  readonly #driver: Pick<RuntimeDriver, 'get' | 'logs'>;
  readonly #busy = new Set<string>();

  constructor(o: { dir: string; driver: Pick<RuntimeDriver, 'get' | 'logs'> }) {
    this.#dir = o.dir;
    this.#driver = o.driver;
  }

  async #audit(entry: Record<string, unknown>): Promise<void> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    await appendFile(
      path.join(this.#dir, 'audit.jsonl'),
      `${JSON.stringify({ at: new Date().toISOString(), ...entry })}\n`,
      { mode: 0o600 },
    );
  }

  async profile(req: ProfileRequest): Promise<ProfileRecord> {
    const durationSeconds = req.durationSeconds ?? 10;
    const caller = req.caller as ProfileCaller | undefined;
    if (!caller?.tokenId || !caller.tokenName)
      throw new ProfileTargetError(
        'invalid-option',
        'caller (tokenId, tokenName) is required: profiles are audited',
      );
    const inst = this.#driver.get(req.instanceId);
    if (!inst)
      throw new ProfileTargetError(
        'not-found',
        `no instance '${req.instanceId}' (list them: bulwark get instances)`,
      );
    if (inst.pid === undefined) {
      throw new ProfileTargetError(
        'not-running',
        `instance '${req.instanceId}' has no running process (phase ${inst.phase})`,
      );
    }
    if (this.#busy.has(inst.id))
      throw new ProfileBusyError(`a profile of '${inst.id}' is already running; wait for it`);
    this.#busy.add(inst.id);
    const id = `prof-${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}-${randomBytes(3).toString('hex')}`;
    const outDir = path.join(this.#dir, id);
    const base = {
      action: 'profile',
      profile: id,
      instance: inst.id,
      pid: inst.pid,
      durationSeconds,
      caller: { tokenId: caller.tokenId, tokenName: caller.tokenName },
    };
    try {
      await this.#audit({ ...base, event: 'started', netns: inst.isolation.netns ?? null });
      const r = await profileNodeProcess({
        pid: inst.pid,
        ...(inst.isolation.netns ? { netns: inst.isolation.netns } : {}),
        durationMs: durationSeconds * 1000,
        outDir,
        logTail: () => this.#driver.logs(inst.id, { tail: 50 }),
      });
      const rec: ProfileRecord = {
        id,
        instanceId: inst.id,
        pid: r.pid,
        startedAt: r.audit.openedAt,
        durationMs: r.durationMs,
        samples: r.samples,
        heap: r.heap,
        inspectorClosed: r.inspectorClosed,
        via: r.audit.via,
        inspectorPort: r.audit.inspectorPort,
        caller: base.caller,
        files: { cpuprofile: path.basename(r.cpuProfilePath), folded: path.basename(r.foldedPath) },
        warnings: r.warnings,
      };
      await writeRecord(outDir, rec);
      await this.#audit({
        ...base,
        event: 'finished',
        via: r.audit.via,
        inspectorPort: r.audit.inspectorPort,
        inspectorClosed: r.inspectorClosed,
        ...(r.audit.foreignClients ? { foreignClients: r.audit.foreignClients } : {}),
        samples: r.samples,
      });
      return rec;
    } catch (err) {
      await this.#audit({
        ...base,
        event: 'failed',
        error: err instanceof Error ? err.message : String(err),
        ...(err instanceof ProfileError
          ? { code: err.code, inspectorClosed: err.inspectorClosed ?? null }
          : {}),
      }).catch(() => undefined);
      if (err instanceof ProfileError) {
        throw new ProfileTargetError(err.code, err.message);
      }
      throw err;
    } finally {
      this.#busy.delete(inst.id);
    }
  }

  async get(id: string): Promise<ProfileRecord | undefined> {
    if (!/^prof-[0-9TZ]+-[0-9a-f]{6}$/.test(id)) return undefined;
    try {
      return JSON.parse(await readFile(path.join(this.#dir, id, 'profile.json'), 'utf8')) as ProfileRecord;
    } catch {
      return undefined;
    }
  }

  async list(): Promise<ProfileRecord[]> {
    const names = await readdir(this.#dir).catch(() => []);
    const out: ProfileRecord[] = [];
    for (const n of names
      .filter((x) => x.startsWith('prof-'))
      .sort()
      .reverse()) {
      const r = await this.get(n);
      if (r) out.push(r);
    }
    return out;
  }

  /** Absolute path of one of a profile's files, or undefined (unknown id or file). */
  async file(id: string, kind: 'cpuprofile' | 'folded'): Promise<string | undefined> {
    const rec = await this.get(id);
    if (!rec) return undefined;
    const p = path.join(this.#dir, id, rec.files[kind]);
    return (await stat(p).catch(() => undefined)) ? p : undefined;
  }
}

async function writeRecord(dir: string, rec: ProfileRecord): Promise<void> {
  await writeFile(path.join(dir, 'profile.json'), JSON.stringify(rec, null, 2), { mode: 0o600 });
}
