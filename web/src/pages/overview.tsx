/**
 * Overview: sites and their health, apps by health, open incidents and the
 * platform's recent automatic actions. Live: apps refetch on their change
 * events; incidents refetch when an app's status changes (a quarantine flips
 * its Quarantined condition) and every few seconds as a safety net.
 */
import { useEffect, useRef, type ReactNode } from 'react';
import type { ActionFeedItem, AppResource, Health, Incident, Resource } from '../api/types.ts';
import { Explanation, StatusText, Time } from '../components/explained.tsx';
import { DataView, Empty } from '../components/states.tsx';
import { appHealth, HealthBadge, HEALTH_ORDER, siteHealth } from '../components/health.tsx';
import { useI18n } from '../i18n/index.tsx';
import { healthReasons } from '../present/health-reason.ts';
import { Link, paths } from '../router.tsx';
import { useApi } from '../use-api.ts';
import { SeverityBadge } from './incident-bits.tsx';

export function OverviewPage() {
  const { t, fmtTime } = useI18n();
  const ctx = { t, fmtTime };
  const sites = useApi<{ items: Resource[] }>('/api/v1/sites', { refreshOn: (e) => e.key.kind === 'Site' });
  const apps = useApi<{ items: AppResource[] }>('/api/v1/apps', { refreshOn: (e) => e.key.kind === 'App' });
  const incidents = useApi<{ items: Incident[] }>('/api/v1/incidents?limit=100', {
    refreshOn: (e) => e.key.kind === 'App',
    pollMs: 5000,
  });
  // Placement moves change the App's status (placement), isolations its conditions: both refetch.
  const actions = useApi<{ items: ActionFeedItem[] }>('/api/v1/actions?limit=12', {
    refreshOn: (e) => e.key.kind === 'App' || e.key.kind === 'Site',
    pollMs: 5000,
  });

  const marked = useRef(false);
  useEffect(() => {
    if (marked.current || !sites.data || !apps.data || !incidents.data) return;
    marked.current = true;
    performance.mark('bulwark:overview-rendered');
    document.documentElement.dataset.overviewRendered = '1';
  }, [sites.data, apps.data, incidents.data]);

  const open = (incidents.data?.items ?? []).filter((i) => i.state !== 'resolved');
  const counts = new Map<Health, number>();
  for (const a of apps.data?.items ?? []) counts.set(appHealth(a), (counts.get(appHealth(a)) ?? 0) + 1);

  return (
    <div className="page">
      <header className="page-header">
        <h1>{t('overview.title')}</h1>
        <p className="muted">{t('overview.subtitle')}</p>
      </header>

      <section className="stats" aria-label={t('overview.summary')}>
        <Stat label={t('overview.sites')} value={sites.data?.items.length} />
        <Stat label={t('overview.apps')} value={apps.data?.items.length}>
          {HEALTH_ORDER.filter((h) => counts.get(h)).map((h) => (
            <HealthBadge key={h} health={h} label={`${counts.get(h)} ${t(`health.${h}`)}`} />
          ))}
        </Stat>
        <Stat
          label={t('overview.openIncidents')}
          value={incidents.data ? open.length : undefined}
          tone={open.length > 0 ? 'bad' : 'good'}
        />
        <Stat
          label={t('overview.instancesReady')}
          value={
            apps.data
              ? `${sum(apps.data.items, (a) => (a.status?.workloads ?? []).reduce((s, w) => s + w.readyReplicas, 0))} / ${sum(apps.data.items, (a) => (a.status?.workloads ?? []).reduce((s, w) => s + w.replicas, 0))}`
              : undefined
          }
        />
      </section>

      <div className="grid-2">
        <section className="card" aria-labelledby="ov-sites">
          <h2 id="ov-sites">{t('overview.sites')}</h2>
          <DataView state={sites} isEmpty={(d) => d.items.length === 0} empty={t('overview.noSites')}>
            {(d) => (
              <ul className="list">
                {d.items.map((s) => {
                  const ready = s.status?.conditions?.find((c) => c.type === 'Ready');
                  return (
                    <li key={s.metadata.name} className="list-row">
                      <HealthBadge health={siteHealth(s)} />
                      <strong>{s.metadata.name}</strong>
                      <span className="muted">
                        {String(
                          (s.spec as { driver?: string }).driver ?? (s.spec as { type?: string }).type ?? '',
                        )}
                      </span>
                      <span className="muted grow">
                        {ready?.message ? <StatusText text={ready.message} /> : ''}
                      </span>
                      <Link href={paths.topology({ site: s.metadata.name })}>
                        {t('overview.viewTopology')}
                      </Link>
                    </li>
                  );
                })}
              </ul>
            )}
          </DataView>
        </section>

        <section className="card" aria-labelledby="ov-apps">
          <h2 id="ov-apps">{t('overview.appsByHealth')}</h2>
          <DataView state={apps} isEmpty={(d) => d.items.length === 0} empty={t('overview.noApps')}>
            {(d) => (
              <ul className="list" data-testid="apps-by-health">
                {[...d.items]
                  .sort(
                    (a, b) =>
                      HEALTH_ORDER.indexOf(appHealth(a)) - HEALTH_ORDER.indexOf(appHealth(b)) ||
                      key(a).localeCompare(key(b)),
                  )
                  .map((a) => {
                    const w = a.status?.workloads ?? [];
                    const ready = w.reduce((s, x) => s + x.readyReplicas, 0);
                    const want = w.reduce((s, x) => s + x.replicas, 0);
                    const health = appHealth(a);
                    // Never a bare "Degraded" beside "2 of 2 ready": the conditions that made it so.
                    const reasons = health === 'ok' ? [] : healthReasons(a, ctx);
                    return (
                      <li key={key(a)} className="list-row" data-app={key(a)} data-health={health}>
                        <HealthBadge health={health} />
                        <Link href={paths.app(a.metadata.project ?? '', a.metadata.name)}>
                          <strong>{key(a)}</strong>
                        </Link>
                        <span className="muted">{t('app.readyOf', { ready, want })}</span>
                        <span className="grow health-reasons" data-testid="health-reason">
                          {reasons.map((r, n) => (
                            <Explanation key={n} e={r} inline className="small" />
                          ))}
                        </span>
                      </li>
                    );
                  })}
              </ul>
            )}
          </DataView>
        </section>
      </div>

      <section className="card" aria-labelledby="ov-incidents">
        <h2 id="ov-incidents">
          {t('overview.openIncidents')}{' '}
          <Link href={paths.incidents()} className="h-link">
            {t('overview.allIncidents')}
          </Link>
        </h2>
        <DataView state={incidents}>
          {() =>
            open.length === 0 ? (
              <Empty>{t('overview.noOpenIncidents')}</Empty>
            ) : (
              <table className="table" data-testid="open-incidents">
                <thead>
                  <tr>
                    <th>{t('incident.severity')}</th>
                    <th>{t('incident.app')}</th>
                    <th>{t('incident.signature')}</th>
                    <th>{t('incident.state')}</th>
                    <th>{t('incident.detected')}</th>
                  </tr>
                </thead>
                <tbody>
                  {open.map((i) => (
                    <tr key={i.id}>
                      <td>
                        <SeverityBadge severity={i.severity} />
                      </td>
                      <td>
                        <Link href={paths.incident(i.id)}>{`${i.project}/${i.app}`}</Link>
                        <div className="muted mono small">{i.instanceId}</div>
                      </td>
                      <td className="mono">{i.signature}</td>
                      <td>{t(`incident.state.${i.state}`)}</td>
                      <td>
                        <Time iso={i.detectedAt} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )
          }
        </DataView>
      </section>

      <section className="card" aria-labelledby="ov-actions">
        <h2 id="ov-actions">{t('overview.recentActions')}</h2>
        <DataView state={actions}>
          {(d) =>
            d.items.length === 0 ? (
              <Empty>{t('overview.noActions')}</Empty>
            ) : (
              <ol className="feed" data-testid="recent-actions">
                {d.items.map((a) => (
                  <li key={a.id}>
                    <Time iso={a.at} />
                    <span className={`event-tag event-${a.kind}`}>{t(`action.${a.kind}`)}</span>
                    {a.incidentId ? (
                      <Link href={paths.incident(a.incidentId)} className="mono small">
                        {a.instanceId}
                      </Link>
                    ) : (
                      <Link href={paths.app(a.project, a.app)} className="mono small">
                        {`${a.project}/${a.app}`}
                      </Link>
                    )}
                    <span className="muted">
                      <StatusText text={a.summary} />
                    </span>
                  </li>
                ))}
              </ol>
            )
          }
        </DataView>
        <p className="muted small">{t('overview.actionsNote')}</p>
      </section>
    </div>
  );
}

function Stat({
  label,
  value,
  tone,
  children,
}: {
  label: string;
  value: number | string | undefined;
  tone?: 'good' | 'bad';
  children?: ReactNode;
}) {
  return (
    <div className={`stat ${tone ? `stat-${tone}` : ''}`}>
      <div className="stat-label">{label}</div>
      <div className="stat-value">{value ?? '…'}</div>
      {children && <div className="stat-extra">{children}</div>}
    </div>
  );
}

const key = (a: Resource): string => `${a.metadata.project ?? ''}/${a.metadata.name}`;
function sum<T>(xs: T[], f: (x: T) => number): number {
  return xs.reduce((s, x) => s + f(x), 0);
}
