/**
 * The DataPlane of a Kubernetes site. Bulwark runs no HAProxy there: inside
 * the cluster traffic goes through the Kubernetes Service of each workload
 * (kube-proxy / the CNI routes to the EndpointSlice's ready pods), and the
 * driver takes a pod out of it by relabeling (quarantine). So this data plane
 * carries nothing; it keeps what the reconciler asked for, so `GET /status`
 * shows which instances the site considers serving, and satisfies the seam
 * so the site reconciler stays the same loop for every kind of site.
 */
import type {
  DataPlane,
  RequestLog,
  ServerRuntimeStats,
  ServerState,
  SiteRouting,
  SyncResult,
} from '../../dataplane/dataplane.ts';

export interface ServiceDataPlaneStatus {
  kind: 'kubernetes-service';
  backends: { name: string; servers: number; ready: number }[];
  lastSyncAt?: string;
}

export class ServiceDataPlane implements DataPlane {
  readonly gatewayUrl: string;
  private routing: SiteRouting = { backends: [] };
  private lastSyncAt: string | undefined;
  private readonly overrides = new Map<string, ServerState>();

  constructor(site: string) {
    // Not an HTTP endpoint: names where the traffic goes (the cluster's Services).
    this.gatewayUrl = `kubernetes-service://${site}`;
  }

  sync(routing: SiteRouting): Promise<SyncResult> {
    this.routing = routing;
    this.lastSyncAt = new Date().toISOString();
    return Promise.resolve({ reloaded: false, runtimeCommands: 0 });
  }

  /** Recorded only: on Kubernetes the driver's quarantine is what removes a pod from the Service. */
  setServerState(backend: string, server: string, state: ServerState): Promise<void> {
    this.overrides.set(`${backend}/${server}`, state);
    return Promise.resolve();
  }

  setServerWeight(): Promise<void> {
    return Promise.resolve();
  }

  /** Traffic goes through the cluster's Service (kube-proxy), not through connections held here. */
  abortServerConnections(): Promise<number> {
    return Promise.resolve(0);
  }

  stats(): Promise<ServerRuntimeStats[]> {
    return Promise.resolve([]);
  }

  onRequest(_listener: (log: RequestLog) => void): () => void {
    return () => undefined;
  }

  status(): ServiceDataPlaneStatus {
    return {
      kind: 'kubernetes-service',
      backends: this.routing.backends.map((b) => ({
        name: b.name,
        servers: b.servers.length,
        ready: b.servers.filter((s) => (this.overrides.get(`${b.name}/${s.name}`) ?? s.state) === 'ready')
          .length,
      })),
      ...(this.lastSyncAt ? { lastSyncAt: this.lastSyncAt } : {}),
    };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
