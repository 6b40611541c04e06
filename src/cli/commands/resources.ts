/** get / describe / delete / scale / logs / status. */
import type { AppResource, Condition, Resource } from '../../model/types.ts';
import type { InstanceStatus } from '../../runtime/driver.ts';
import type { ApiClient } from '../client.ts';
import { CliError, EXIT } from '../exit-codes.ts';
import { age, render, table, type OutputFormat } from '../output.ts';
import { waitForApps } from './wait.ts';

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  /**
   * Present on a terminal: replace the one status line (progress) with this text;
   * undefined ends it, leaving the last text on screen. Absent: print lines instead.
   */
  status?: (s: string | undefined) => void;
}

const KINDS: Record<string, 'sites' | 'projects' | 'apps' | 'instances'> = {
  site: 'sites',
  sites: 'sites',
  project: 'projects',
  projects: 'projects',
  proj: 'projects',
  app: 'apps',
  apps: 'apps',
  instance: 'instances',
  instances: 'instances',
  inst: 'instances',
};

export function kindOf(word: string | undefined): 'sites' | 'projects' | 'apps' | 'instances' {
  const k = word ? KINDS[word] : undefined;
  if (!k) {
    throw new CliError(
      `${word ? `unknown resource type '${word}'` : 'missing resource type'}; use one of: sites, projects, apps, instances`,
      EXIT.usage,
    );
  }
  return k;
}

/** "bank/payments" or name + --project. */
export function appRef(
  ref: string | undefined,
  project: string | undefined,
): { project: string; name: string } {
  if (!ref) throw new CliError('missing app reference; use PROJECT/APP (e.g. bank/payments)', EXIT.usage);
  const parts = ref.split('/');
  if (parts.length === 2 && parts[0] && parts[1]) return { project: parts[0], name: parts[1] };
  if (parts.length === 1 && project) return { project, name: ref };
  throw new CliError(
    `'${ref}' is not an app reference; use PROJECT/APP (e.g. bank/payments) or -p PROJECT APP`,
    EXIT.usage,
  );
}

function cond(conds: Condition[] | undefined, type: string): string {
  const c = conds?.find((x) => x.type === type);
  return c ? c.status : 'Unknown';
}

function readyOf(app: AppResource): string {
  const ws = app.status?.workloads ?? [];
  if (ws.length === 0) return '-';
  return ws.map((w) => `${w.readyReplicas}/${w.replicas}`).join(',');
}

export async function cmdGet(
  api: ApiClient,
  io: Io,
  fmt: OutputFormat,
  what: string | undefined,
  name: string | undefined,
  project: string | undefined,
): Promise<void> {
  const kind = kindOf(what);
  if (kind === 'instances') {
    const res = await api.request<{ items: InstanceStatus[] }>('GET', '/api/v1/instances');
    const items = res.items.filter(
      (i) =>
        (!project || i.project === project) && (!name || i.id === name || `${i.project}/${i.app}` === name),
    );
    io.out(
      render(fmt, { items }, () =>
        table(
          ['INSTANCE', 'APP', 'PHASE', 'READY', 'PID', 'ADDRESS', 'RESTARTS', 'LAST EXIT', 'AGE'],
          items.map((i) => [
            i.id,
            `${i.project}/${i.app}`,
            i.phase,
            i.ready ? 'yes' : 'no',
            i.pid,
            Object.values(i.ports)[0] !== undefined ? `${i.ip}:${Object.values(i.ports)[0]}` : i.ip,
            i.restarts,
            i.lastExit?.reason,
            age(i.startedAt),
          ]),
        ),
      ),
    );
    return;
  }
  let data: Resource | { items: Resource[] };
  if (kind === 'apps') {
    if (name) {
      const ref = appRef(name, project);
      data = await api.request<Resource>('GET', `/api/v1/projects/${ref.project}/apps/${ref.name}`);
    } else {
      data = await api.request<{ items: Resource[] }>(
        'GET',
        `/api/v1/apps${project ? `?project=${encodeURIComponent(project)}` : ''}`,
      );
    }
  } else if (name) {
    data = await api.request<Resource>('GET', `/api/v1/${kind}/${encodeURIComponent(name)}`);
  } else {
    data = await api.request<{ items: Resource[] }>('GET', `/api/v1/${kind}`);
  }
  const items = 'items' in data ? data.items : [data];
  io.out(
    render(fmt, data, () => {
      if (kind === 'apps') {
        return table(
          ['PROJECT', 'APP', 'READY', 'READY?', 'DEGRADED', 'GEN', 'AGE'],
          (items as AppResource[]).map((a) => [
            a.metadata.project,
            a.metadata.name,
            readyOf(a),
            cond(a.status?.conditions, 'Ready'),
            cond(a.status?.conditions, 'Degraded'),
            a.metadata.generation,
            age(a.metadata.createdAt),
          ]),
        );
      }
      if (kind === 'projects') {
        return table(
          ['PROJECT', 'TENANT', 'AGE'],
          items.map((p) => [
            p.metadata.name,
            (p.spec as { tenant?: string }).tenant,
            age(p.metadata.createdAt),
          ]),
        );
      }
      return table(
        ['SITE', 'KIND', 'READY', 'GATEWAY', 'AGE'],
        items.map((s) => [
          s.metadata.name,
          (s.spec as { kind?: string }).kind,
          cond(s.status?.conditions, 'Ready'),
          (s.status as { gateway?: { url?: string } } | undefined)?.gateway?.url,
          age(s.metadata.createdAt),
        ]),
      );
    }),
  );
}

export async function cmdDescribe(
  api: ApiClient,
  io: Io,
  fmt: OutputFormat,
  what: string | undefined,
  name: string | undefined,
  project: string | undefined,
): Promise<void> {
  const kind = kindOf(what);
  if (kind !== 'apps') return cmdGet(api, io, fmt === 'table' ? 'yaml' : fmt, what, name, project);
  const ref = appRef(name, project);
  const app = await api.request<AppResource>('GET', `/api/v1/projects/${ref.project}/apps/${ref.name}`);
  if (fmt !== 'table') {
    io.out(render(fmt, app, () => ''));
    return;
  }
  const lines: string[] = [];
  lines.push(`App:          ${ref.project}/${ref.name}`);
  lines.push(`Generation:   ${app.metadata.generation} (observed ${app.status?.observedGeneration ?? '-'})`);
  lines.push(`Created:      ${app.metadata.createdAt}   Updated: ${app.metadata.updatedAt}`);
  lines.push(
    `Placement:    ${(app.spec.placement?.sites ?? [{ name: 'local (default)' }]).map((s) => s.name).join(', ')}`,
  );
  lines.push('Conditions:');
  lines.push(
    table(
      ['  TYPE', 'STATUS', 'REASON', 'SINCE', 'MESSAGE'],
      (app.status?.conditions ?? []).map((c) => [
        `  ${c.type}`,
        c.status,
        c.reason,
        age(c.lastTransitionTime),
        c.message,
      ]),
    ),
  );
  for (const w of app.spec.workloads) {
    const ws = app.status?.workloads?.find((x) => x.name === w.name);
    lines.push(
      `Workload ${w.name} (${w.type}): ${ws?.readyReplicas ?? 0}/${ws?.replicas ?? w.replicas ?? 1} ready`,
    );
    lines.push(`  run: ${w.run?.command.join(' ') ?? '-'}   image: ${w.image ?? '-'}`);
    lines.push(
      `  ports: ${(w.ports ?? []).map((p) => `${p.name}:${p.port}`).join(', ') || '-'}   resources: cpu ${w.resources?.cpu ?? '-'} memory ${w.resources?.memory ?? '-'}`,
    );
    if (ws && ws.instances.length > 0) {
      lines.push(
        table(
          ['  INSTANCE', 'PHASE', 'READY', 'PID', 'ADDRESS', 'RESTARTS', 'LAST EXIT'],
          ws.instances.map((i) => [
            `  ${i.id}`,
            i.phase,
            i.ready ? 'yes' : 'no',
            i.pid,
            i.address,
            i.restarts,
            i.lastExitReason,
          ]),
        ),
      );
    }
  }
  io.out(lines.join('\n'));
}

export async function cmdDelete(
  api: ApiClient,
  io: Io,
  what: string | undefined,
  name: string | undefined,
  project: string | undefined,
): Promise<void> {
  const kind = kindOf(what);
  if (kind === 'instances')
    throw new CliError('instances are managed by their app; scale the app instead', EXIT.usage);
  if (kind === 'apps') {
    const ref = appRef(name, project);
    await api.request('DELETE', `/api/v1/projects/${ref.project}/apps/${ref.name}`);
    io.out(`app ${ref.project}/${ref.name} deleted (instances leave traffic, then stop)`);
    return;
  }
  if (!name) throw new CliError(`missing ${kind.slice(0, -1)} name`, EXIT.usage);
  await api.request('DELETE', `/api/v1/${kind}/${encodeURIComponent(name)}`);
  io.out(`${kind.slice(0, -1)} ${name} deleted`);
}

export async function cmdScale(
  api: ApiClient,
  io: Io,
  ref: { project: string; name: string },
  replicas: number,
  workload: string | undefined,
  wait: boolean,
  timeoutMs: number,
): Promise<void> {
  const app = await api.request<AppResource>(
    'POST',
    `/api/v1/projects/${ref.project}/apps/${ref.name}/scale`,
    {
      json: { replicas, ...(workload ? { workload } : {}) },
    },
  );
  io.out(`app ${ref.project}/${ref.name} scaled to ${replicas} (generation ${app.metadata.generation})`);
  if (wait) await waitForApps(api, io, [{ ...ref, generation: app.metadata.generation ?? 0 }], timeoutMs);
}

export async function cmdLogs(
  api: ApiClient,
  io: Io,
  id: string | undefined,
  tail: number,
  stream: string,
): Promise<void> {
  if (!id) throw new CliError('missing instance id; list them with: bulwark get instances', EXIT.usage);
  const res = await api.request<{ lines: string[] }>(
    'GET',
    `/api/v1/instances/${encodeURIComponent(id)}/logs?tail=${tail}&stream=${encodeURIComponent(stream)}`,
  );
  if (res.lines.length > 0) io.out(res.lines.join('\n'));
}

export async function cmdStatus(api: ApiClient, io: Io, fmt: OutputFormat): Promise<void> {
  const st = await api.request<Record<string, unknown>>('GET', '/api/v1/status');
  io.out(render(fmt === 'table' ? 'yaml' : fmt, { server: api.server, ...st }, () => ''));
}
