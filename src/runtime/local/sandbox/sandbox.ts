/**
 * The instance sandbox: each run of a local instance under bubblewrap
 * (`bwrap`, a maintained tool used by Flatpak) with
 *  - its own unprivileged uid (leased per instance, per ordinal for stateful
 *    workloads) and its project's gid, switched to with `setpriv` before bwrap
 *    runs, so bwrap is unprivileged and its user namespace maps that uid to
 *    itself: on the host the instance really is that uid, never root;
 *  - its own mount namespace: a read-only view of the system directories, its
 *    working directory, its executable's directory and the directories of
 *    absolute file arguments; Bulwark's state (the driver's state directory and
 *    `hide`, e.g. the control plane's data directory with the store and the
 *    gateway's sockets) masked by empty tmpfs; `/etc/shadow` and `/etc/gshadow`
 *    masked; a private `/tmp`; and, writable, its data directory (0700) and its
 *    project's shared data directory (2770, the project's group);
 *  - its own PID, IPC, UTS and cgroup namespaces; no capabilities; no new
 *    privileges; no further user namespaces; the seccomp filter of seccomp.ts.
 * The network namespace is the one the driver gives it (nsenter runs first).
 */
import { execFile } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import type { Capability, InstanceSpec } from '../../driver.ts';
import { IdLeases } from './ids.ts';
import { isInside, visibleDirs } from './paths.ts';
import { firstDenied, type Want } from './reach.ts';
import { compileSeccompFilter } from './seccomp.ts';

export interface SandboxOptions {
  /**
   * Run instances in the sandbox. Auto (default): when bwrap works here; `true`
   * makes the driver refuse to start without it; `false` runs plain processes.
   */
  enabled?: boolean;
  /** Host paths no instance may see (masked by an empty tmpfs when inside a visible directory). */
  hide?: string[];
  /** Where uid/gid leases live (host-wide). @default "/run/bulwark/ids" */
  idLeaseDir?: string;
  /** First uid and gid handed to instances; the range holds 65536. @default 3000000 */
  idBase?: number;
}

/** The fd numbers the shim gives bwrap: the seccomp program and the info pipe. */
export const SECCOMP_FD = 3;
export const INFO_FD = 4;

/** What one run needs: the wrapper argv (up to and including `--`) and env additions. */
export interface SandboxRun {
  prefix: string[];
  seccompFile: string;
  uid?: number;
  gid?: number;
}

/** Directories every instance sees read-only (those that exist here). */
const SYSTEM_DIRS = ['/usr', '/etc', '/opt'];
const MERGED_USR = ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32'];
const MASKED_FILES = ['/etc/shadow', '/etc/shadow-', '/etc/gshadow', '/etc/gshadow-'];
const ID_COUNT = 65536;

const run = (file: string, args: string[]): Promise<void> =>
  new Promise((resolve, reject) =>
    execFile(file, args, { timeout: 10_000 }, (err, _o, stderr) =>
      err ? reject(new Error(stderr.trim() || err.message)) : resolve(),
    ),
  );

export class Sandbox {
  private readonly stateDir: string;
  private readonly hide: string[];
  private readonly seccompFile: string;
  /** Set when the driver runs as root: instances get uids of their own. */
  private readonly uids: IdLeases | undefined;
  private readonly gids: IdLeases | undefined;

  private constructor(stateDir: string, o: SandboxOptions, root: boolean) {
    this.stateDir = path.resolve(stateDir);
    this.hide = [this.stateDir, ...(o.hide ?? []).map((h) => path.resolve(h))];
    this.seccompFile = path.join(this.stateDir, 'seccomp.bpf');
    if (root) {
      const dir = o.idLeaseDir ?? '/run/bulwark/ids';
      const base = o.idBase ?? 3_000_000;
      this.uids = new IdLeases({ dir: path.join(dir, 'uids'), owner: this.stateDir, base, count: ID_COUNT });
      this.gids = new IdLeases({ dir: path.join(dir, 'gids'), owner: this.stateDir, base, count: ID_COUNT });
    }
  }

  /**
   * Check that bwrap (and, as root, setpriv) can run a sandbox here; returns the
   * sandbox or the reason it is unavailable, with the fix.
   */
  static async detect(
    stateDir: string,
    o: SandboxOptions,
  ): Promise<{ sandbox?: Sandbox; capability: Capability }> {
    if (o.enabled === false)
      return {
        capability: {
          available: false,
          reason:
            'sandbox disabled (option sandbox: false, or BULWARK_SANDBOX=off): instances run as plain processes',
        },
      };
    const root = process.getuid?.() === 0;
    let seccomp: Buffer;
    try {
      seccomp = compileSeccompFilter();
    } catch (err) {
      return { capability: { available: false, reason: (err as Error).message } };
    }
    const sb = new Sandbox(stateDir, o, root);
    mkdirSync(sb.stateDir, { recursive: true });
    writeFileSync(sb.seccompFile, seccomp, { mode: 0o600 });
    try {
      // A trial run of the very wrapper instances get (nobody's uid for the trial).
      const prefix = sb.wrapper({
        cwd: '/usr',
        exe: '/usr/bin/true',
        args: [],
        uid: root ? 65534 : undefined,
        gid: root ? 65534 : undefined,
        binds: [],
      });
      await run('/bin/sh', [
        '-c',
        `exec "$@" ${SECCOMP_FD}<"$0" ${INFO_FD}>/dev/null`,
        sb.seccompFile,
        ...prefix,
        '/usr/bin/true',
      ]);
    } catch (err) {
      return {
        capability: {
          available: false,
          reason: `bubblewrap cannot run a sandbox here (${(err as Error).message}): install bubblewrap (scripts/prereqs.sh) and allow unprivileged user namespaces (user.max_user_namespaces > 0)`,
        },
      };
    }
    return { sandbox: sb, capability: { available: true } };
  }

  /** Lease ids, make the data directories, and build the wrapper of one run. */
  prepare(spec: InstanceSpec, cwd: string, exe: string, args: string[]): SandboxRun {
    const uid = this.uids?.acquire(uidKey(spec));
    const gid = this.gids?.acquire(`project:${spec.project}`);
    if (uid !== undefined && gid !== undefined) this.checkReach(cwd, exe, args, uid, gid);
    const binds: string[] = [this.dataDirOf(spec)];
    this.ensureOwnedDir(this.dataDirOf(spec), 0o700, uid, gid);
    const projectDir = spec.env.BULWARK_PROJECT_DATA_DIR;
    if (projectDir && path.isAbsolute(projectDir)) {
      // Shared by the project's instances: group-writable, new files keep the project's group.
      this.ensureOwnedDir(projectDir, 0o2770, 0, gid);
      binds.push(projectDir);
    }
    const prefix = this.wrapper({ cwd, exe, args, uid, gid, binds, umask: projectDir ? '007' : undefined });
    return {
      prefix,
      seccompFile: this.seccompFile,
      ...(uid !== undefined ? { uid } : {}),
      ...(gid !== undefined ? { gid } : {}),
    };
  }

  /**
   * Throws, naming the path and the fix, when the instance's uid cannot reach its working
   * directory, executable or absolute file arguments: bound directories keep host modes.
   */
  private checkReach(cwd: string, exe: string, args: string[], uid: number, gid: number): void {
    const roots = visibleDirs(cwd, exe, args);
    const targets: [string, Want][] = [
      [cwd, 'search'],
      [exe, 'exec'],
      ...args
        .filter((a) => path.isAbsolute(a) && a !== cwd)
        .map((a): [string, Want] => [path.resolve(a), 'read']),
    ];
    for (const [t, want] of targets) {
      const root = roots.find((r) => isInside(t, r));
      if (!root || SYSTEM_DIRS.some((s) => isInside(root, s))) continue;
      const d = firstDenied(t, root, uid, gid, want);
      if (!d) continue;
      const verb = d.want === 'search' ? 'enter' : d.want === 'exec' ? 'execute' : 'read';
      throw new Error(
        `the sandboxed instance runs as uid ${uid} (gid ${gid}) and cannot ${verb} ${d.path} ` +
          `(mode ${d.mode}, owner ${d.owner}), needed for ${t}: make the app's files readable by others ` +
          `(chmod o+rX on the path), or turn the sandbox off (BULWARK_SANDBOX=off)`,
      );
    }
  }

  /** The instance's private data directory (BULWARK_INSTANCE_DATA_DIR), same path inside and out. */
  dataDirOf(spec: InstanceSpec): string {
    return path.join(this.stateDir, 'volumes', uidKey(spec).replace(/^[a-z]+:/, ''));
  }

  /**
   * After the instance is removed for good: a service's data directory and uid go; a
   * stateful ordinal keeps both, so its next instance finds its data as it left it.
   */
  release(spec: InstanceSpec): void {
    if (isStateful(spec)) return;
    rmSync(this.dataDirOf(spec), { recursive: true, force: true });
    this.uids?.release(uidKey(spec));
  }

  private ensureOwnedDir(dir: string, mode: number, uid: number | undefined, gid: number | undefined): void {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (uid !== undefined && gid !== undefined) {
      const st = statSync(dir);
      if (st.uid !== uid || st.gid !== gid) chownSync(dir, uid, gid);
    }
    chmodSync(dir, mode);
  }

  private wrapper(r: {
    cwd: string;
    exe: string;
    args: string[];
    uid: number | undefined;
    gid: number | undefined;
    binds: string[];
    umask?: string | undefined;
  }): string[] {
    const switchUid = r.uid !== undefined && r.gid !== undefined;
    const out = ['bwrap'];
    if (switchUid) {
      // bwrap runs as root (no user namespace: one mapping the instance's uid to root would
      // give it root's files) and keeps only what setpriv needs to become the instance's uid.
      out.push('--cap-drop', 'ALL', '--cap-add', 'CAP_SETUID', '--cap-add', 'CAP_SETGID');
      out.push('--cap-add', 'CAP_SETPCAP');
    } else {
      out.push('--unshare-user', '--disable-userns', '--cap-drop', 'ALL');
    }
    out.push(
      '--unshare-pid',
      '--unshare-ipc',
      '--unshare-uts',
      '--unshare-cgroup-try',
      // The shim is bwrap's parent and outlives the control plane; if the shim dies, the
      // driver kills the instance anyway (it would run unsupervised).
      '--die-with-parent',
      '--hostname',
      'instance',
    );
    for (const d of SYSTEM_DIRS) if (existsSync(d)) out.push('--ro-bind', d, d);
    for (const l of MERGED_USR) {
      const p = `/${l}`;
      if (!existsSync(p)) continue;
      out.push(...(isUsrSymlink(p) ? ['--symlink', `usr/${l}`, p] : ['--ro-bind', p, p]));
    }
    for (const f of MASKED_FILES) if (existsSync(f)) out.push('--ro-bind', '/dev/null', f);
    // A private /tmp and /dev/shm the instance's uid can write (bwrap's tmpfs is 0755 root otherwise).
    out.push(
      '--proc',
      '/proc',
      '--dev',
      '/dev',
      '--perms',
      '1777',
      '--tmpfs',
      '/tmp',
      '--perms',
      '1777',
      '--tmpfs',
      '/dev/shm',
    );
    const code = visibleDirs(r.cwd, r.exe, r.args).filter((d) => !SYSTEM_DIRS.some((s) => isInside(d, s)));
    // Where a path already exists inside: bound host directories, except below a tmpfs mask
    // (masks and /tmp start empty). Directories bwrap creates on the way to a mount point are
    // 0700 root, so the ones missing are made first, traversable (0711).
    const bound = [...SYSTEM_DIRS, ...code];
    const masks = ['/tmp'];
    const made = new Set<string>();
    const exists = (a: string): boolean =>
      masks.includes(a) ||
      made.has(a) ||
      (bound.some((v) => isInside(a, v)) && !masks.some((m) => isInside(a, m)));
    const parents = (dir: string): void => {
      const up: string[] = [];
      for (let a = path.dirname(dir); a !== '/' && !exists(a); a = path.dirname(a)) up.unshift(a);
      for (const a of up) {
        out.push('--perms', '0711', '--dir', a);
        made.add(a);
      }
    };
    for (const d of code) {
      parents(d);
      out.push('--ro-bind', d, d);
    }
    for (const h of this.hide) {
      // Masked where it would be visible, unless the app's own code lives inside it.
      if (existsSync(h) && code.some((d) => isInside(h, d)) && !code.some((d) => isInside(d, h))) {
        out.push('--perms', '0711', '--tmpfs', h);
        masks.push(h);
      }
    }
    for (const b of r.binds) {
      parents(b);
      out.push('--bind', b, b);
    }
    out.push('--chdir', r.cwd, '--seccomp', String(SECCOMP_FD), '--info-fd', String(INFO_FD), '--');
    if (switchUid) {
      out.push('setpriv', `--reuid=${r.uid}`, `--regid=${r.gid}`, '--clear-groups');
      out.push('--inh-caps=-all', '--bounding-set=-all', '--');
    }
    if (r.umask) out.push('/bin/sh', '-c', `umask ${r.umask} && exec "$@"`, 'bulwark-umask');
    return out;
  }
}

const isStateful = (spec: InstanceSpec): boolean => spec.workloadType === 'stateful';

/** Stateful ordinals own their uid and volume across instances; everything else per instance. */
function uidKey(spec: InstanceSpec): string {
  return isStateful(spec)
    ? `ordinal:${spec.project}.${spec.app}.${spec.workload}-${spec.ordinal}`
    : `instance:${spec.id}`;
}

/** `/bin` and friends: a symlink into /usr on merged-/usr systems, recreated as one inside. */
function isUsrSymlink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink() && path.resolve('/', readlinkSync(p)) === `/usr${p}`;
  } catch {
    return false;
  }
}
