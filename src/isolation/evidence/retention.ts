/**
 * Bundles on disk: pack one for download, read its manifest, and keep the
 * bundle root within a count and size limit. Only directories holding a
 * `manifest.json` count as bundles, so pruning never touches anything else
 * that happens to live under the root.
 */
import { execFile } from 'node:child_process';
import { chmod, lstat, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { EvidenceBundle } from './types.ts';

export async function readManifest(dir: string): Promise<EvidenceBundle> {
  let text: string;
  try {
    text = await readFile(path.join(dir, 'manifest.json'), 'utf8');
  } catch {
    throw new Error(`${dir} is not an evidence bundle: it has no manifest.json`);
  }
  return JSON.parse(text) as EvidenceBundle;
}

/**
 * Pack the bundle directory into `<dir>.tar.gz` (entries under the bundle's
 * own directory name) and return that path. Written under a temporary name
 * and renamed, so a reader never sees a half-written archive.
 */
export async function packBundle(dir: string, timeoutMs = 30_000): Promise<string> {
  const abs = path.resolve(dir);
  await readManifest(abs);
  const out = `${abs}.tar.gz`;
  const tmp = `${out}.${process.pid}.tmp`;
  // Created 0600 before tar writes into it (tar keeps an existing file's mode): it is the bundle.
  await writeFile(tmp, '', { mode: 0o600 });
  await chmod(tmp, 0o600);
  await new Promise<void>((resolve, reject) => {
    execFile(
      'tar',
      ['-czf', tmp, '-C', path.dirname(abs), path.basename(abs)],
      { timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, _stdout, stderr) =>
        err ? reject(new Error(`tar failed for ${abs}: ${stderr.trim() || err.message}`)) : resolve(),
    );
  }).catch(async (err: unknown) => {
    await rm(tmp, { force: true });
    throw err;
  });
  await rename(tmp, out);
  return out;
}

async function sizeOf(p: string): Promise<number> {
  const st = await lstat(p).catch(() => undefined);
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  const entries = await readdir(p);
  let total = 0;
  for (const e of entries) total += await sizeOf(path.join(p, e));
  return total;
}

export interface RetentionLimits {
  /** Keep at most this many bundles. @default unlimited */
  maxBundles?: number;
  /** Keep at most this many bytes of bundles (directory plus its .tar.gz). @default unlimited */
  maxBytes?: number;
}

export interface PruneResult {
  /** Bundle directories removed (with their archives), oldest first. */
  removed: string[];
  kept: number;
  keptBytes: number;
}

/**
 * Remove the oldest bundles under `rootDir` until both limits hold. The
 * newest bundle is always kept, even when it alone exceeds `maxBytes`: the
 * latest incident's evidence is the one someone is about to look at.
 */
export async function pruneBundles(rootDir: string, limits: RetentionLimits): Promise<PruneResult> {
  for (const [k, v] of Object.entries(limits)) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) {
      throw new Error(`${k} must be a non-negative integer, got ${String(v)}`);
    }
  }
  const maxBundles = limits.maxBundles ?? Infinity;
  const maxBytes = limits.maxBytes ?? Infinity;
  const names = await readdir(rootDir).catch(() => [] as string[]);
  const bundles: { dir: string; createdMs: number; bytes: number }[] = [];
  for (const name of names) {
    const dir = path.join(rootDir, name);
    if (!(await stat(dir).catch(() => undefined))?.isDirectory()) continue;
    let createdMs: number;
    try {
      createdMs = Date.parse((await readManifest(dir)).createdAt);
    } catch {
      continue; // not a bundle, or one still being written (no manifest yet)
    }
    bundles.push({ dir, createdMs, bytes: (await sizeOf(dir)) + (await sizeOf(`${dir}.tar.gz`)) });
  }
  bundles.sort((a, b) => b.createdMs - a.createdMs);
  const removed: string[] = [];
  let keptBytes = 0;
  let kept = 0;
  let full = false;
  for (const b of bundles) {
    // Once one bundle does not fit, all older ones go too: retention is by age, not a packing puzzle.
    full ||= kept > 0 && (kept >= maxBundles || keptBytes + b.bytes > maxBytes);
    if (!full) {
      kept++;
      keptBytes += b.bytes;
    } else {
      await rm(`${b.dir}.tar.gz`, { force: true });
      await rm(b.dir, { recursive: true, force: true });
      removed.push(b.dir);
    }
  }
  return { removed: removed.reverse(), kept, keptBytes };
}
