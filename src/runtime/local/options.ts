/**
 * Options of the local driver, their defaults, and validation of the
 * instance specs it accepts.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { cpuCount } from '../../util/cpus.ts';
import type { InstanceSpec } from '../driver.ts';
import { DEFAULT_BACKOFF, type BackoffOptions } from './backoff.ts';
import type { InstanceRecords } from './records.ts';
import type { SandboxOptions } from './sandbox/sandbox.ts';

export interface LocalDriverOptions {
  /** Directory for per-instance state and logs; must survive control-plane restarts. */
  stateDir: string;
  /** Site this driver runs; instance records are scoped by it. */
  site: string;
  records: InstanceRecords;
  /**
   * Use network namespaces and cgroups. Defaults to auto: on when running as
   * root. `false` forces plain processes on 127.0.0.1.
   */
  privileged?: boolean;
  /** @default "bulwark0" */
  bridge?: string;
  /** @default "10.213.0.0/16" */
  subnet?: string;
  /** Parent cgroup under each controller; instances live in `<parent>/<scope>/<id>` (scope: see CompiledOptions). @default "bulwark" */
  cgroupParent?: string;
  /** Restart backoff. @default { initialMs: 500, maxMs: 30000, resetAfterMs: 60000 } */
  backoff?: Partial<BackoffOptions>;
  /** How often shims' files and pids are checked for exits. @default 200 */
  pollIntervalMs?: number;
  /** Rotate a log file at this size. @default 10 MiB */
  logMaxBytes?: number;
  /** Log files kept per stream, current included. @default 3 */
  logFiles?: number;
  /** How long `ensure` waits for the shim to report the child's pid. @default 5000 */
  launchWaitMs?: number;
  /** Host environment variables passed through to instances (the rest of the host env is not leaked). @default PATH, HOME, LANG, LC_ALL, TZ, TMPDIR */
  inheritEnv?: string[];
  /**
   * CPUs the instances run on (each started under `taskset`), e.g. the cores
   * the gateway and the control plane do not use. @default unset: wherever
   * the scheduler puts them
   */
  cpus?: readonly number[];
  /**
   * The instance sandbox (sandbox/sandbox.ts): bubblewrap with an unprivileged uid, its own
   * mount/PID/IPC/UTS namespaces, no capabilities and a seccomp filter; as root also
   * isolated bridge ports. `true`/`false` or options. @default auto: on when bwrap works here
   */
  sandbox?: boolean | SandboxOptions;
}

export type CompiledOptions = Required<
  Omit<LocalDriverOptions, 'privileged' | 'backoff' | 'cpus' | 'sandbox'>
> & {
  privileged: boolean | undefined;
  sandbox: SandboxOptions;
  cpus: readonly number[] | undefined;
  backoff: BackoffOptions;
  /**
   * Six hex digits derived from the state directory: part of netns names and cgroup
   * paths, so two control planes on one host never touch each other's instances.
   */
  scope: string;
};

export function compileOptions(o: LocalDriverOptions): CompiledOptions {
  if (!o.stateDir)
    throw new Error('LocalDriver option stateDir is required (a directory that survives restarts)');
  if (!o.site) throw new Error('LocalDriver option site is required');
  if (o.cpus !== undefined) {
    const have = cpuCount();
    const bad = o.cpus.filter((c) => !Number.isInteger(c) || c < 0 || c >= have);
    if (o.cpus.length === 0 || bad.length > 0 || new Set(o.cpus).size !== o.cpus.length)
      throw new Error(
        `LocalDriver option cpus [${o.cpus.join(',')}]: give distinct CPU numbers of this machine (0-${have - 1}), at least one`,
      );
  }
  const scope = createHash('sha256').update(path.resolve(o.stateDir)).digest('hex').slice(0, 6);
  return {
    scope,
    stateDir: o.stateDir,
    site: o.site,
    records: o.records,
    privileged: o.privileged,
    bridge: o.bridge ?? 'bulwark0',
    subnet: o.subnet ?? '10.213.0.0/16',
    cgroupParent: o.cgroupParent ?? 'bulwark',
    backoff: { ...DEFAULT_BACKOFF, ...o.backoff },
    pollIntervalMs: o.pollIntervalMs ?? 200,
    logMaxBytes: o.logMaxBytes ?? 10 * 1024 * 1024,
    logFiles: o.logFiles ?? 3,
    launchWaitMs: o.launchWaitMs ?? 5000,
    inheritEnv: o.inheritEnv ?? ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR'],
    cpus: o.cpus,
    sandbox: {
      ...(typeof o.sandbox === 'boolean' ? { enabled: o.sandbox } : o.sandbox),
      // The operator's switch for a host where the sandbox gets in the way (and for same-run
      // comparisons): BULWARK_SANDBOX=off runs plain processes whatever the caller asked.
      ...(process.env.BULWARK_SANDBOX === 'off' ? { enabled: false } : {}),
    },
  };
}

const ID_RE = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;
const PORT_NAME_RE = /^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/;

/** Throws an error naming the bad field and the fix. */
export function validateSpec(spec: InstanceSpec, site: string): void {
  const bad = (field: string, fix: string): never => {
    throw new Error(`invalid instance spec '${spec.id}': ${field} ${fix}`);
  };
  if (typeof spec.id !== 'string' || !ID_RE.test(spec.id)) {
    bad('id', 'must be 1-63 lowercase letters, digits, "." or "-", starting and ending alphanumeric');
  }
  if (spec.site !== site) bad('site', `is '${spec.site}' but this driver runs site '${site}'`);
  if (
    !Array.isArray(spec.command) ||
    spec.command.length === 0 ||
    spec.command.some((a) => typeof a !== 'string')
  ) {
    bad('command', 'must be a non-empty argv array of strings (the local runtime runs commands, not images)');
  }
  const names = new Set<string>();
  for (const p of spec.ports ?? []) {
    if (!PORT_NAME_RE.test(p.name))
      bad(`ports[${p.name}].name`, 'must be a lowercase DNS label of at most 15 chars');
    if (names.has(p.name)) bad(`ports[${p.name}]`, 'is declared twice');
    names.add(p.name);
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535)
      bad(`ports[${p.name}].port`, 'must be 1..65535');
  }
  if (spec.cpu !== undefined && !(spec.cpu > 0)) bad('cpu', 'must be a positive number of cores, e.g. 0.5');
  if (
    spec.memoryBytes !== undefined &&
    !(Number.isInteger(spec.memoryBytes) && spec.memoryBytes >= 4 * 1024 * 1024)
  ) {
    bad('memoryBytes', 'must be an integer of at least 4 MiB');
  }
  if (!['Always', 'OnFailure', 'Never'].includes(spec.restartPolicy)) {
    bad('restartPolicy', 'must be Always, OnFailure or Never');
  }
  if (spec.terminationGracePeriodMs !== undefined && !(spec.terminationGracePeriodMs >= 0)) {
    bad('terminationGracePeriodMs', 'must be >= 0');
  }
}
