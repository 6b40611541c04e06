/**
 * Progress for long operations: poll the apps until the controllers have
 * observed the new generation and every workload is ready. On a terminal
 * one status line is rewritten in place (with the elapsed time); otherwise
 * (logs, pipes) a line is printed per app whenever its picture changes.
 * Never a silent spinner, never a placeholder where the spec knows the answer.
 */
import type { AppResource } from '../../model/types.ts';
import type { ApiClient } from '../client.ts';
import { CliError, EXIT } from '../exit-codes.ts';
import type { Io } from './resources.ts';

export interface WaitRef {
  project: string;
  name: string;
  generation: number;
}

/** What one app looks like now: the words for it, and its ready/desired instance counts. */
export function describeProgress(
  app: AppResource,
  generation: number,
): { text: string; ready: number; desired: number; done: boolean } {
  const observed = (app.status?.observedGeneration ?? 0) >= generation;
  const statuses = new Map((app.status?.workloads ?? []).map((w) => [w.name, w]));
  let ready = 0;
  let desired = 0;
  const parts = app.spec.workloads.map((w) => {
    const st = observed ? statuses.get(w.name) : undefined;
    const want = st?.replicas ?? w.replicas ?? 1;
    const have = st?.readyReplicas ?? 0;
    ready += Math.min(have, want);
    desired += want;
    const phases = new Map<string, number>();
    for (const i of st?.instances ?? []) if (!i.ready) phases.set(i.phase, (phases.get(i.phase) ?? 0) + 1);
    const notReady = [...phases].map(([p, n]) => `${n} ${p}`).join(', ');
    return `${w.name} ${have}/${want} ready${notReady ? ` (${notReady})` : ''}`;
  });
  const degraded = app.status?.conditions?.find((c) => c.type === 'Degraded' && c.status === 'True');
  const readyCond = app.status?.conditions?.find((c) => c.type === 'Ready');
  const text = `${app.metadata.project}/${app.metadata.name}: ${parts.join(', ')}${
    observed ? '' : ` (controller has not picked up generation ${generation} yet)`
  }${degraded ? ` (degraded: ${degraded.message || degraded.reason || 'no reason given'})` : ''}`;
  return { text, ready, desired, done: observed && readyCond?.status === 'True' };
}

export async function waitForApps(api: ApiClient, io: Io, refs: WaitRef[], timeoutMs: number): Promise<void> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  const last = new Map<string, string>();
  const now = new Map<string, ReturnType<typeof describeProgress>>();
  const pending = new Set(refs.map((r) => `${r.project}/${r.name}`));
  const secs = (): string => `${Math.round((Date.now() - started) / 1000)} s`;
  try {
    while (pending.size > 0) {
      for (const r of refs) {
        const key = `${r.project}/${r.name}`;
        if (!pending.has(key)) continue;
        const app = await api.request<AppResource>('GET', `/api/v1/projects/${r.project}/apps/${r.name}`);
        const p = describeProgress(app, r.generation);
        now.set(key, p);
        if (!io.status && last.get(key) !== p.text) {
          io.err(p.text);
          last.set(key, p.text);
        }
        if (p.done) pending.delete(key);
      }
      if (io.status) {
        const all = [...now.values()];
        const first = all.find((p) => !p.done);
        const sum = (f: (p: (typeof all)[number]) => number): number => all.reduce((a, p) => a + f(p), 0);
        io.status(
          `${refs.length - pending.size}/${refs.length} apps ready, ${sum((p) => p.ready)}/${sum((p) => p.desired)} instances, ${secs()}${
            first ? ` · ${first.text}` : ''
          }`,
        );
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
  } finally {
    // Leave the last picture on the screen, then continue below it.
    io.status?.(undefined);
  }
  io.err(`ready: ${refs.map((r) => `${r.project}/${r.name}`).join(', ')} in ${secs()}`);
}
