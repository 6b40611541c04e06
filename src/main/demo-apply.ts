/**
 * How `npm start` applies the demo manifest without undoing an operator:
 * resources that do not exist yet are created; resources that exist are
 * left as they are, and when the manifest differs from them (a `scale`, an
 * edit) the difference is printed with the command that would reset it.
 * Re-applying the demo at every start silently reverted `scale ... 5` to 2.
 *
 * Precedence, as with `kubectl scale` and `kubectl apply`: `bulwark apply`
 * writes the whole spec it is given (replicas included), `bulwark scale`
 * writes the replicas of one workload; the later write wins. Only the demo's
 * start is hands-off.
 */
import { parseAllDocuments } from 'yaml';
import type { ApiClient } from '../cli/client.ts';
import { fmtValue, type ApplyResponse } from '../cli/commands/apply.ts';
import type { Io } from '../cli/commands/resources.ts';
import { waitForApps } from '../cli/commands/wait.ts';
import type { AppResource } from '../model/types.ts';

type Result = ApplyResponse['results'][number];

const keyOf = (r: { kind: string; project?: string | undefined; name: string }): string =>
  `${r.kind}/${r.project ? `${r.project}/` : ''}${r.name}`;

export interface DemoPlan {
  /** Resources the manifest has that the store does not: created. */
  create: Result[];
  /** Resources that exist but differ from the manifest: kept, with what the manifest would change. */
  kept: Result[];
}

/** Split a dry run of the demo manifest into what to create and what to leave alone. */
export function planDemo(dryRun: ApplyResponse): DemoPlan {
  return {
    create: dryRun.results.filter((r) => r.action === 'created'),
    kept: dryRun.results.filter((r) => r.action !== 'created' && r.changes.length > 0),
  };
}

/** The documents of `yaml` whose resource is in `keys` (kind/[project/]name), as YAML again. */
export function selectDocuments(yaml: string, keys: ReadonlySet<string>): string {
  const out: string[] = [];
  for (const doc of parseAllDocuments(yaml)) {
    const j = doc.toJS() as { kind?: string; metadata?: { name?: string; project?: string } } | null;
    if (!j?.kind || !j.metadata?.name) continue;
    if (keys.has(keyOf({ kind: j.kind, project: j.metadata.project, name: j.metadata.name })))
      out.push(doc.toString());
  }
  return out.join('---\n');
}

/** Apply the demo manifest the hands-off way (see the module comment), then wait for its apps. */
export async function applyDemo(
  api: ApiClient,
  io: Io,
  file: string,
  yaml: string,
  timeoutMs: number,
): Promise<void> {
  const dry = await api.request<ApplyResponse>('POST', '/api/v1/apply?dryRun=true', { yaml });
  const plan = planDemo(dry);
  if (plan.create.length > 0) {
    const subset = selectDocuments(yaml, new Set(plan.create.map(keyOf)));
    await api.request<ApplyResponse>('POST', '/api/v1/apply', { yaml: subset });
    io.err(`bulwark: created ${plan.create.map((r) => keyOf(r)).join(', ')} from ${file}`);
  }
  for (const r of plan.kept) {
    io.err(`bulwark: ${keyOf(r)} differs from ${file}; kept as it is (your changes stay):`);
    for (const c of r.changes)
      io.err(`  ${c.path}: now ${fmtValue(c.from)}, the manifest says ${fmtValue(c.to)}`);
  }
  if (plan.kept.length > 0) io.err(`  to reset the demo to the manifest: ./bin/bulwark apply -f ${file}`);
  const apps = dry.results.filter((r) => r.kind === 'App' && r.project);
  const refs = [];
  for (const a of apps) {
    const cur = await api.request<AppResource>('GET', `/api/v1/projects/${a.project}/apps/${a.name}`);
    refs.push({ project: a.project as string, name: a.name, generation: cur.metadata.generation ?? 0 });
  }
  io.err(`bulwark: waiting for every instance of ${refs.length} app(s) to be ready...`);
  await waitForApps(api, io, refs, timeoutMs);
}
