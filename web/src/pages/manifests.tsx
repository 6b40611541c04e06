/**
 * Manifests: view an app's manifest as YAML, edit it, preview the change
 * with a dry run (the spec diff the API computes), then apply. Validation
 * errors come back with path, line and fix and are shown at their line.
 */
import { useEffect, useRef, useState } from 'react';
import YAML from 'yaml';
import { api, ApiFailure } from '../api/client.ts';
import type { AppResource, ApplyResult } from '../api/types.ts';
import { Explanation } from '../components/explained.tsx';
import { DataView, ErrorState } from '../components/states.tsx';
import { YamlEditor, type YamlEditorHandle } from '../components/yaml-editor.tsx';
import { useI18n } from '../i18n/index.tsx';
import { explainFailure } from '../present/explain.ts';
import { Link, paths } from '../router.tsx';
import { useApi } from '../use-api.ts';

const SERVER_FIELDS = ['resourceVersion', 'generation', 'uid', 'createdAt', 'updatedAt', 'deletedAt'];

/** The manifest as a user would write it: no status, no server-set metadata. */
export function toManifestYaml(r: AppResource): string {
  const metadata = Object.fromEntries(Object.entries(r.metadata).filter(([k]) => !SERVER_FIELDS.includes(k)));
  return YAML.stringify({ apiVersion: r.apiVersion, kind: r.kind, metadata, spec: r.spec }, { lineWidth: 0 });
}

const NEW_TEMPLATE = `apiVersion: bulwark.io/v1
kind: App
metadata:
  name: my-service
  project: bank
spec:
  workloads:
    - name: api
      type: service
      replicas: 1
      run:
        command: [node, examples/bank/ledger.ts]
      ports:
        - name: http
          port: 8080
`;

export function ManifestsPage() {
  const { t } = useI18n();
  const apps = useApi<{ items: AppResource[] }>('/api/v1/apps', { refreshOn: (e) => e.key.kind === 'App' });
  return (
    <div className="page">
      <header className="page-header">
        <h1>{t('manifests.title')}</h1>
        <p className="muted">{t('manifests.subtitle')}</p>
      </header>
      <section className="card">
        <h2>{t('manifests.apps')}</h2>
        <DataView state={apps} isEmpty={(d) => d.items.length === 0} empty={t('overview.noApps')}>
          {(d) => (
            <ul className="list">
              {d.items.map((a) => (
                <li key={`${a.metadata.project}/${a.metadata.name}`} className="list-row">
                  <Link href={paths.manifest(a.metadata.project ?? '', a.metadata.name)}>
                    <strong>{`${a.metadata.project}/${a.metadata.name}`}</strong>
                  </Link>
                  <span className="muted grow">
                    {t('manifests.generation', { g: a.metadata.generation ?? '—' })}
                  </span>
                </li>
              ))}
            </ul>
          )}
        </DataView>
      </section>
      <ManifestEditor title={t('manifests.new')} initial={NEW_TEMPLATE} />
    </div>
  );
}

export function ManifestPage({ project, name }: { project: string; name: string }) {
  const { t } = useI18n();
  const app = useApi<AppResource>(
    `/api/v1/projects/${encodeURIComponent(project)}/apps/${encodeURIComponent(name)}`,
  );
  return (
    <div className="page">
      <p className="crumbs">
        <Link href={paths.manifests()}>{t('manifests.title')}</Link> /{' '}
        <Link href={paths.app(project, name)}>{`${project}/${name}`}</Link>
      </p>
      <DataView state={app}>
        {(a) => (
          <ManifestEditor title={`${project}/${name}`} initial={toManifestYaml(a)} onApplied={app.reload} />
        )}
      </DataView>
    </div>
  );
}

function ManifestEditor({
  title,
  initial,
  onApplied,
}: {
  title: string;
  initial: string;
  onApplied?: () => void;
}) {
  const { t } = useI18n();
  const [text, setText] = useState(initial);
  const [error, setError] = useState<ApiFailure>();
  const [plan, setPlan] = useState<{ text: string; result: ApplyResult }>();
  const [applied, setApplied] = useState<ApplyResult>();
  const [busy, setBusy] = useState<'dry' | 'apply' | null>(null);
  const editor = useRef<YamlEditorHandle>(null);
  const original = useRef(initial);
  useEffect(() => {
    // A newer stored version arrived and the user has not edited: show it.
    if (text === original.current) setText(initial);
    original.current = initial;
  }, [initial]);

  const send = async (dryRun: boolean): Promise<void> => {
    setBusy(dryRun ? 'dry' : 'apply');
    setError(undefined);
    setApplied(undefined);
    try {
      const result = await api<ApplyResult>(`/api/v1/apply${dryRun ? '?dryRun=true' : ''}`, {
        method: 'POST',
        body: text,
        yaml: true,
      });
      if (dryRun) setPlan({ text, result });
      else {
        setApplied(result);
        setPlan(undefined);
        original.current = text;
        onApplied?.();
      }
    } catch (err) {
      const f = err instanceof ApiFailure ? err : new ApiFailure(0, 'Error', String(err));
      setError(f);
      setPlan(undefined);
      const first = f.details.find((d) => d.line);
      if (first?.line) editor.current?.focusLine(first.line);
    } finally {
      setBusy(null);
    }
  };
  const planIsCurrent = plan?.text === text;
  const lineErrors = error?.details.filter((d) => d.line) ?? [];

  return (
    <section className="card" aria-labelledby="editor-title">
      <h2 id="editor-title">{title}</h2>
      <YamlEditor
        ref={editor}
        value={text}
        onChange={setText}
        errors={error?.details ?? []}
        label={t('manifests.editorLabel')}
      />
      <div className="row editor-actions">
        <button
          type="button"
          className="btn"
          onClick={() => void send(true)}
          disabled={busy !== null}
          data-testid="dry-run"
        >
          {busy === 'dry' ? t('state.working') : t('manifests.dryRun')}
        </button>
        <button
          type="button"
          className="btn btn-primary"
          onClick={() => void send(false)}
          disabled={busy !== null || !planIsCurrent}
          title={planIsCurrent ? undefined : t('manifests.previewFirst')}
          data-testid="apply"
        >
          {busy === 'apply' ? t('state.working') : t('manifests.apply')}
        </button>
        {!planIsCurrent && <span className="muted small">{t('manifests.previewFirst')}</span>}
        {text !== original.current && (
          <button
            type="button"
            className="btn btn-link"
            onClick={() => {
              setText(original.current);
              setError(undefined);
              setPlan(undefined);
            }}
          >
            {t('manifests.revert')}
          </button>
        )}
      </div>
      {error && (
        <div className="errors" role="alert" data-testid="manifest-errors">
          <ManifestErrorHeadline error={error} />
          <ul>
            {error.details.map((d, i) => (
              <li key={i}>
                {d.line ? (
                  <button
                    type="button"
                    className="btn-link line-ref"
                    onClick={() => editor.current?.focusLine(d.line!)}
                    data-line={d.line}
                  >
                    {t('manifests.line', { line: d.line })}
                  </button>
                ) : null}{' '}
                <code>{d.path}</code>: {d.message}
                {d.fix && (
                  <div className="fix">
                    {t('manifests.fix')}: {d.fix}
                  </div>
                )}
              </li>
            ))}
          </ul>
          {lineErrors.length === 0 && error.details.length === 0 && <ErrorState error={error} />}
        </div>
      )}
      {plan && planIsCurrent && <Plan result={plan.result} heading={t('manifests.planTitle')} />}
      {applied && <Plan result={applied} heading={t('manifests.appliedTitle')} />}
    </section>
  );
}

function Plan({ result, heading }: { result: ApplyResult; heading: string }) {
  const { t } = useI18n();
  return (
    <div className="plan" data-testid="plan">
      <h3>{heading}</h3>
      {result.results.map((r) => (
        <div key={`${r.kind}/${r.project}/${r.name}`} className="plan-item">
          <div>
            <span className={`state-tag action-${r.action}`}>{t(`manifests.action.${r.action}`)}</span>{' '}
            <strong>
              {r.kind} {r.project ? `${r.project}/` : ''}
              {r.name}
            </strong>
          </div>
          {r.changes.length > 0 && (
            <table className="table compact diff">
              <tbody>
                {r.changes.map((c, i) => (
                  <tr key={i} className={`diff-${c.op}`}>
                    <td className="diff-op">{c.op === 'add' ? '+' : c.op === 'remove' ? '−' : '~'}</td>
                    <td className="mono">{c.path}</td>
                    <td className="mono diff-from">{c.from === undefined ? '' : JSON.stringify(c.from)}</td>
                    <td className="mono diff-to">{c.to === undefined ? '' : JSON.stringify(c.to)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      ))}
    </div>
  );
}

/** What the failed dry run or apply means, and the code and message as sent under "Technical details". */
function ManifestErrorHeadline({ error }: { error: ApiFailure }) {
  const { t, fmtTime } = useI18n();
  return <Explanation e={explainFailure(error, { t, fmtTime })} className="errors-headline" />;
}
