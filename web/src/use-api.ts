/**
 * Load one API path and keep it fresh: refetch when a matching change event
 * arrives (coalesced), after the live stream reconnects, and optionally on a
 * timer for data the change log does not carry (instances, logs). Data stays
 * on screen while a refetch runs, so live updates never flash a spinner.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { api, ApiFailure } from './api/client.ts';
import type { ChangeEvent } from './api/types.ts';
import { useLive } from './live.tsx';

export interface ApiState<T> {
  data: T | undefined;
  error: ApiFailure | undefined;
  loading: boolean;
  reload: () => void;
}

export interface UseApiOptions {
  /** Refetch when this returns true for a change event. */
  refreshOn?: (ev: ChangeEvent) => boolean;
  /** Also refetch on this period. */
  pollMs?: number;
}

export function useApi<T>(path: string | null, opts: UseApiOptions = {}): ApiState<T> {
  const { epoch, onChange } = useLive();
  const [data, setData] = useState<T | undefined>();
  const [error, setError] = useState<ApiFailure | undefined>();
  const [loading, setLoading] = useState(path !== null);
  const seq = useRef(0);
  const refreshOn = useRef(opts.refreshOn);
  refreshOn.current = opts.refreshOn;

  const load = useCallback(() => {
    if (path === null) return;
    const mine = ++seq.current;
    setLoading(true);
    api<T>(path)
      .then((d) => {
        if (mine !== seq.current) return;
        setData(d);
        setError(undefined);
      })
      .catch((err: unknown) => {
        if (mine !== seq.current) return;
        setError(err instanceof ApiFailure ? err : new ApiFailure(0, 'Error', String(err)));
      })
      .finally(() => {
        if (mine === seq.current) setLoading(false);
      });
  }, [path]);

  // A new path shows its own data, not the previous page's.
  useEffect(() => {
    setData(undefined);
    setError(undefined);
  }, [path]);

  useEffect(load, [load, epoch]);

  useEffect(() => {
    if (path === null) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const off = onChange((ev) => {
      if (!refreshOn.current?.(ev)) return;
      clearTimeout(timer);
      timer = setTimeout(load, 200);
    });
    return () => {
      off();
      clearTimeout(timer);
    };
  }, [path, load, onChange]);

  useEffect(() => {
    if (path === null || !opts.pollMs) return;
    const id = setInterval(load, opts.pollMs);
    return () => clearInterval(id);
  }, [path, load, opts.pollMs]);

  return { data, error, loading, reload: load };
}
