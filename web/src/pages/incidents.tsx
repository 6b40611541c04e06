/** Incidents: the list (filter by state) and one incident with its timeline, evidence and quarantine actions. */
import { useState } from 'react';
import { ApiFailure, download } from '../api/client.ts';
import type { EvidenceManifest, Incident, IncidentState } from '../api/types.ts';
import { StatusText, Time } from '../components/explained.tsx';
import { DataView, Empty, ErrorState } from '../components/states.tsx';
import { useI18n } from '../i18n/index.tsx';
import { collapseTimeline } from '../present/timeline.ts';
import { Link, paths, useRouter } from '../router.tsx';
import { useApi } from '../use-api.ts';
import { fmtMs, SeverityBadge } from './incident-bits.tsx';
import { QuarantineActions } from './quarantine-actions.tsx';

const ACTION_KINDS = ['isolate', 'restart', 'alert', 'none'] as const;

/** The action in words; a kind this console does not know is shown as the API says it. */
function actionLabel(t: ReturnType<typeof useI18n>['t'], kind: string): string {
  return (ACTION_KINDS as readonly string[]).includes(kind)
    ? t(`actionKind.${kind as (typeof ACTION_KINDS)[number]}`)
    : kind;
}

const STATES: IncidentState[] = ['open', 'isolated', 'mitigated', 'resolved'];

export function IncidentsPage() {
  const { t } = useI18n();
  const { search, navigate } = useRouter();
  const state = search.get('state') ?? '';
  const list = useApi<{ items: Incident[] }>(`/api/v1/incidents?limit=200${state ? `&state=${state}` : ''}`, {
    refreshOn: (e) => e.key.kind === 'App',
    pollMs: 5000,
  });
  return (
    <div className="page">
      <header className="page-header">
        <h1>{t('incidents.title')}</h1>
        <p className="muted">{t('incidents.subtitle')}</p>
      </header>
      <div className="filters" role="search">
        <label>
          {t('incident.state')}
          <select
            value={state}
            onChange={(e) =>
              navigate(`${paths.incidents()}${e.target.value ? `?state=${e.target.value}` : ''}`, {
                replace: true,
              })
            }
          >
            <option value="">{t('filter.all')}</option>
            {STATES.map((s) => (
              <option key={s} value={s}>
                {t(`incident.state.${s}`)}
              </option>
            ))}
          </select>
        </label>
      </div>
      <section className="card">
        <DataView state={list} isEmpty={(d) => d.items.length === 0} empty={t('incidents.empty')}>
          {(d) => (
            <table className="table" data-testid="incidents">
              <thead>
                <tr>
                  <th>{t('incident.id')}</th>
                  <th>{t('incident.severity')}</th>
                  <th>{t('incident.app')}</th>
                  <th>{t('incident.signature')}</th>
                  <th>{t('incident.action')}</th>
                  <th>{t('incident.state')}</th>
                  <th>{t('incident.detected')}</th>
                  <th>{t('incident.isolateIn')}</th>
                  <th>MTTR</th>
                </tr>
              </thead>
              <tbody>
                {d.items.map((i) => (
                  <tr key={i.id}>
                    <td>
                      <Link href={paths.incident(i.id)} className="mono small">
                        {i.id}
                      </Link>
                    </td>
                    <td>
                      <SeverityBadge severity={i.severity} />
                    </td>
                    <td>
                      <Link href={paths.app(i.project, i.app)}>{`${i.project}/${i.app}`}</Link>
                      <div className="muted mono small">{i.instanceId}</div>
                    </td>
                    <td className="mono">{i.signature}</td>
                    <td>{actionLabel(t, i.action.kind)}</td>
                    <td>
                      <span className={`state-tag state-${i.state}`}>{t(`incident.state.${i.state}`)}</span>
                    </td>
                    <td className="small">
                      <Time iso={i.detectedAt} />
                    </td>
                    <td>{fmtMs(i.durations.isolateMs)}</td>
                    <td>{fmtMs(i.durations.mttrMs)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </DataView>
      </section>
    </div>
  );
}

export function IncidentPage({ id }: { id: string }) {
  const { t, fmtTime } = useI18n();
  const inc = useApi<Incident>(`/api/v1/incidents/${encodeURIComponent(id)}`, {
    refreshOn: (e) => e.key.kind === 'App',
    pollMs: 4000,
  });
  const evidence = useApi<EvidenceManifest>(`/api/v1/incidents/${encodeURIComponent(id)}/evidence`, {
    pollMs: 10_000,
  });
  const [dlError, setDlError] = useState<ApiFailure>();
  return (
    <div className="page">
      <p className="crumbs">
        <Link href={paths.incidents()}>{t('incidents.title')}</Link> / <span className="mono">{id}</span>
      </p>
      <DataView state={inc}>
        {(i) => (
          <>
            <header className="page-header">
              <h1>
                <span className="mono">{i.signature}</span> <SeverityBadge severity={i.severity} />{' '}
                <span className={`state-tag state-${i.state}`}>{t(`incident.state.${i.state}`)}</span>
              </h1>
              {i.evidenceSummary && (
                <p>
                  <StatusText text={i.evidenceSummary} />
                </p>
              )}
              {(i.occurrences ?? 1) > 1 && (
                <p className="muted small" data-testid="occurrences">
                  {t('incident.occurrences', { n: i.occurrences ?? 1, at: fmtTime(i.lastSeenAt) })}
                </p>
              )}
            </header>
            <div className="grid-2">
              <section className="card">
                <h2>{t('incident.details')}</h2>
                <dl className="kv">
                  <dt>{t('incident.app')}</dt>
                  <dd>
                    <Link href={paths.app(i.project, i.app)}>{`${i.project}/${i.app}`}</Link> ({i.workload},{' '}
                    {i.site})
                  </dd>
                  <dt>{t('incident.instance')}</dt>
                  <dd className="mono">{i.instanceId}</dd>
                  <dt>{t('incident.action')}</dt>
                  <dd>
                    <strong>{actionLabel(t, i.action.kind)}</strong> — <StatusText text={i.action.reason} />
                  </dd>
                  {i.replacementId && (
                    <>
                      <dt>{t('incident.replacement')}</dt>
                      <dd className="mono">{i.replacementId}</dd>
                    </>
                  )}
                  <dt>{t('incident.timings')}</dt>
                  <dd>
                    {t('incident.detectIn')} {fmtMs(i.durations.detectMs)} · {t('incident.isolateIn')}{' '}
                    {fmtMs(i.durations.isolateMs)} · {t('incident.replaceIn')} {fmtMs(i.durations.replaceMs)}{' '}
                    · MTTR {fmtMs(i.durations.mttrMs)}
                  </dd>
                </dl>
                {(i.state === 'isolated' || i.state === 'mitigated') && i.action.kind === 'isolate' && (
                  <div className="card-actions">
                    <h3>{t('incident.quarantined')}</h3>
                    <QuarantineActions instanceId={i.instanceId} onDone={inc.reload} />
                  </div>
                )}
              </section>
              <section className="card">
                <h2>{t('incident.evidence')}</h2>
                {evidence.data ? (
                  <>
                    <button
                      type="button"
                      className="btn btn-primary"
                      onClick={() => {
                        setDlError(undefined);
                        download(
                          `/api/v1/incidents/${encodeURIComponent(id)}/evidence.tar.gz`,
                          `${id}-evidence.tar.gz`,
                        ).catch((err: unknown) =>
                          setDlError(
                            err instanceof ApiFailure ? err : new ApiFailure(0, 'Error', String(err)),
                          ),
                        );
                      }}
                    >
                      {t('incident.download')}
                    </button>
                    {dlError && <ErrorState error={dlError} />}
                    <table className="table compact">
                      <tbody>
                        {Object.entries(evidence.data.parts).map(([name, p]) => (
                          <tr key={name}>
                            <td className="mono">{name}</td>
                            <td>
                              <span className={`state-tag part-${p.status}`}>{p.status}</span>
                            </td>
                            <td className="small muted wrap">
                              {p.reason ? <StatusText text={p.reason} /> : p.files.join(', ')}
                            </td>
                            <td className="small">{fmtMs(p.durationMs)}</td>
                          </tr>
                        ))}
                      </tbody>
                    </table>
                  </>
                ) : evidence.error ? (
                  evidence.error.status === 404 ? (
                    <Empty>
                      <StatusText text={evidence.error.message} />
                    </Empty>
                  ) : (
                    <ErrorState error={evidence.error} onRetry={evidence.reload} />
                  )
                ) : (
                  <Empty>{t('state.loading')}</Empty>
                )}
              </section>
            </div>
            <section className="card">
              <h2>{t('incident.timeline')}</h2>
              <ol className="timeline" data-testid="timeline">
                {collapseTimeline(i.timeline).map((e, n) => (
                  <li key={n} className={`tl tl-${e.event}`} data-event={e.event} data-count={e.count}>
                    <Time iso={e.at} />
                    <span className={`event-tag event-${e.event}`}>
                      {t(`timeline.${e.event as 'isolated'}`)}
                      {e.count > 1 && (
                        <span
                          className="tl-count"
                          title={t('timeline.countTitle', { n: e.count, at: fmtTime(e.lastAt) })}
                        >
                          {' '}
                          {t('timeline.count', { n: e.count })}
                        </span>
                      )}
                    </span>
                    <span>
                      <StatusText text={e.detail} />
                      {e.others.length > 0 && (
                        <details className="tech">
                          <summary>{t('timeline.others', { n: e.others.length })}</summary>
                          <ul>
                            {e.others.map((o, k) => (
                              <li key={k}>
                                <StatusText text={o} />
                              </li>
                            ))}
                          </ul>
                        </details>
                      )}
                    </span>
                  </li>
                ))}
              </ol>
            </section>
          </>
        )}
      </DataView>
    </div>
  );
}
