/** Release or delete a quarantined instance, each after an explicit confirmation. */
import { useState } from 'react';
import { api, ApiFailure } from '../api/client.ts';
import { ErrorState } from '../components/states.tsx';
import { useI18n } from '../i18n/index.tsx';

export function QuarantineActions({ instanceId, onDone }: { instanceId: string; onDone: () => void }) {
  const { t } = useI18n();
  const [confirm, setConfirm] = useState<'release' | 'delete' | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiFailure>();
  const run = async (verb: 'release' | 'delete'): Promise<void> => {
    setBusy(true);
    setError(undefined);
    try {
      await api(`/api/v1/instances/${encodeURIComponent(instanceId)}/quarantine/${verb}`, { method: 'POST' });
      setConfirm(null);
      onDone();
    } catch (err) {
      setError(err instanceof ApiFailure ? err : new ApiFailure(0, 'Error', String(err)));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="quarantine-actions">
      {confirm === null ? (
        <>
          <button type="button" className="btn btn-small" onClick={() => setConfirm('release')}>
            {t('quarantine.release')}
          </button>
          <button type="button" className="btn btn-small btn-danger" onClick={() => setConfirm('delete')}>
            {t('quarantine.delete')}
          </button>
        </>
      ) : (
        <div className="confirm" role="alertdialog" aria-label={t(`quarantine.confirm.${confirm}`)}>
          <span>{t(`quarantine.confirm.${confirm}`)}</span>
          <button
            type="button"
            className={`btn btn-small ${confirm === 'delete' ? 'btn-danger' : 'btn-primary'}`}
            disabled={busy}
            onClick={() => void run(confirm)}
            autoFocus
          >
            {t(`quarantine.${confirm}`)}
          </button>
          <button type="button" className="btn btn-small" onClick={() => setConfirm(null)}>
            {t('action.cancel')}
          </button>
        </div>
      )}
      {error && <ErrorState error={error} />}
    </div>
  );
}
