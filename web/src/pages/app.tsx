/**
 * App: its instances with their state, per-instance rate / errors / latency
 * and resource charts (sampled from the topology snapshots while the page is
 * open), a log tail, and scaling.
 */
import { useEffect, useRef, useState } from 'react';
import { api, ApiFailure } from '../api/client.ts';
import type { AppResource, Incident, Instance, Topology, TopologyMetrics } from '../api/types.ts';
import { LineChart } from '../components/chart.tsx';
import { appHealth, HealthBadge, PhaseBadge } from '../components/health.tsx';
import { Explanation, StatusText, Time } from '../components/explained.tsx';
import { DataView, Empty, ErrorState } from '../components/states.tsx';
import { useI18n } from '../i18n/index.tsx';
import { healthReasons } from '../present/health-reason.ts';
import { Link, paths } from '../router.tsx';
import { useApi } from '../use-api.ts';
import { QuarantineActions } from './quarantine-actions.tsx';
import { useTopology } from './topology.tsx';

const SAMPLES = 60;
type Sample = TopologyMetrics;

/** Keeps the last SAMPLES metric snapshots per instance id from each new topology. */
function useInstanceHistory(topo: Topology | undefined): Map<string, Sample[]> {
  const hist = useRef(new Map<string, Sample[]>());
  const lastAt = useRef('');
  const [, bump] = useState(0);
  useEffect(() => {
    if (!topo || topo.at === lastAt.current) return;
    lastAt.current = topo.at;
    for (const n of topo.nodes) {
      if (n.kind !== 'instance') continue;
      const id = n.instance ?? n.id.replace(/^instance:/, '');
      const arr = hist.current.get(id) ?? [];
      arr.push(n.metrics);
      if (arr.length > SAMPLES) arr.shift();
      hist.current.set(id, arr);
    }
    bump((x) => x + 1);
  }, [topo]);
  return hist.current;
}

export function AppPage({ project, name }: { project: string; name: string }) {
  const { t, fmtTime } = useI18n();
  const base = `/api/v1/projects/${encodeURIComponent(project)}/apps/${encodeURIComponent(name)}`;
  const mine = (e: { key: { kind: string; project: string; name: string } }): boolean =>
    e.key.kind === 'App' && e.key.project === project && e.key.name === name;
  const app = useApi<AppResource>(base, { refreshOn: mine });
  const instances = useApi<{ items: Instance[] }>(`${base}/instances`, { refreshOn: mine, pollMs: 2000 });
  const incidents = useApi<{ items: Incident[] }>(
    `/api/v1/incidents?project=${encodeURIComponent(project)}&app=${encodeURIComponent(name)}&limit=50`,
    { refreshOn: mine, pollMs: 5000 },
  );
  const { topo, error: topoError } = useTopology(`?project=${encodeURIComponent(project)}`);
  const history = useInstanceHistory(topo);
  const [logFor, setLogFor] = useState<string>('');

  const items = instances.data?.items ?? [];
  useEffect(() => {
    if (items.length > 0 && !items.some((i) => i.id === logFor)) setLogFor(items[0]!.id);
  }, [items, logFor]);

  return (
    <div className="page">
      <DataView state={app}>
        {(a) => (
          <>
            <header className="page-header row">
              <div>
                <h1>
                  {project}/{name} <HealthBadge health={appHealth(a)} />
                </h1>
                <HealthLine app={a} reasons={healthReasons(a, { t, fmtTime })} />
              </div>
              <div className="header-links">
                <Link className="btn" href={paths.topology({ project })}>
                  {t('nav.topology')}
                </Link>
                <Link className="btn" href={paths.manifest(project, name)}>
                  {t('app.editManifest')}
                </Link>
              </div>
            </header>
            <ScaleCard
              app={a}
              base={base}
              onScaled={() => {
                app.reload();
                instances.reload();
              }}
            />
          </>
        )}
      </DataView>

      <section className="card" aria-labelledby="app-instances">
        <h2 id="app-instances">{t('app.instances')}</h2>
        <DataView state={instances} isEmpty={(d) => d.items.length === 0} empty={t('app.noInstances')}>
          {(d) => (
            <table className="table" data-testid="instances">
              <thead>
                <tr>
                  <th>{t('app.instance')}</th>
                  <th>{t('app.state')}</th>
                  <th>{t('app.site')}</th>
                  <th>{t('app.address')}</th>
                  <th>{t('app.restarts')}</th>
                  <th>{t('app.started')}</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {d.items.map((i) => {
                  const inc = incidents.data?.items.find(
                    (x) => x.instanceId === i.id && x.state !== 'resolved',
                  );
                  return (
                    <tr key={i.id} data-phase={i.phase}>
                      <td className="mono">{i.id}</td>
                      <td>
                        <PhaseBadge phase={i.phase} />
                        {i.quarantine && (
                          <div className="muted small" data-testid="instance-message">
                            <StatusText text={i.quarantine.reason} />
                          </div>
                        )}
                        {i.message && !i.quarantine && (
                          <div className="muted small" data-testid="instance-message">
                            <StatusText text={i.message} />
                          </div>
                        )}
                      </td>
                      <td>{i.site}</td>
                      <td className="mono small">
                        {i.ip}
                        {i.ports.http ? `:${i.ports.http}` : ''}
                        {i.pid !== undefined ? ` · pid ${i.pid}` : ''}
                      </td>
                      <td>{i.restarts}</td>
                      <td className="small">
                        <Time iso={i.startedAt} />
                      </td>
                      <td className="actions">
                        {inc && <Link href={paths.incident(inc.id)}>{t('app.incident')}</Link>}
                        {i.phase === 'quarantined' && (
                          <QuarantineActions
                            instanceId={i.id}
                            onDone={() => {
                              instances.reload();
                              incidents.reload();
                            }}
                          />
                        )}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          )}
        </DataView>
      </section>

      <section className="card" aria-labelledby="app-charts">
        <h2 id="app-charts">{t('app.metrics')}</h2>
        {topoError && !topo ? (
          topoError.status === 404 ? (
            <Empty>{t('topology.unavailable')}</Empty>
          ) : (
            <ErrorState error={topoError} />
          )
        ) : items.length === 0 ? (
          <Empty>{t('app.noInstances')}</Empty>
        ) : (
          <div className="chart-grid">
            {items.map((i) => {
              const h = history.get(i.id) ?? [];
              const limits = a11yLimits(app.data, i.workload);
              return (
                <div key={i.id} className="instance-charts">
                  <h3 className="mono small">{i.id}</h3>
                  {h.length === 0 ? (
                    <Empty>{t('app.waitingForSamples')}</Empty>
                  ) : (
                    <>
                      <LineChart
                        title={t('metric.rate')}
                        unit=" req/s"
                        series={[{ label: 'now', values: h.map((s) => s.rps), className: 's1' }]}
                      />
                      <LineChart
                        title={t('metric.errors')}
                        unit="%"
                        series={[
                          {
                            label: t('metric.errors'),
                            values: h.map((s) => s.errorRate * 100),
                            className: 's-bad',
                          },
                        ]}
                      />
                      <LineChart
                        title={t('metric.latency')}
                        unit=" ms"
                        series={[
                          { label: 'p50', values: h.map((s) => s.p50Ms), className: 's1' },
                          { label: 'p99', values: h.map((s) => s.p99Ms), className: 's2' },
                        ]}
                      />
                      <LineChart
                        title={t('metric.cpu', { limit: limits.cpu ?? '—' })}
                        unit=""
                        series={[{ label: 'now', values: h.map((s) => s.cpu ?? null), className: 's3' }]}
                      />
                      <LineChart
                        title={t('metric.memory', { limit: limits.memory ?? '—' })}
                        unit=" MiB"
                        series={[
                          {
                            label: 'now',
                            values: h.map((s) => (s.memoryBytes == null ? null : s.memoryBytes / 2 ** 20)),
                            className: 's4',
                          },
                        ]}
                      />
                    </>
                  )}
                </div>
              );
            })}
          </div>
        )}
      </section>

      <section className="card" aria-labelledby="app-logs">
        <h2 id="app-logs">{t('app.logs')}</h2>
        {items.length === 0 ? (
          <Empty>{t('app.noInstances')}</Empty>
        ) : (
          <>
            <label className="inline">
              {t('app.instance')}{' '}
              <select value={logFor} onChange={(e) => setLogFor(e.target.value)}>
                {items.map((i) => (
                  <option key={i.id} value={i.id}>
                    {i.id}
                  </option>
                ))}
              </select>
            </label>
            {logFor && <LogTail instanceId={logFor} />}
          </>
        )}
      </section>
    </div>
  );
}

/** Under the app's name: why it is not healthy (each condition explained), else what Ready says. */
function HealthLine({ app, reasons }: { app: AppResource; reasons: ReturnType<typeof healthReasons> }) {
  const ready = app.status?.conditions?.find((c) => c.type === 'Ready');
  return (
    <div className="muted health-line" data-testid="health-reason">
      {reasons.length > 0
        ? reasons.map((r, n) => <Explanation key={n} e={r} className="reason-block" />)
        : ready?.message && <StatusText text={ready.message} />}
    </div>
  );
}

function a11yLimits(app: AppResource | undefined, workload: string): { cpu?: string; memory?: string } {
  const w = app?.spec.workloads.find((x) => x.name === workload);
  return {
    ...(w?.resources?.cpu !== undefined ? { cpu: String(w.resources.cpu) } : {}),
    ...(w?.resources?.memory !== undefined ? { memory: w.resources.memory } : {}),
  };
}

function ScaleCard({ app, base, onScaled }: { app: AppResource; base: string; onScaled: () => void }) {
  const { t } = useI18n();
  const workloads = app.spec.workloads;
  const [workload, setWorkload] = useState(workloads[0]?.name ?? '');
  const current = workloads.find((w) => w.name === workload);
  const [replicas, setReplicas] = useState(String(current?.replicas ?? 1));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiFailure>();
  const [done, setDone] = useState<string>();
  useEffect(() => setReplicas(String(current?.replicas ?? 1)), [current?.replicas, workload]);
  const status = app.status?.workloads?.find((w) => w.name === workload);
  const submit = async (): Promise<void> => {
    setBusy(true);
    setError(undefined);
    setDone(undefined);
    try {
      await api(`${base}/scale`, { method: 'POST', body: { workload, replicas: Number(replicas) } });
      setDone(t('app.scaled', { workload, replicas }));
      onScaled();
    } catch (err) {
      setError(err instanceof ApiFailure ? err : new ApiFailure(0, 'Error', String(err)));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="card scale" aria-labelledby="app-scale">
      <h2 id="app-scale">{t('app.scale')}</h2>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        {workloads.length > 1 && (
          <label>
            {t('app.workload')}
            <select value={workload} onChange={(e) => setWorkload(e.target.value)}>
              {workloads.map((w) => (
                <option key={w.name}>{w.name}</option>
              ))}
            </select>
          </label>
        )}
        <label>
          {t('app.replicas', { workload })}
          <input
            type="number"
            min={0}
            max={100}
            value={replicas}
            onChange={(e) => setReplicas(e.target.value)}
            data-testid="replicas-input"
            aria-describedby="scale-now"
          />
        </label>
        <button
          type="submit"
          className="btn btn-primary"
          disabled={busy || replicas === '' || Number(replicas) === current?.replicas}
          data-testid="scale-submit"
        >
          {busy ? t('state.working') : t('app.scaleButton')}
        </button>
        <span id="scale-now" className="muted" data-testid="scale-status">
          {status ? t('app.readyOf', { ready: status.readyReplicas, want: status.replicas }) : ''}
        </span>
        {done && (
          <span className="ok-note" role="status">
            {done}
          </span>
        )}
      </form>
      {error && <ErrorState error={error} />}
    </section>
  );
}

function LogTail({ instanceId }: { instanceId: string }) {
  const { t } = useI18n();
  const logs = useApi<{ lines: string[] }>(
    `/api/v1/instances/${encodeURIComponent(instanceId)}/logs?tail=200`,
    { pollMs: 3000 },
  );
  const pre = useRef<HTMLPreElement>(null);
  const stick = useRef(true);
  useEffect(() => {
    const el = pre.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [logs.data]);
  return (
    <DataView state={logs} isEmpty={(d) => d.lines.length === 0} empty={t('app.noLogs')}>
      {(d) => (
        <pre
          className="logs"
          ref={pre}
          tabIndex={0}
          aria-label={t('app.logs')}
          onScroll={(e) => {
            const el = e.currentTarget;
            stick.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 8;
          }}
        >
          {d.lines.join('\n')}
        </pre>
      )}
    </DataView>
  );
}
