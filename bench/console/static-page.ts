/**
 * The anchor: the same graph drawn as a plain static SVG string with
 * positions computed ahead of time (same layout code, run in Node), no
 * framework, no layout in the browser, no interactivity. What "just putting
 * 200 boxes and 600 curves on screen" costs in this browser.
 */
import type { Topology } from '../../web/src/api/types.ts';
import { layoutGraph } from '../../web/src/topology/layout.ts';

const COLORS: Record<string, string> = {
  ok: '#1a7f37',
  degraded: '#b7791f',
  down: '#c62828',
  unknown: '#5b6470',
};

export function staticGraphPage(t: Topology): string {
  const l = layoutGraph(t);
  const byId = new Map(t.edges.map((e) => [e.id, e]));
  const edges = l.edges
    .map(
      (e) => `<path d="${e.d}" fill="none" stroke="${COLORS[byId.get(e.id)!.health]}" stroke-width="1.5"/>`,
    )
    .join('');
  const nodes = t.nodes
    .map((n) => {
      const p = l.nodes.get(n.id)!;
      return (
        `<g transform="translate(${p.x},${p.y})"><rect width="${l.nodeWidth}" height="${l.nodeHeight}" rx="8" fill="#fff" stroke="${COLORS[n.health]}"/>` +
        `<text x="16" y="20" font-size="13">${n.label}</text><text x="16" y="37" font-size="11">${n.metrics.rps} req/s</text></g>`
      );
    })
    .join('');
  const svg = `<svg width="${l.width}" height="${l.height}" viewBox="0 0 ${l.width} ${l.height}">${edges}${nodes}</svg>`;
  // Inserted by script so the mark is taken after the browser has the SVG in the DOM, as the console's is.
  return `<!doctype html><html><head><meta charset="utf-8"><title>static graph</title></head><body><div id="g"></div>
<script>
document.getElementById('g').innerHTML = ${JSON.stringify(svg)};
performance.mark('bulwark:topology-rendered');\ndocument.documentElement.dataset.topologyRendered = '${t.nodes.length}';\nrequestAnimationFrame(() => setTimeout(() => performance.mark('bulwark:topology-painted'), 0));
</script></body></html>`;
}
