/** Sign-in with an API token; the token is checked against the API before it is kept (sessionStorage). */
import { useState } from 'react';
import { api, ApiFailure } from '../api/client.ts';
import { useI18n, LOCALES } from '../i18n/index.tsx';
import { explainFailure } from '../present/explain.ts';

export function SignInPage({ onSignedIn, reason }: { onSignedIn: (token: string) => void; reason?: string }) {
  const { t, fmtTime, locale, setLocale } = useI18n();
  const [token, setTokenText] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (): Promise<void> => {
    const value = token.trim();
    if (!value) {
      setError(t('signin.empty'));
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await api('/api/v1/status', { token: value });
      onSignedIn(value);
    } catch (err) {
      const f = err instanceof ApiFailure ? err : undefined;
      setError(
        f?.status === 401
          ? t('signin.refused')
          : f?.unreachable
            ? t('state.unreachable')
            : explainFailure(f ?? new ApiFailure(0, 'Error', String(err)), { t, fmtTime }).what,
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="signin">
      <form
        className="signin-card"
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <div className="brand brand-large">
          <Shield /> Bulwark
        </div>
        <h1>{t('signin.title')}</h1>
        <p className="muted">{t('signin.help')}</p>
        {reason && <p className="warn-note">{reason}</p>}
        <label htmlFor="token">{t('signin.token')}</label>
        <input
          id="token"
          type="password"
          autoComplete="off"
          autoFocus
          value={token}
          onChange={(e) => setTokenText(e.target.value)}
          placeholder="bwk_…"
          aria-invalid={!!error}
          aria-describedby={error ? 'signin-error' : undefined}
        />
        {error && (
          <p id="signin-error" className="field-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="btn btn-primary btn-block" disabled={busy}>
          {busy ? t('state.working') : t('signin.submit')}
        </button>
        <p className="muted small">{t('signin.storage')}</p>
        <label className="inline small">
          {t('nav.language')}{' '}
          <select value={locale} onChange={(e) => setLocale(e.target.value as typeof locale)}>
            {LOCALES.map((l) => (
              <option key={l.id} value={l.id}>
                {l.label}
              </option>
            ))}
          </select>
        </label>
      </form>
    </main>
  );
}

export function Shield() {
  return (
    <svg width="22" height="22" viewBox="0 0 24 24" aria-hidden="true" className="shield">
      <path d="M12 2 4 5v6c0 5 3.4 9.4 8 11 4.6-1.6 8-6 8-11V5l-8-3z" />
      <path d="m8.5 12 2.5 2.5 4.5-5" className="shield-check" />
    </svg>
  );
}
