/** The shell: sign-in gate, navigation, live-connection indicator, language picker, and the page for the route. */
import { useEffect, useState } from 'react';
import { getToken, onUnauthorized, setToken } from './api/client.ts';
import { LOCALES, useI18n } from './i18n/index.tsx';
import { LiveProvider, useLive } from './live.tsx';
import { AppPage } from './pages/app.tsx';
import { IncidentPage, IncidentsPage } from './pages/incidents.tsx';
import { ManifestPage, ManifestsPage } from './pages/manifests.tsx';
import { OverviewPage } from './pages/overview.tsx';
import { Shield, SignInPage } from './pages/sign-in.tsx';
import { TopologyPage } from './pages/topology.tsx';
import { Link, paths, useRouter, type Route } from './router.tsx';

export function App() {
  const { t } = useI18n();
  const [token, setTok] = useState(getToken);
  const [reason, setReason] = useState<string>();
  useEffect(
    () =>
      onUnauthorized(() => {
        setToken(null);
        setTok(null);
        setReason(t('signin.expired'));
      }),
    [t],
  );
  if (!token) {
    return (
      <SignInPage
        reason={reason}
        onSignedIn={(tok) => {
          setToken(tok);
          setTok(tok);
          setReason(undefined);
        }}
      />
    );
  }
  return (
    <LiveProvider
      onUnauthorized={() => {
        setToken(null);
        setTok(null);
        setReason(t('signin.expired'));
      }}
    >
      <Shell
        onSignOut={() => {
          setToken(null);
          setTok(null);
        }}
      />
    </LiveProvider>
  );
}

const NAV: {
  page: Route['page'];
  href: () => string;
  key: 'nav.overview' | 'nav.topology' | 'nav.incidents' | 'nav.manifests';
  also?: Route['page'][];
}[] = [
  { page: 'overview', href: paths.overview, key: 'nav.overview', also: ['app'] },
  { page: 'topology', href: () => paths.topology(), key: 'nav.topology' },
  { page: 'incidents', href: paths.incidents, key: 'nav.incidents', also: ['incident'] },
  { page: 'manifests', href: paths.manifests, key: 'nav.manifests', also: ['manifest'] },
];

function Shell({ onSignOut }: { onSignOut: () => void }) {
  const { t, locale, setLocale } = useI18n();
  const { route } = useRouter();
  const live = useLive();
  useEffect(() => {
    document.title = `${t(NAV.find((n) => n.page === route.page || n.also?.includes(route.page))?.key ?? 'nav.overview')} · Bulwark`;
  }, [route.page, t]);
  return (
    <div className="shell">
      <a href="#main" className="skip-link">
        {t('nav.skip')}
      </a>
      <header className="topbar">
        <Link href={paths.overview()} className="brand">
          <Shield /> Bulwark
        </Link>
        <nav aria-label={t('nav.main')}>
          <ul>
            {NAV.map((n) => {
              const current = route.page === n.page || n.also?.includes(route.page);
              return (
                <li key={n.page}>
                  <Link
                    href={n.href()}
                    aria-current={current ? 'page' : undefined}
                    className={current ? 'active' : undefined}
                  >
                    {t(n.key)}
                  </Link>
                </li>
              );
            })}
          </ul>
        </nav>
        <div className="topbar-right">
          <span
            className={`live live-${live.state}`}
            role="status"
            aria-live="polite"
            data-testid="live-state"
            data-state={live.state}
          >
            <span className="dot" aria-hidden="true" />
            {t(`live.${live.state}`)}
          </span>
          <label className="sr-only" htmlFor="locale">
            {t('nav.language')}
          </label>
          <select
            id="locale"
            className="select-quiet"
            value={locale}
            onChange={(e) => setLocale(e.target.value as typeof locale)}
          >
            {LOCALES.map((l) => (
              <option key={l.id} value={l.id}>
                {l.label}
              </option>
            ))}
          </select>
          <button type="button" className="btn btn-quiet" onClick={onSignOut}>
            {t('nav.signOut')}
          </button>
        </div>
      </header>
      {live.state === 'reconnecting' && (
        <div className="banner banner-warn" role="status">
          {t('live.banner')}
        </div>
      )}
      <main id="main" tabIndex={-1}>
        <Page route={route} />
      </main>
    </div>
  );
}

function Page({ route }: { route: Route }) {
  const { t } = useI18n();
  switch (route.page) {
    case 'overview':
      return <OverviewPage />;
    case 'topology':
      return <TopologyPage />;
    case 'app':
      return <AppPage key={`${route.project}/${route.name}`} project={route.project} name={route.name} />;
    case 'incidents':
      return <IncidentsPage />;
    case 'incident':
      return <IncidentPage key={route.id} id={route.id} />;
    case 'manifests':
      return <ManifestsPage />;
    case 'manifest':
      return (
        <ManifestPage key={`${route.project}/${route.name}`} project={route.project} name={route.name} />
      );
    case 'notfound':
      return (
        <div className="page">
          <h1>{t('notfound.title')}</h1>
          <p>
            {t('notfound.body', { path: route.path })}{' '}
            <Link href={paths.overview()}>{t('nav.overview')}</Link>
          </p>
        </div>
      );
  }
}
