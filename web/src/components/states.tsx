/** Loading, empty and error states: every data view renders one of these until it has data. */
import type { ReactNode } from 'react';
import type { ApiFailure } from '../api/client.ts';
import { useI18n } from '../i18n/index.tsx';
import { explainFailure } from '../present/explain.ts';

export function Loading({ label }: { label?: string }) {
  const { t } = useI18n();
  return (
    <div className="state state-loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      {label ?? t('state.loading')}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="state state-empty">{children}</div>;
}

/**
 * A failed request: what happened and what to do (present/explain.ts), each
 * field's message and fix, and the code / status / message as the API sent
 * them under "Technical details".
 */
export function ErrorState({ error, onRetry }: { error: ApiFailure; onRetry?: () => void }) {
  const { t, fmtTime } = useI18n();
  const e = explainFailure(error, { t, fmtTime });
  return (
    <div className="state state-error" role="alert" data-code={error.code}>
      <strong>{e.what}</strong>
      {e.todo && <span className="todo">{e.todo}</span>}
      {error.details.length > 0 && (
        <ul>
          {error.details.map((d, i) => (
            <li key={i}>
              <code>{d.path}</code>: {d.message}
              {d.fix ? ` — ${d.fix}` : ''}
            </li>
          ))}
        </ul>
      )}
      {e.original && (
        <details className="tech">
          <summary>{t('explain.technical')}</summary>
          <code className="original">{e.original}</code>
        </details>
      )}
      {onRetry && (
        <button type="button" className="btn btn-small" onClick={onRetry}>
          {t('action.retry')}
        </button>
      )}
    </div>
  );
}

/** Data on screen whose refresh failed: say so in words, keep the data. */
export function StaleNote({ error }: { error: ApiFailure }) {
  const { t, fmtTime } = useI18n();
  const e = explainFailure(error, { t, fmtTime });
  return (
    <div className="stale-note" role="status">
      {t('state.stale', { what: e.what })}
      {e.original && (
        <details className="tech">
          <summary>{t('explain.technical')}</summary>
          <code className="original">{e.original}</code>
        </details>
      )}
    </div>
  );
}

/**
 * The one place that decides which state a data view is in: error without
 * data, loading without data, empty, or the content.
 */
export function DataView<T>({
  state,
  empty,
  isEmpty,
  children,
}: {
  state: { data: T | undefined; error: ApiFailure | undefined; loading: boolean; reload: () => void };
  empty?: ReactNode;
  isEmpty?: (d: T) => boolean;
  children: (d: T) => ReactNode;
}) {
  if (state.data === undefined) {
    if (state.error) return <ErrorState error={state.error} onRetry={state.reload} />;
    return <Loading />;
  }
  return (
    <>
      {state.error && <StaleNote error={state.error} />}
      {isEmpty?.(state.data) && empty !== undefined ? <Empty>{empty}</Empty> : children(state.data)}
    </>
  );
}
