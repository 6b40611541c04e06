/**
 * Pure routing: which backends and servers a site's gateway should have.
 * An instance receives traffic only while the runtime reports it ready and
 * it is not being stopped; everything else is kept as a server in `maint`
 * so that taking it back into traffic is one runtime-API call, not a reload.
 */
import type { BackendSpec, SiteRouting } from '../../dataplane/dataplane.ts';
import type { AppResource, HttpProbe } from '../../model/types.ts';
import type { InstanceStatus } from '../../runtime/driver.ts';
import { DEFAULTS } from '../../model/defaults.ts';
import { serviceName } from './plan.ts';

export function computeRouting(
  apps: AppResource[],
  instances: InstanceStatus[],
  site: string,
  stopping: ReadonlySet<string>,
  /** Instances held out of traffic by another controller (fault isolation). */
  heldOut: ReadonlySet<string> = new Set(),
): SiteRouting {
  const backends: BackendSpec[] = [];
  const sorted = [...apps].sort((a, b) =>
    `${a.metadata.project}/${a.metadata.name}`.localeCompare(`${b.metadata.project}/${b.metadata.name}`),
  );
  for (const app of sorted) {
    const project = app.metadata.project ?? '';
    let aliased = false;
    for (const w of app.spec.workloads) {
      if (w.type === 'job') continue;
      const port = (w.ports ?? []).find((p) => (p.protocol ?? 'http') === 'http');
      if (!port) continue;
      const name = serviceName(project, app.metadata.name, w.name);
      const readiness = w.health?.readiness;
      const checkPath =
        readiness && 'http' in readiness && readiness.http.port === port.name
          ? (readiness as HttpProbe).http.path
          : undefined;
      const servers = instances
        .filter(
          (i) =>
            i.site === site &&
            i.project === project &&
            i.app === app.metadata.name &&
            i.workload === w.name &&
            i.ports[port.name] !== undefined &&
            i.phase !== 'succeeded' &&
            i.phase !== 'failed',
        )
        .sort((a, b) => a.id.localeCompare(b.id))
        .map((i) => ({
          name: i.id,
          address: i.ip,
          port: i.ports[port.name] as number,
          weight: 100,
          state:
            // An instance between runs (backoff) keeps its server, in maint: membership
            // changes only when instances come and go, never on every restart.
            i.ready && i.pid !== undefined && !stopping.has(i.id) && !heldOut.has(i.id)
              ? ('ready' as const)
              : ('maint' as const),
          ...(checkPath ? { checkPath } : {}),
          serverTimeoutMs: port.timeoutMs ?? DEFAULTS.portTimeoutMs,
        }));
      backends.push({
        name,
        aliases: aliased ? [] : [`${app.metadata.name}.${project}`],
        servers,
        ...(checkPath ? { checkPath } : {}),
        ...(readiness?.intervalMs ? { checkIntervalMs: readiness.intervalMs } : {}),
      });
      aliased = true;
    }
  }
  return { backends };
}
