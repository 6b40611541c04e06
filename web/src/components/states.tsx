/** Loading, empty and error states: every data view renders one of these until it has data. */
import type { ReactNode } from 'react';
import type { ApiFailure } from '../api/client.ts';
import { useI18n } from '../i18n/index.tsx';

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

export function ErrorState({ error, onRetry }: { error: ApiFailure; onRetry?: () => void }) {
  const { t } = useI18n();
  return (
    <div className="state state-error" role="alert">
      <strong>{error.unreachable ? t('state.unreachable') : t('state.error', { code: error.code })}</strong>
      <span>{error.message}</span>
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
      {onRetry && (
        <button type="button" className="btn btn-small" onClick={onRetry}>
          {t('action.retry')}
        </button>
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
      {state.error && <div className="stale-note">{state.error.message}</div>}
      {isEmpty?.(state.data) && empty !== undefined ? <Empty>{empty}</Empty> : children(state.data)}
    </>
  );
}
