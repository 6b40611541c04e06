/**
 * Reading cgroup interface files: single numbers, flat-keyed files
 * ("key value" lines: cpu.stat, memory.events, cgroup.events) and pressure
 * stall information ("some avg10=... total=..."). Missing files read as
 * undefined: a cgroup can vanish between two reads.
 */
import { readFileSync } from 'node:fs';
import type { Pressure, PressureLine } from '../../driver.ts';

export function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** A number, or undefined for a missing file or anything else (v2 writes "max" for unlimited). */
export function readNum(file: string): number | undefined {
  const t = readText(file)?.trim();
  if (t === undefined || t === '') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

/** "key value" per line; values that are not numbers are left out. */
export function parseFlatKeyed(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^(\S+) (-?\d+)$/.exec(line.trim());
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

export function readFlatKeyed(file: string): Record<string, number> | undefined {
  const t = readText(file);
  return t === undefined ? undefined : parseFlatKeyed(t);
}

function parsePressureLine(rest: string): PressureLine | undefined {
  const kv: Record<string, number> = {};
  for (const part of rest.trim().split(/\s+/)) {
    const [k, v] = part.split('=');
    if (k && v !== undefined && v !== '' && Number.isFinite(Number(v))) kv[k] = Number(v);
  }
  const { avg10, avg60, avg300, total } = kv;
  if (avg10 === undefined || avg60 === undefined || avg300 === undefined || total === undefined)
    return undefined;
  return { avg10, avg60, avg300, totalUs: total };
}

/**
 * A pressure file (cpu.pressure, memory.pressure, io.pressure or /proc/pressure/*): "some" is
 * the share of time at least one task stalled on the resource, "full" all of them at once.
 */
export function parsePressure(text: string): Pressure | undefined {
  let some: PressureLine | undefined;
  let full: PressureLine | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('some ')) some = parsePressureLine(line.slice(5));
    else if (line.startsWith('full ')) full = parsePressureLine(line.slice(5));
  }
  if (!some) return undefined;
  return full ? { some, full } : { some };
}

export function readPressure(file: string): Pressure | undefined {
  const t = readText(file);
  return t === undefined ? undefined : parsePressure(t);
}

/** cgroup v2 "max" or a byte count. */
export function parseMax(text: string | undefined): number | 'max' | undefined {
  const t = text?.trim();
  if (t === 'max') return 'max';
  if (t === undefined || t === '') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

/** cpu.max: "<quota|max> <period>" (microseconds). */
export function parseCpuMax(
  text: string | undefined,
): { quotaUs: number | 'max'; periodUs: number } | undefined {
  const m = /^(max|\d+) (\d+)$/.exec(text?.trim() ?? '');
  if (!m) return undefined;
  return { quotaUs: m[1] === 'max' ? 'max' : Number(m[1]), periodUs: Number(m[2]) };
}
