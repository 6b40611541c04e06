/**
 * The signal feed of a local site: every source in src/isolation/sources,
 * composed by a SignalHub over the site's live (not quarantined) instances.
 * Probes follow each app's own readiness probe (same path and port), only
 * faster, so "healthy" means the same thing to the runtime and to isolation.
 */
import type { DataPlane } from '../../dataplane/dataplane.ts';
import type { InstanceStatus, RuntimeDriver } from '../../runtime/driver.ts';
import { SignalHub, defaultSources } from '../sources/hub.ts';
import type { ProbeTarget } from '../sources/probes.ts';
import type { SignalFeed } from './isolation-controller.ts';

export interface SiteFeedOptions {
  site: string;
  driver: RuntimeDriver;
  dataplane: DataPlane;
  /** The probe of an instance (normally its app's readiness probe); undefined = not probed. */
  probeTarget: (inst: InstanceStatus) => ProbeTarget | undefined;
  onError?: (source: string, err: unknown) => void;
}

export function siteSignalFeed(o: SiteFeedOptions): SignalFeed & { hub: SignalHub } {
  const hub = new SignalHub({
    instances: () => o.driver.list().filter((i) => i.site === o.site && i.phase !== 'quarantined'),
    sources: defaultSources({
      dataPlane: o.dataplane,
      driver: o.driver,
      probeTarget: o.probeTarget,
      ...(o.onError ? { onError: o.onError } : {}),
    }),
  });
  return {
    hub,
    start: (sink) => hub.start(sink),
    stop: () => hub.stop(),
  };
}
