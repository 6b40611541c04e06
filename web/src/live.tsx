/**
 * The console's live connection: one change stream (/api/v1/events) for the
 * whole app. Pages subscribe to change events and to topology snapshots;
 * `epoch` grows on every reconnect so pages refetch what they might have
 * missed while the control plane was away (e.g. restarted).
 */
import { createContext, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { getToken } from './api/client.ts';
import { EventStream, type StreamState } from './api/sse.ts';
import type { ChangeEvent, Topology } from './api/types.ts';

type ChangeListener = (ev: ChangeEvent) => void;
type TopologyListener = (t: Topology) => void;

interface Live {
  state: StreamState;
  epoch: number;
  onChange: (l: ChangeListener) => () => void;
  onTopology: (l: TopologyListener) => () => void;
}

const LiveContext = createContext<Live | null>(null);

export function LiveProvider({
  children,
  onUnauthorized,
}: {
  children: ReactNode;
  onUnauthorized: () => void;
}) {
  const [state, setState] = useState<StreamState>('connecting');
  const [epoch, setEpoch] = useState(0);
  const changeListeners = useRef(new Set<ChangeListener>());
  const topoListeners = useRef(new Set<TopologyListener>());
  const unauthorized = useRef(onUnauthorized);
  unauthorized.current = onUnauthorized;

  useEffect(() => {
    const stream = new EventStream(
      { url: '/api/v1/events', token: getToken },
      {
        onState: (s) => {
          setState(s);
          if (s === 'unauthorized') unauthorized.current();
        },
        onConnected: (reconnect) => {
          if (reconnect) setEpoch((e) => e + 1);
        },
        onEvent: (event, data) => {
          try {
            if (event === 'change') {
              const ev = JSON.parse(data) as ChangeEvent;
              changeListeners.current.forEach((l) => l(ev));
            } else if (event === 'topology') {
              const t = JSON.parse(data) as Topology;
              topoListeners.current.forEach((l) => l(t));
            }
          } catch {
            // A malformed frame is skipped; the next refetch corrects the view.
          }
        },
      },
    );
    stream.start();
    return () => stream.stop();
  }, []);

  const value = useMemo<Live>(
    () => ({
      state,
      epoch,
      onChange: (l) => {
        changeListeners.current.add(l);
        return () => changeListeners.current.delete(l);
      },
      onTopology: (l) => {
        topoListeners.current.add(l);
        return () => topoListeners.current.delete(l);
      },
    }),
    [state, epoch],
  );
  return <LiveContext.Provider value={value}>{children}</LiveContext.Provider>;
}

export function useLive(): Live {
  const v = useContext(LiveContext);
  if (!v) throw new Error('useLive outside LiveProvider');
  return v;
}
