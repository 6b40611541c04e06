/**
 * Console benchmark, measured in Debian's Chromium (playwright-core):
 *
 * 1. Topology render time with 200 synthetic services and 600 edges: the real
 *    console (built web/dist served by the control plane's console routes)
 *    against a stub topology API, from navigation start to the frame that
 *    shows the graph. Anchors in the same run and browser: the same page with
 *    a 1-service graph (the SPA's fixed cost) and a plain static SVG of the
 *    same graph with positions computed ahead of time (the cost of only
 *    drawing it).
 * 2. Time to first meaningful render of the overview with the demo: the real
 *    control plane running the demo bank under light load; from navigation
 *    start to the overview showing sites, apps and incidents from the API.
 *    Anchor: the same three API reads done directly from Node (the data's
 *    floor).
 *
 * Usage: node bench/console/run.ts [--quick] [--skip-demo]
 * Take the lock on a shared machine: flock /tmp/bulwark-bench.lock npm run bench:console
 * The last stdout line is a JSON summary.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import type { Page } from 'playwright-core';
import { registerConsoleRoutes } from '../../src/controlplane/api/console-routes.ts';
import { waitFor } from '../../src/util/time.ts';
import { chromiumMissing, launchBrowser } from '../../test/e2e/browser.ts';
import { DemoLoad } from '../../test/e2e/demo-load.ts';
import { REPO_ROOT, startControlPlane } from '../../test/support/control-plane-process.ts';
import { ensureConsoleBuilt } from '../../web/build-if-stale.ts';
import { staticGraphPage } from './static-page.ts';
import { syntheticTopology } from './synthetic.ts';

const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, 'skip-demo': { type: 'boolean', default: false } },
});
const quick = values.quick;
const REPS = quick ? 3 : 9;
const SERVICES = 200;
const EDGES = 600;
const TOKEN = 'bwk_bench_console_token_0123456789';

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const r1 = (x: number): number => Math.round(x * 10) / 10;

async function markTime(page: Page, name: string, timeoutMs = 30_000): Promise<number> {
  await page.waitForFunction((n) => performance.getEntriesByName(n).length > 0, name, { timeout: timeoutMs });
  return page.evaluate((n) => performance.getEntriesByName(n)[0]!.startTime, name);
}

/** A stub API with just what the topology page reads, plus the real console routes and the static anchor. */
async function topologyServer() {
  const big = syntheticTopology(SERVICES, EDGES);
  // The floor: two services and one call, drawn by the same page.
  const tiny = {
    ...big,
    nodes: big.nodes.slice(0, 2),
    edges: [{ ...big.edges[0]!, from: big.nodes[0]!.id, to: big.nodes[1]!.id }],
  };
  const app = Fastify();
  registerConsoleRoutes(app);
  let which = big;
  app.get('/api/v1/status', async () => ({}));
  app.get('/api/v1/topology', async () => which);
  app.get('/api/v1/events', (_req, reply) => {
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    reply.raw.write(': connected\n\n');
  });
  const staticHtml = staticGraphPage(big);
  app.get('/bench/static', async (_req, reply) => reply.type('text/html').send(staticHtml));
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { url, app, use: (t: 'big' | 'tiny') => (which = t === 'big' ? big : tiny) };
}

async function benchTopology() {
  const srv = await topologyServer();
  const b = await launchBrowser();
  await b.context.addInitScript((tok) => sessionStorage.setItem('bulwark.token', tok), TOKEN);
  const page = b.page;
  const runs = {
    console: [] as number[],
    consoleRendered: [] as number[],
    floor: [] as number[],
    static: [] as number[],
  };
  try {
    // Warm the cache once so every measured load is a warm one (assets are immutable).
    srv.use('big');
    await page.goto(`${srv.url}/console/topology`);
    await markTime(page, 'bulwark:topology-painted');
    for (let i = 0; i < REPS; i++) {
      srv.use('big');
      await page.goto(`${srv.url}/console/topology?rep=${i}`);
      runs.console.push(await markTime(page, 'bulwark:topology-painted'));
      runs.consoleRendered.push(await markTime(page, 'bulwark:topology-rendered'));
      const drawn = await page.locator('[data-testid=topology-graph] .node').count();
      if (drawn !== SERVICES) throw new Error(`console drew ${drawn} nodes, expected ${SERVICES}`);
      srv.use('tiny');
      await page.goto(`${srv.url}/console/topology?floor=${i}`);
      runs.floor.push(await markTime(page, 'bulwark:topology-painted'));
      await page.goto(`${srv.url}/bench/static?rep=${i}`);
      runs.static.push(await markTime(page, 'bulwark:topology-painted'));
    }
    await page.setViewportSize({ width: 1440, height: 900 });
    srv.use('big');
    await page.goto(`${srv.url}/console/topology`);
    await markTime(page, 'bulwark:topology-painted');
    await page.screenshot({ path: path.join(REPO_ROOT, 'docs/screenshots/topology-200.png') });
  } finally {
    await b.close();
    await srv.app.close();
  }
  return {
    services: SERVICES,
    edges: EDGES,
    reps: REPS,
    consoleMs: r1(median(runs.console)),
    consoleCommitMs: r1(median(runs.consoleRendered)),
    spaFloorMs: r1(median(runs.floor)),
    staticSvgMs: r1(median(runs.static)),
    graphCostMs: r1(median(runs.console) - median(runs.floor)),
    ratioVsStatic: r1(median(runs.console) / median(runs.static)),
    targetMs: 2000,
    metTarget: median(runs.console) < 2000,
    raw: runs,
  };
}

async function benchOverview() {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-bench-console-'));
  const cp = await startControlPlane({ dataDir });
  let load: DemoLoad | undefined;
  const b = await launchBrowser();
  try {
    const yaml = fs.readFileSync(path.join(REPO_ROOT, 'examples/bank/bank.yaml'), 'utf8');
    const r = await cp.api('POST', '/api/v1/apply', yaml, true);
    if (r.status !== 200) throw new Error(`apply failed: ${JSON.stringify(r.body)}`);
    await waitFor(
      'demo ready',
      async () => {
        const apps = await cp.api<{
          items: { status?: { conditions?: { type: string; status: string }[] } }[];
        }>('GET', '/api/v1/apps');
        return (
          apps.body.items.length === 4 &&
          apps.body.items.every((a) =>
            a.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
          )
        );
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    load = new DemoLoad(cp.gatewayUrl, 8, 2);
    await b.context.addInitScript((tok) => sessionStorage.setItem('bulwark.token', tok), cp.token);
    const page = b.page;
    const cold: number[] = [];
    const warm: number[] = [];
    const fcp: number[] = [];
    const floor: number[] = [];
    // First load in a fresh profile: nothing cached.
    await page.goto(`${cp.url}/console/`);
    cold.push(await markTime(page, 'bulwark:overview-rendered'));
    for (let i = 0; i < REPS; i++) {
      await page.goto(`${cp.url}/console/?rep=${i}`);
      warm.push(await markTime(page, 'bulwark:overview-rendered'));
      fcp.push(
        await page.evaluate(
          () => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN,
        ),
      );
      const t0 = performance.now();
      await Promise.all(
        ['/api/v1/sites', '/api/v1/apps', '/api/v1/incidents?limit=100'].map((p) => cp.api('GET', p)),
      );
      floor.push(performance.now() - t0);
    }
    return {
      reps: REPS,
      coldMs: r1(cold[0]!),
      warmMs: r1(median(warm)),
      firstContentfulPaintMs: r1(median(fcp)),
      apiFloorMs: r1(median(floor)),
      raw: { cold, warm, fcp, floor },
    };
  } finally {
    await load?.stop();
    await b.close();
    await cp.kill('SIGTERM');
    await cp.kill('SIGKILL');
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const missing = chromiumMissing();
  if (missing) throw new Error(missing);
  ensureConsoleBuilt();
  const started = Date.now();
  const topology = await benchTopology();
  console.log(
    `topology ${SERVICES} services / ${EDGES} edges (median of ${REPS}, warm cache):\n` +
      `  console (navigation -> graph painted)  ${topology.consoleMs} ms   target < 2000 ms: ${topology.metTarget ? 'met' : 'MISSED'}\n` +
      `  anchor: same page, 2-service graph     ${topology.spaFloorMs} ms   -> graph cost ${topology.graphCostMs} ms\n` +
      `  anchor: static SVG, precomputed layout ${topology.staticSvgMs} ms   -> ratio ${topology.ratioVsStatic}x`,
  );
  const overview = values['skip-demo'] ? undefined : await benchOverview();
  if (overview) {
    console.log(
      `overview with the demo (navigation -> sites, apps and incidents rendered):\n` +
        `  cold (fresh profile)  ${overview.coldMs} ms\n` +
        `  warm (median of ${REPS}) ${overview.warmMs} ms   first contentful paint ${overview.firstContentfulPaintMs} ms\n` +
        `  anchor: the same 3 API reads from Node ${overview.apiFloorMs} ms`,
    );
  }
  const summary = {
    bench: 'console',
    quick,
    browser: 'Debian chromium (playwright-core)',
    topology: { ...topology, raw: undefined },
    overview: overview ? { ...overview, raw: undefined } : null,
    seconds: Math.round((Date.now() - started) / 1000),
  };
  console.log(JSON.stringify(summary));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
