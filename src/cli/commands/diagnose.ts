/**
 * diagnose / profile / topology: observability from the command line.
 *   bulwark diagnose PROJECT/APP [--window 60s]     which layer is at fault, on which instance, and why
 *   bulwark profile INSTANCE [--duration 10] [--output DIR]   CPU profile + heap stats, no restart
 *   bulwark topology [-p PROJECT] [--window 60s]    edges with rate, errors, latency, connections
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Diagnosis } from '../../observability/diagnose/types.ts';
import type { ProfileRecord } from '../../observability/profile.ts';
import type { Topology } from '../../observability/topology/types.ts';
import type { ApiClient } from '../client.ts';
import { CliError, EXIT } from '../exit-codes.ts';
import { render, table, type OutputFormat } from '../output.ts';
import type { Io } from './resources.ts';

const WINDOW = /^\d+(s|m|h)?$/;

function checkWindow(w: string | undefined): string | undefined {
  if (w !== undefined && !WINDOW.test(w)) {
    throw new CliError(`--window ${w}: use a duration like 60s or 5m (1s..60m)`, EXIT.usage);
  }
  return w;
}

const num = (v: number | null | undefined, digits = 1): string =>
  v === null || v === undefined ? '-' : v.toFixed(digits);

export async function cmdDiagnose(
  api: ApiClient,
  io: Io,
  fmt: OutputFormat,
  ref: { project: string; name: string },
  window: string | undefined,
): Promise<Diagnosis> {
  const qs = checkWindow(window) ? `?window=${encodeURIComponent(window!)}` : '';
  const d = await api.request<Diagnosis>(
    'GET',
    `/api/v1/projects/${encodeURIComponent(ref.project)}/apps/${encodeURIComponent(ref.name)}/diagnosis${qs}`,
  );
  io.out(
    render(fmt, d, () => {
      const lines = [
        `App:       ${d.app}   window ${d.windowSeconds}s`,
        `Verdict:   ${d.verdict.toUpperCase()}${d.instance ? `   instance ${d.instance}` : ''}`,
        `Summary:   ${d.summary}`,
      ];
      if (!d.sources.l4)
        lines.push(`Note:      no L4 evidence (${d.sources.l4Reason ?? 'eBPF agent not running'})`);
      if (d.evidence.length > 0) {
        lines.push('Evidence:');
        lines.push(
          table(
            ['  LAYER', 'KIND', 'INSTANCE', 'VALUE', 'THRESHOLD', 'DETAIL'],
            d.evidence.map((e) => [
              `  ${e.layer}`,
              e.kind,
              e.instance,
              num(e.value, 3),
              num(e.threshold, 3),
              e.detail,
            ]),
          ),
        );
      }
      lines.push('Instances:');
      lines.push(
        table(
          [
            '  INSTANCE',
            'PHASE',
            'REQ',
            'ERR%',
            'P99-MS',
            'RETRANS',
            'RTT-MS',
            'CPU',
            'THROTTLED',
            'MEM-MIB',
            'RESTARTS',
          ],
          d.instances.map((i) => [
            `  ${i.instance}`,
            i.phase,
            i.requests,
            num(i.errorRate * 100),
            num(i.p99Ms),
            i.retransmits ?? '-',
            num(i.rttMs, 3),
            num(i.cpu, 2),
            i.throttled === null ? '-' : `${(i.throttled * 100).toFixed(0)}%`,
            i.memoryBytes === null ? '-' : (i.memoryBytes / 1048576).toFixed(0),
            i.restarts,
          ]),
        ),
      );
      if (d.downstream.length > 0) {
        lines.push('Calls to:');
        lines.push(
          table(
            ['  APP', 'REQ', 'ERR%', 'P99-MS'],
            d.downstream.map((x) => [`  ${x.app}`, x.requests, num(x.errorRate * 100), num(x.p99Ms)]),
          ),
        );
      }
      return lines.join('\n');
    }),
  );
  return d;
}

export async function cmdProfile(
  api: ApiClient,
  io: Io,
  fmt: OutputFormat,
  instance: string | undefined,
  durationSeconds: number,
  outDir: string | undefined,
): Promise<void> {
  if (!instance) {
    throw new CliError(
      'missing instance id; e.g. bulwark profile bank.ledger.api-0-abc123 (bulwark get instances)',
      EXIT.usage,
    );
  }
  const rec = await api.request<ProfileRecord>(
    'POST',
    `/api/v1/instances/${encodeURIComponent(instance)}/profile`,
    { json: { durationSeconds } },
    { timeoutMs: (durationSeconds + 60) * 1000 },
  );
  const dir = path.resolve(outDir ?? '.');
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const kind of ['cpuprofile', 'folded'] as const) {
    const body = await api.download(`/api/v1/profiles/${rec.id}/${kind}`);
    const file = path.join(dir, rec.files[kind]);
    await writeFile(file, body);
    written.push(file);
  }
  io.out(
    render(fmt, { ...rec, written }, () =>
      [
        `Profile:   ${rec.id}`,
        `Instance:  ${rec.instanceId}   pid ${rec.pid} (not restarted)   via ${rec.via}`,
        `Samples:   ${rec.samples} over ${(rec.durationMs / 1000).toFixed(1)} s`,
        `Heap:      ${rec.heap?.usedSize ? `${(rec.heap.usedSize / 1048576).toFixed(1)} MiB used of ${((rec.heap.totalSize ?? 0) / 1048576).toFixed(1)} MiB` : '-'}`,
        `Inspector: ${rec.inspectorClosed ? 'closed again' : 'WARNING: may still be open'}`,
        ...rec.warnings.map((w) => `Warning:   ${w}`),
        ...written.map((w) => `Wrote:     ${w}`),
      ].join('\n'),
    ),
  );
}

export async function cmdTopology(
  api: ApiClient,
  io: Io,
  fmt: OutputFormat,
  project: string | undefined,
  window: string | undefined,
): Promise<void> {
  const q = new URLSearchParams();
  if (project) q.set('project', project);
  if (checkWindow(window)) q.set('window', window!);
  const qs = q.toString();
  const t = await api.request<Topology>('GET', `/api/v1/topology${qs ? `?${qs}` : ''}`);
  io.out(
    render(fmt, t, () =>
      table(
        ['FROM', 'TO', 'LAYERS', 'HEALTH', 'RPS', 'ERR%', 'P50-MS', 'P99-MS', 'CONNS', 'RETRANS'],
        t.edges
          .filter((e) => e.from.startsWith('app:') || e.layers.includes('l4'))
          .map((e) => [
            e.from,
            e.to,
            e.layers.join('+'),
            e.health,
            num(e.metrics.rps),
            num(e.metrics.errorRate * 100),
            num(e.metrics.p50Ms),
            num(e.metrics.p99Ms),
            e.metrics.connections ?? '-',
            e.metrics.retransmits ?? '-',
          ]),
      ),
    ),
  );
}
