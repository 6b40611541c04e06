/**
 * The service graph: laid out by layout.ts, drawn as SVG. Nodes and edges are
 * coloured by health; hover or keyboard focus shows rate / errors / latency;
 * Enter or a click opens the service. Marks `bulwark:topology-rendered` once
 * the graph is on screen (read by the benchmark and the tests).
 */
import {
  memo,
  useCallback,
  useEffect,
  useLayoutEffect,
  useMemo,
  useRef,
  useState,
  type KeyboardEvent,
  type MouseEvent,
} from 'react';
import type { TopologyEdge, TopologyMetrics, TopologyNode } from '../api/types.ts';
import { useI18n, type Translate } from '../i18n/index.tsx';
import { layoutGraph } from './layout.ts';
import { endpointMetrics, explainNode } from './roles.ts';

interface Hover {
  x: number;
  y: number;
  title: string;
  kind: string;
  /** What the node is (nodes only). */
  about?: string;
  metrics: TopologyMetrics & {
    connections?: number | null;
    rttMs?: number | null;
    retransmits?: number | null;
  };
  health: string;
}

export interface GraphProps {
  nodes: TopologyNode[];
  edges: TopologyEdge[];
  onOpen: (node: TopologyNode) => void;
}

export function Graph({ nodes, edges, onOpen }: GraphProps) {
  const { t } = useI18n();
  const [zoom, setZoom] = useState<number | 'fit'>('fit');
  const [hover, setHover] = useState<Hover | null>(null);
  const box = useRef<HTMLDivElement>(null);
  // Re-layout only when the shape changes, not on every metrics update.
  const shape = useMemo(
    () => nodes.map((n) => n.id).join('|') + '#' + edges.map((e) => e.id).join('|'),
    [nodes, edges],
  );
  const shapeRef = useRef({ shape: '', layout: layoutGraph({ nodes: [], edges: [] }) });
  if (shapeRef.current.shape !== shape) shapeRef.current = { shape, layout: layoutGraph({ nodes, edges }) };
  const layout = shapeRef.current.layout;
  // Measured before paint; the graph itself is rendered once the width is known (one render, not two).
  const [boxWidth, setBoxWidth] = useState<number | null>(null);
  useLayoutEffect(() => {
    const el = box.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setBoxWidth(el.clientWidth));
    ro.observe(el);
    setBoxWidth(el.clientWidth);
    return () => ro.disconnect();
  }, []);
  const scale =
    zoom === 'fit'
      ? Math.min(1.25, Math.max(0.35, ((boxWidth ?? 1000) - 4) / Math.max(1, layout.width)))
      : zoom;

  useEffect(() => {
    if (boxWidth === null) return;
    performance.mark('bulwark:topology-rendered', { detail: { nodes: nodes.length, edges: edges.length } });
    document.documentElement.dataset.topologyRendered = String(nodes.length);
    // The frame after the commit has painted the graph: what the user sees.
    requestAnimationFrame(() => setTimeout(() => performance.mark('bulwark:topology-painted'), 0));
  }, [layout, nodes.length, edges.length, boxWidth === null]);

  const byId = useMemo(() => new Map(nodes.map((n) => [n.id, n])), [nodes]);
  const edgeById = useMemo(() => new Map(edges.map((e) => [e.id, e])), [edges]);
  const maxRps = Math.max(1, ...edges.map((e) => e.metrics.rps));

  // Hovering changes only the tooltip: the node and edge layers get stable callbacks (through refs)
  // and are memoised, so a mouse move does not re-render 200 nodes and 600 edges.
  const live = useRef({ byId, scale, onOpen, t, edges });
  live.current = { byId, scale, onOpen, t, edges };
  const showAt = useCallback((clientX: number, clientY: number, h: Omit<Hover, 'x' | 'y'>): void => {
    const el = box.current;
    const r = el?.getBoundingClientRect();
    if (!el || !r) return;
    setHover({ ...h, x: clientX - r.left + el.scrollLeft, y: clientY - r.top + el.scrollTop });
  }, []);
  const onEdgeHover = useCallback(
    (e: TopologyEdge, ev: MouseEvent) =>
      showAt(ev.clientX, ev.clientY, {
        title: `${endName(live.current.byId.get(e.from), e.from, live.current.t)} → ${endName(live.current.byId.get(e.to), e.to, live.current.t)}`,
        kind: e.layers.join('+').toUpperCase() || 'L7',
        metrics: e.metrics,
        health: e.health,
      }),
    [showAt],
  );
  const hoverOf = useCallback((n: TopologyNode): Omit<Hover, 'x' | 'y'> => {
    const x = explainNode(n, live.current.t);
    return {
      title: x.subtitle ? `${x.title} (${x.subtitle})` : x.title,
      kind: live.current.t(`topology.role.${x.role}`),
      about: x.description,
      metrics: endpointMetrics(n, live.current.edges),
      health: n.health,
    };
  }, []);
  const nodeEvents = useMemo<NodeEvents>(
    () => ({
      move: (n, ev) => showAt(ev.clientX, ev.clientY, hoverOf(n)),
      focus: (n, p) =>
        setHover({
          ...hoverOf(n),
          x: (p.x + layout.nodeWidth) * live.current.scale + 8,
          y: p.y * live.current.scale,
        }),
      blur: () => setHover(null),
      open: (n) => live.current.onOpen(n),
    }),
    [showAt, hoverOf, layout.nodeWidth],
  );

  return (
    <div className="graph-wrap">
      <div className="graph-toolbar" role="toolbar" aria-label={t('topology.zoom')}>
        <button
          type="button"
          className="btn btn-small"
          onClick={() => setZoom((z) => Math.max(0.2, (z === 'fit' ? scale : z) / 1.25))}
          aria-label={t('topology.zoomOut')}
        >
          −
        </button>
        <button type="button" className="btn btn-small" onClick={() => setZoom('fit')}>
          {t('topology.fit')}
        </button>
        <button
          type="button"
          className="btn btn-small"
          onClick={() => setZoom((z) => Math.min(3, (z === 'fit' ? scale : z) * 1.25))}
          aria-label={t('topology.zoomIn')}
        >
          +
        </button>
        <span className="muted">{Math.round(scale * 100)}%</span>
      </div>
      <div className="graph" ref={box} onMouseLeave={() => setHover(null)}>
        {boxWidth !== null && (
          <svg
            width={layout.width * scale}
            height={layout.height * scale}
            viewBox={`0 0 ${layout.width} ${layout.height}`}
            role="group"
            aria-label={t('topology.graphLabel', { nodes: nodes.length, edges: edges.length })}
            data-testid="topology-graph"
          >
            <defs>
              {(['ok', 'degraded', 'down', 'unknown'] as const).map((h) => (
                <marker
                  key={h}
                  id={`arrow-${h}`}
                  viewBox="0 0 10 10"
                  refX="9"
                  refY="5"
                  markerWidth="9"
                  markerHeight="9"
                  markerUnits="userSpaceOnUse"
                  orient="auto-start-reverse"
                >
                  <path d="M0,0 L10,5 L0,10 z" className={`arrow arrow-${h}`} />
                </marker>
              ))}
            </defs>
            <Edges layout={layout} edgeById={edgeById} maxRps={maxRps} onHover={onEdgeHover} />
            <Nodes nodes={nodes} layout={layout} events={nodeEvents} />
          </svg>
        )}
        {hover && (
          <div className="tooltip" style={{ left: hover.x + 14, top: hover.y + 10 }} role="tooltip">
            <div className="tooltip-title">{hover.title}</div>
            <div className="tooltip-kind">
              {hover.kind} · {t(`health.${hover.health as 'ok'}`)}
            </div>
            {hover.about && <p className="tooltip-about">{hover.about}</p>}
            <dl>
              <dt>{t('metric.rate')}</dt>
              <dd>{hover.metrics.rps.toFixed(1)} req/s</dd>
              <dt>{t('metric.errors')}</dt>
              <dd>{(hover.metrics.errorRate * 100).toFixed(1)}%</dd>
              <dt>p50 / p99</dt>
              <dd>
                {ms(hover.metrics.p50Ms)} / {ms(hover.metrics.p99Ms)}
              </dd>
              {hover.metrics.rttMs != null && (
                <>
                  <dt>RTT</dt>
                  <dd>{ms(hover.metrics.rttMs)}</dd>
                </>
              )}
              {hover.metrics.connections != null && (
                <>
                  <dt>{t('metric.connections')}</dt>
                  <dd>{hover.metrics.connections}</dd>
                </>
              )}
              {hover.metrics.retransmits != null && (
                <>
                  <dt>{t('metric.retransmits')}</dt>
                  <dd>{hover.metrics.retransmits}</dd>
                </>
              )}
            </dl>
          </div>
        )}
      </div>
    </div>
  );
}

interface NodeEvents {
  move: (n: TopologyNode, ev: MouseEvent) => void;
  focus: (n: TopologyNode, p: { x: number; y: number }) => void;
  blur: () => void;
  open: (n: TopologyNode) => void;
}

const Nodes = memo(function Nodes({
  nodes,
  layout,
  events,
}: {
  nodes: TopologyNode[];
  layout: ReturnType<typeof layoutGraph>;
  events: NodeEvents;
}) {
  const { t } = useI18n();
  return (
    <g className="nodes">
      {nodes.map((n) => {
        const p = layout.nodes.get(n.id);
        if (!p) return null;
        const x = explainNode(n, t);
        return (
          <g
            key={n.id}
            className={`node node-${n.health} node-kind-${n.kind}`}
            transform={`translate(${p.x},${p.y})`}
            tabIndex={0}
            role="link"
            aria-label={`${x.title}${x.subtitle ? ` (${x.subtitle})` : ''}: ${t(`health.${n.health}`)}, ${fmtRate(t, n.metrics)}. ${x.description}`}
            data-node-id={n.id}
            data-role={x.role}
            onMouseMove={(ev) => events.move(n, ev)}
            onFocus={() => events.focus(n, p)}
            onBlur={events.blur}
            onClick={() => events.open(n)}
            onKeyDown={(ev: KeyboardEvent) => {
              if (ev.key === 'Enter' || ev.key === ' ') {
                ev.preventDefault();
                events.open(n);
              }
            }}
          >
            <title>{x.description}</title>
            <rect width={layout.nodeWidth} height={layout.nodeHeight} rx="8" className="node-box" />
            <rect width="6" height={layout.nodeHeight} rx="3" className="node-stripe" />
            <text x="16" y="20" className="node-label">
              {clip(x.title, 20)}
            </text>
            <text x="16" y="37" className="node-sub">
              {/* Outside the platform the address says more than a rate the node does not measure. */}
              {x.subtitle !== undefined ? clip(x.subtitle, 24) : fmtRate(t, n.metrics)}
            </text>
          </g>
        );
      })}
    </g>
  );
});

const Edges = memo(function Edges({
  layout,
  edgeById,
  maxRps,
  onHover,
}: {
  layout: ReturnType<typeof layoutGraph>;
  edgeById: Map<string, TopologyEdge>;
  maxRps: number;
  onHover: (e: TopologyEdge, ev: MouseEvent) => void;
}) {
  return (
    <g className="edges">
      {layout.edges.map((pe) => {
        const e = edgeById.get(pe.id);
        if (!e) return null;
        const w = 1.25 + 3 * Math.sqrt(e.metrics.rps / maxRps);
        return (
          <g
            key={pe.id}
            className={`edge edge-${e.health}`}
            data-edge-id={e.id}
            onMouseMove={(ev) => onHover(e, ev)}
          >
            <path d={pe.d} className="edge-hit" />
            <path d={pe.d} className="edge-line" strokeWidth={w} markerEnd={`url(#arrow-${e.health})`} />
          </g>
        );
      })}
    </g>
  );
});

/** An edge end by what it is ("Clients on this host (127.0.0.1)"), not by its bare id. */
function endName(n: TopologyNode | undefined, id: string, t: Translate): string {
  if (!n) return id;
  const x = explainNode(n, t);
  return x.subtitle ? `${x.title} (${x.subtitle})` : x.title;
}
function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}
function ms(v: number | null | undefined): string {
  return v === null || v === undefined ? '—' : `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`;
}
function fmtRate(t: Translate, m: TopologyMetrics): string {
  return t('topology.nodeSub', { rps: m.rps.toFixed(1), err: (m.errorRate * 100).toFixed(1) });
}
