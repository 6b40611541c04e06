/**
 * Topology: the live service graph from GET /api/v1/topology, refreshed by
 * the change stream's `topology` events (and a slow poll, in case the
 * stream does not carry them), filtered by project and site.
 */
import { useEffect, useMemo, useState } from 'react';
import { api, ApiFailure } from '../api/client.ts';
import type { Topology, TopologyNode } from '../api/types.ts';
import { Empty, ErrorState, Loading, StaleNote } from '../components/states.tsx';
import { useI18n } from '../i18n/index.tsx';
import { useLive } from '../live.tsx';
import { paths, useRouter } from '../router.tsx';
import { Graph } from '../topology/graph.tsx';
import { projectsOf, sitesOf, viewGraph } from '../topology/model.ts';
import { NODE_ROLES } from '../topology/roles.ts';

const POLL_MS = 5000;

export function useTopology(query: string): {
  topo: Topology | undefined;
  error: ApiFailure | undefined;
  reload: () => void;
} {
  const { epoch, onTopology } = useLive();
  const [topo, setTopo] = useState<Topology>();
  const [error, setError] = useState<ApiFailure>();
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    api<Topology>(`/api/v1/topology${query}`)
      .then((t) => {
        if (!live) return;
        setTopo(t);
        setError(undefined);
      })
      .catch(
        (err: unknown) =>
          live && setError(err instanceof ApiFailure ? err : new ApiFailure(0, 'Error', String(err))),
      );
    return () => {
      live = false;
    };
  }, [query, epoch, tick]);
  useEffect(() => {
    const id = setInterval(() => setTick((n) => n + 1), POLL_MS);
    // The stream's snapshot is unfiltered; with a filter the poll keeps the view right.
    const off = onTopology((t) => {
      if (query === '' || query === '?') setTopo(t);
    });
    return () => {
      clearInterval(id);
      off();
    };
  }, [onTopology, query]);
  return { topo, error, reload: () => setTick((n) => n + 1) };
}

export function TopologyPage() {
  const { t, fmtClock } = useI18n();
  const { search, navigate } = useRouter();
  const project = search.get('project') ?? '';
  const site = search.get('site') ?? '';
  const instances = search.get('instances') === '1';
  const l4 = search.get('l4') === '1';
  const { topo, error, reload } = useTopology('');
  const view = useMemo(
    () => (topo ? viewGraph(topo, { project, site, instances, l4 }) : undefined),
    [topo, project, site, instances, l4],
  );
  const setFilter = (k: string, v: string): void => {
    const s = new URLSearchParams(search);
    if (v) s.set(k, v);
    else s.delete(k);
    const qs = s.toString();
    navigate(`${paths.topology()}${qs ? `?${qs}` : ''}`, { replace: true });
  };
  const open = (n: TopologyNode): void => {
    const app = n.kind === 'instance' && n.parent ? topo?.nodes.find((x) => x.id === n.parent) : n;
    if (app?.project && app.app) navigate(paths.app(app.project, app.app));
  };

  return (
    <div className="page page-wide">
      <header className="page-header">
        <h1>{t('topology.title')}</h1>
        <p className="muted">
          {topo
            ? t('topology.subtitle', {
                window: topo.windowSeconds,
                at: fmtClock(topo.at),
              })
            : t('topology.subtitleLoading')}
        </p>
      </header>
      <div className="filters" role="search">
        <label>
          {t('filter.project')}
          <select
            value={project}
            onChange={(e) => setFilter('project', e.target.value)}
            data-testid="filter-project"
          >
            <option value="">{t('filter.all')}</option>
            {(topo ? projectsOf(topo) : []).map((p) => (
              <option key={p} value={p}>
                {p}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t('filter.site')}
          <select value={site} onChange={(e) => setFilter('site', e.target.value)} data-testid="filter-site">
            <option value="">{t('filter.all')}</option>
            {(topo ? sitesOf(topo) : []).map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label className="check">
          <input
            type="checkbox"
            checked={instances}
            onChange={(e) => setFilter('instances', e.target.checked ? '1' : '')}
          />
          {t('topology.showInstances')}
        </label>
        <label className="check">
          <input
            type="checkbox"
            checked={l4}
            onChange={(e) => setFilter('l4', e.target.checked ? '1' : '')}
          />
          {t('topology.showL4')}
        </label>
        <Legend />
      </div>
      {!topo && error ? (
        error.status === 404 ? (
          <Empty>{t('topology.unavailable')}</Empty>
        ) : (
          <ErrorState error={error} onRetry={reload} />
        )
      ) : !view ? (
        <Loading />
      ) : view.nodes.length === 0 ? (
        <Empty>{t('topology.empty')}</Empty>
      ) : (
        <>
          {error && <StaleNote error={error} />}
          <p className="muted small" data-testid="topology-counts">
            {t('topology.counts', {
              nodes: view.nodes.length,
              outside: view.nodes.filter((n) => n.kind === 'external').length,
              edges: view.edges.length,
            })}
          </p>
          <Graph nodes={view.nodes} edges={view.edges} onOpen={open} />
          <NodeKinds />
        </>
      )}
    </div>
  );
}

/** Every kind of box the graph can draw, each with what it is. */
function NodeKinds() {
  const { t } = useI18n();
  return (
    <section className="node-kinds" aria-labelledby="node-kinds" data-testid="node-kinds">
      <h2 id="node-kinds" className="small">
        {t('topology.nodeKinds')}
      </h2>
      <dl>
        {NODE_ROLES.map((r) => (
          <div key={r} className={`node-kind role-${r}`}>
            <dt>{t(`topology.role.${r}`)}</dt>
            <dd>{t(`topology.legend.${r}`)}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}

function Legend() {
  const { t } = useI18n();
  return (
    <ul className="legend" aria-label={t('topology.legend')}>
      {(['ok', 'degraded', 'down', 'unknown'] as const).map((h) => (
        <li key={h}>
          <span className={`swatch swatch-${h}`} aria-hidden="true" />
          {t(`health.${h}`)}
        </li>
      ))}
    </ul>
  );
}
