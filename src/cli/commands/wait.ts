/**
 * Progress for long operations: poll the apps until the controllers have
 * observed the new generation and every workload is ready, printing a line
 * whenever the picture changes (never a silent spinner).
 */
import type { AppResource } from '../../model/types.ts';
import type { ApiClient } from '../client.ts';
import { CliError, EXIT } from '../exit-codes.ts';
import type { Io } from './resources.ts';

export async function waitForApps(
  api: ApiClient,
  io: Io,
  refs: { project: string; name: string; generation: number }[],
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const last = new Map<string, string>();
  const pending = new Set(refs.map((r) => `${r.project}/${r.name}`));
  while (pending.size > 0) {
    for (const r of refs) {
      const key = `${r.project}/${r.name}`;
      if (!pending.has(key)) continue;
      const app = await api.request<AppResource>('GET', `/api/v1/projects/${r.project}/apps/${r.name}`);
      const observed = (app.status?.observedGeneration ?? 0) >= r.generation;
      const ready = app.status?.conditions?.find((c) => c.type === 'Ready');
      const degraded = app.status?.conditions?.find((c) => c.type === 'Degraded' && c.status === 'True');
      const line = `${key}: ${
        (app.status?.workloads ?? [])
          .map((w) => `${w.name} ${w.readyReplicas}/${w.replicas} ready`)
          .join(', ') || 'waiting for the controller'
      }${degraded ? ` (degraded: ${degraded.message})` : ''}`;
      if (last.get(key) !== line) {
        io.err(line);
        last.set(key, line);
      }
      if (observed && ready?.status === 'True') pending.delete(key);
    }
    if (pending.size === 0) break;
    if (Date.now() > deadline) {
      throw new CliError(
        `timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${[...pending].join(', ')} to be ready; see 'bulwark describe app <project/app>'`,
        EXIT.timeout,
      );
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
