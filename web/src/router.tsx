/**
 * A small history-API router: the console has a handful of routes and needs
 * nothing more than "which page, which params". Paths live under /console/,
 * which the control plane answers with index.html (SPA fallback), so every
 * URL can be bookmarked and reloaded.
 */
import {
  createContext,
  useContext,
  useEffect,
  useState,
  type AnchorHTMLAttributes,
  type ReactNode,
} from 'react';

export const BASE = '/console';

export type Route =
  | { page: 'overview' }
  | { page: 'topology' }
  | { page: 'app'; project: string; name: string }
  | { page: 'incidents' }
  | { page: 'incident'; id: string }
  | { page: 'manifests' }
  | { page: 'manifest'; project: string; name: string }
  | { page: 'notfound'; path: string };

export function parseRoute(pathname: string): Route {
  const rel = pathname.startsWith(BASE) ? pathname.slice(BASE.length) : pathname;
  const parts = rel.split('/').filter(Boolean).map(decodeURIComponent);
  const [a, b, c] = parts;
  if (parts.length === 0) return { page: 'overview' };
  if (a === 'topology' && parts.length === 1) return { page: 'topology' };
  if (a === 'apps' && b && c && parts.length === 3) return { page: 'app', project: b, name: c };
  if (a === 'incidents' && parts.length === 1) return { page: 'incidents' };
  if (a === 'incidents' && b && parts.length === 2) return { page: 'incident', id: b };
  if (a === 'manifests' && parts.length === 1) return { page: 'manifests' };
  if (a === 'manifests' && b && c && parts.length === 3) return { page: 'manifest', project: b, name: c };
  return { page: 'notfound', path: rel };
}

export const paths = {
  overview: () => `${BASE}/`,
  topology: (q?: { project?: string; site?: string }) => {
    const s = new URLSearchParams();
    if (q?.project) s.set('project', q.project);
    if (q?.site) s.set('site', q.site);
    const qs = s.toString();
    return `${BASE}/topology${qs ? `?${qs}` : ''}`;
  },
  app: (project: string, name: string) =>
    `${BASE}/apps/${encodeURIComponent(project)}/${encodeURIComponent(name)}`,
  incidents: () => `${BASE}/incidents`,
  incident: (id: string) => `${BASE}/incidents/${encodeURIComponent(id)}`,
  manifests: () => `${BASE}/manifests`,
  manifest: (project: string, name: string) =>
    `${BASE}/manifests/${encodeURIComponent(project)}/${encodeURIComponent(name)}`,
};

interface Location {
  route: Route;
  search: URLSearchParams;
  navigate: (to: string, opts?: { replace?: boolean }) => void;
}

const RouterContext = createContext<Location | null>(null);

function read(): { route: Route; search: URLSearchParams } {
  return { route: parseRoute(window.location.pathname), search: new URLSearchParams(window.location.search) };
}

export function RouterProvider({ children }: { children: ReactNode }) {
  const [loc, setLoc] = useState(read);
  useEffect(() => {
    const onPop = (): void => setLoc(read());
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);
  const navigate = (to: string, opts?: { replace?: boolean }): void => {
    if (opts?.replace) window.history.replaceState(null, '', to);
    else window.history.pushState(null, '', to);
    setLoc(read());
    if (!opts?.replace) window.scrollTo(0, 0);
  };
  return <RouterContext.Provider value={{ ...loc, navigate }}>{children}</RouterContext.Provider>;
}

export function useRouter(): Location {
  const v = useContext(RouterContext);
  if (!v) throw new Error('useRouter outside RouterProvider');
  return v;
}

/** An <a> that navigates in-app on a plain left click and behaves like a link otherwise. */
export function Link({
  href,
  children,
  ...rest
}: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const { navigate } = useRouter();
  return (
    <a
      href={href}
      {...rest}
      onClick={(e) => {
        rest.onClick?.(e);
        if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(href);
      }}
    >
      {children}
    </a>
  );
}
