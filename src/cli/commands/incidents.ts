/** incidents / incident / evidence / quarantine: what fault isolation did, and the operator's follow-up. */
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { EvidenceBundle, PartName } from '../../isolation/evidence/types.ts';
import type { Incident } from '../../model/incidents.ts';
import type { ApiClient } from '../client.ts';
import { CliError, EXIT } from '../exit-codes.ts';
import { age, render, table, type OutputFormat } from '../output.ts';
import type { Io } from './resources.ts';

export interface IncidentFilter {
  project?: string;
  app?: string;
  state?: string;
  limit?: number;
}

const ms = (v: number | undefined): string | undefined =>
  v === undefined ? undefined : String(Math.round(v));

function missingId(what: string, example: string): CliError {
  return new CliError(`missing ${what}; e.g. ${example}`, EXIT.usage);
}

export async function cmdIncidents(
  api: ApiClient,
  io: Io,
  fmt: OutputFormat,
  f: IncidentFilter,
): Promise<void> {
  const q = new URLSearchParams();
  if (f.project) q.set('project', f.project);
  if (f.app) q.set('app', f.app);
  if (f.state) q.set('state', f.state);
  if (f.limit !== undefined) q.set('limit', String(f.limit));
  const qs = q.toString();
  const res = await api.request<{ items: Incident[] }>('GET', `/api/v1/incidents${qs ? `?${qs}` : ''}`);
  io.out(
    render(fmt, res, () =>
      res.items.length === 0
        ? 'No incidents.'
        : table(
            ['ID', 'APP', 'INSTANCE', 'SIGNATURE', 'STATE', 'ACTION', 'DETECTED', 'ISOLATE-MS', 'MTTR-MS'],
            res.items.map((i) => [
              i.id,
              `${i.project}/${i.app}`,
              i.instanceId,
              i.signature,
              i.state,
              i.action.kind,
              age(i.detectedAt),
              ms(i.durations.isolateMs),
              ms(i.durations.mttrMs),
            ]),
          ),
    ),
  );
}

/** Evidence manifest, or why there is none yet (a 404 is an answer here, not a failure). */
async function evidenceOf(api: ApiClient, id: string): Promise<EvidenceBundle | string> {
  try {
    return await api.request<EvidenceBundle>('GET', `/api/v1/incidents/${encodeURIComponent(id)}/evidence`);
  } catch (err) {
    if (err instanceof CliError && err.exitCode === EXIT.notFound) return 'not collected yet';
    throw err;
  }
}

/** "+1.234s" relative to the first timeline entry, so detection and isolation latency read at a glance. */
function offset(at: string, from: string): string {
  const d = (Date.parse(at) - Date.parse(from)) / 1000;
  return Number.isFinite(d) ? `+${d.toFixed(3)}s` : '';
}

export async function cmdIncident(
  api: ApiClient,
  io: Io,
  fmt: OutputFormat,
  id: string | undefined,
): Promise<void> {
  if (!id)
    throw missingId(
      'incident id',
      'bulwark incident inc-20260102-abc123 (list them with: bulwark incidents)',
    );
  const inc = await api.request<Incident>('GET', `/api/v1/incidents/${encodeURIComponent(id)}`);
  if (fmt !== 'table') {
    io.out(render(fmt, inc, () => ''));
    return;
  }
  const evidence = await evidenceOf(api, id);
  const d = inc.durations;
  const lines: string[] = [];
  lines.push(`Incident:     ${inc.id}`);
  lines.push(`App:          ${inc.project}/${inc.app}   workload ${inc.workload}   site ${inc.site}`);
  lines.push(
    `Instance:     ${inc.instanceId}${inc.replacementId ? `   replacement ${inc.replacementId}` : ''}`,
  );
  lines.push(`Signature:    ${inc.signature} (${inc.severity})`);
  lines.push(`Why:          ${inc.evidenceSummary}`);
  lines.push(`State:        ${inc.state}`);
  lines.push(`Action:       ${inc.action.kind}: ${inc.action.reason}`);
  lines.push(`Detected:     ${inc.detectedAt} (${age(inc.detectedAt)} ago)`);
  lines.push(
    `Durations:    detect ${ms(d.detectMs) ?? '-'} ms   isolate ${ms(d.isolateMs) ?? '-'} ms   ` +
      `replace ${ms(d.replaceMs) ?? '-'} ms   mttr ${ms(d.mttrMs) ?? '-'} ms`,
  );
  lines.push('Timeline:');
  const first = inc.timeline[0]?.at ?? inc.detectedAt;
  lines.push(
    table(
      ['  AT', 'OFFSET', 'EVENT', 'DETAIL'],
      inc.timeline.map((t) => [`  ${t.at}`, offset(t.at, first), t.event, t.detail]),
    ),
  );
  if (typeof evidence === 'string') {
    lines.push(`Evidence:     ${evidence}`);
  } else {
    lines.push(
      `Evidence:     ${evidence.dir} (collected in ${Math.round(evidence.durationMs)} ms; download: bulwark evidence ${inc.id})`,
    );
    lines.push(
      table(
        ['  PART', 'STATUS', 'FILES', 'MS', 'REASON'],
        (Object.entries(evidence.parts) as [PartName, EvidenceBundle['parts'][PartName]][]).map(
          ([name, p]) => [
            `  ${name}`,
            p.status,
            p.files.length > 0 ? p.files.join(',') : undefined,
            Math.round(p.durationMs),
            p.reason,
          ],
        ),
      ),
    );
  }
  io.out(lines.join('\n'));
}

export async function cmdEvidence(
  api: ApiClient,
  io: Io,
  id: string | undefined,
  outputFile: string | undefined,
): Promise<void> {
  if (!id) throw missingId('incident id', 'bulwark evidence inc-20260102-abc123 --output bundle.tar.gz');
  const file = path.resolve(outputFile ?? `${id}-evidence.tar.gz`);
  const body = await api.download(`/api/v1/incidents/${encodeURIComponent(id)}/evidence.tar.gz`);
  // Write then rename: an interrupted download never leaves a truncated archive under the final name.
  const tmp = `${file}.${process.pid}.part`;
  try {
    await writeFile(tmp, body);
    await rename(tmp, file);
  } catch (err) {
    throw new CliError(`cannot write ${file}: ${(err as Error).message}; choose another --output path`);
  }
  io.out(`wrote evidence of ${id} to ${file} (${body.length} bytes)`);
}

export async function cmdQuarantine(
  api: ApiClient,
  io: Io,
  fmt: OutputFormat,
  verb: string | undefined,
  instanceId: string | undefined,
): Promise<void> {
  if (verb !== 'release' && verb !== 'delete') {
    throw new CliError(
      `${verb ? `unknown quarantine action '${verb}'` : 'missing quarantine action'}; use: bulwark quarantine release|delete INSTANCE`,
      EXIT.usage,
    );
  }
  if (!instanceId) throw missingId('instance id', `bulwark quarantine ${verb} payments-api-0`);
  const inc = await api.request<Incident>(
    'POST',
    `/api/v1/instances/${encodeURIComponent(instanceId)}/quarantine/${verb}`,
  );
  io.out(
    render(fmt, inc, () =>
      verb === 'release'
        ? `instance ${instanceId} released back into traffic; incident ${inc.id} is ${inc.state}`
        : `instance ${instanceId} stopped and removed (evidence kept); incident ${inc.id} is ${inc.state}`,
    ),
  );
}
