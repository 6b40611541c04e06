/**
 * Container images for the harness's real node, made here from files on this machine (no
 * registry): a rootfs directory is packed as a one-layer docker-archive tarball
 * (manifest.json + config + layer.tar), which `ctr images import` loads into containerd.
 *
 * - the pause image (every pod's sandbox): busybox from Debian's busybox-static, a shell
 *   that waits for SIGTERM;
 * - the contract app image: the pinned Node binary with the shared libraries it links,
 *   and src/runtime/local/testdata/app.ts as its entrypoint, so pods run the same test
 *   program the local driver runs.
 *
 * Tarballs are cached by content hash next to the harness binaries.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface ImageSpec {
  /** e.g. bulwark.local/pause:1 */
  ref: string;
  /** Absolute path in the image -> file on this machine. */
  files: Record<string, string>;
  entrypoint: string[];
  env?: string[];
}

export const PAUSE_IMAGE = 'bulwark.local/pause:1';
export const APP_IMAGE = 'bulwark.local/contract-app:1';

const BUSYBOX = '/bin/busybox';

export function pauseImage(): ImageSpec {
  return {
    ref: PAUSE_IMAGE,
    files: { '/bin/busybox': BUSYBOX },
    // PID 1 gets no default signal handlers: the trap is what makes SIGTERM end it.
    entrypoint: [
      '/bin/busybox',
      'sh',
      '-c',
      "trap 'exit 0' TERM INT; while :; do /bin/busybox sleep 3600 & wait $!; done",
    ],
  };
}

/** The libraries `ldd` lists for `bin`, at the paths the dynamic loader looks for them. */
async function sharedLibraries(bin: string): Promise<string[]> {
  const { stdout } = await execFileP('ldd', [bin]);
  const libs: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

export async function appImage(nodeBin: string, appScript: string): Promise<ImageSpec> {
  const files: Record<string, string> = {
    '/node': await fs.realpath(nodeBin),
    '/app.ts': appScript,
    '/bin/busybox': BUSYBOX,
    '/bin/sh': BUSYBOX,
  };
  for (const lib of await sharedLibraries(files['/node']!)) files[lib] = await fs.realpath(lib);
  return { ref: APP_IMAGE, files, entrypoint: ['/node', '/app.ts'], env: ['PATH=/bin'] };
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  const fh = await fs.open(file);
  try {
    for await (const chunk of fh.createReadStream()) h.update(chunk as Buffer);
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

/** Build (or reuse from `cacheDir`) the docker-archive tarball of `spec`; returns its path. */
export async function imageTarball(spec: ImageSpec, cacheDir: string): Promise<string> {
  const key = createHash('sha256').update(JSON.stringify(spec));
  for (const src of Object.values(spec.files)) {
    const st = await fs.stat(src);
    key.update(`${src}\0${st.size}\0${st.mtimeMs}\0`);
  }
  const out = path.join(
    cacheDir,
    `${spec.ref.replace(/[^a-z0-9.-]/gi, '_')}-${key.digest('hex').slice(0, 16)}.tar`,
  );
  if (existsSync(out)) return out;
  await fs.mkdir(cacheDir, { recursive: true });
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'bulwark-image-'));
  try {
    const rootfs = path.join(work, 'rootfs');
    for (const [dst, src] of Object.entries(spec.files)) {
      const to = path.join(rootfs, dst);
      await fs.mkdir(path.dirname(to), { recursive: true });
      await fs.copyFile(src, to);
      await fs.chmod(to, (await fs.stat(src)).mode & 0o777);
    }
    for (const d of ['tmp', 'proc', 'sys', 'dev', 'etc'])
      await fs.mkdir(path.join(rootfs, d), { recursive: true });
    await fs.chmod(path.join(rootfs, 'tmp'), 0o1777);
    const archive = path.join(work, 'archive');
    await fs.mkdir(archive);
    const layer = path.join(archive, 'layer.tar');
    // Numeric owners, sorted, fixed mtime: the same files give the same layer digest.
    await execFileP('tar', [
      '--sort=name',
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '--mtime=@0',
      '-C',
      rootfs,
      '-cf',
      layer,
      '.',
    ]);
    const diffId = `sha256:${await sha256File(layer)}`;
    const config = {
      architecture: 'amd64',
      os: 'linux',
      config: { Entrypoint: spec.entrypoint, Env: spec.env ?? [], WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created_by: 'test/support/kube/image.ts' }],
    };
    const configText = JSON.stringify(config);
    const configName = `${createHash('sha256').update(configText).digest('hex')}.json`;
    await fs.writeFile(path.join(archive, configName), configText);
    await fs.writeFile(
      path.join(archive, 'manifest.json'),
      JSON.stringify([{ Config: configName, RepoTags: [spec.ref], Layers: ['layer.tar'] }]),
    );
    const tmp = `${out}.${process.pid}.tmp`;
    await execFileP('tar', ['-C', archive, '-cf', tmp, 'manifest.json', configName, 'layer.tar']);
    await fs.rename(tmp, out);
    return out;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}
