/**
 * The web console end to end, in Debian's Chromium (playwright-core) against
 * the real control plane running the demo bank with traffic through its
 * gateway: sign-in, the overview, the topology with the demo's services and
 * edges, an injected fault that shows up as an incident on the overview
 * without a reload, the incident's timeline and quarantine delete, an invalid
 * manifest whose error is shown at its line, a dry-run diff and apply,
 * scaling from the app page with each instance's charts plotting samples,
 * a workload that cannot start explained in words (the original under
 * "Technical details"), and reconnecting after the control plane is
 * SIGKILLed and restarted. On every page: no internal error strings in view,
 * every time with its zone (the browser runs in Asia/Kolkata, so a zone
 * the machine's UTC would not give), each timeline step once, every
 * topology node explained, no "Degraded" without its reason.
 *
 * Screenshots of each page go to a temporary directory (removed afterwards):
 * a test run never rewrites tracked files. `scripts/refresh-screenshots.sh`
 * runs this test with BULWARK_SCREENSHOT_DIR=docs/screenshots to refresh the
 * documentation's pictures on purpose.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppResource } from '../../src/model/types.ts';
import type { InstanceStatus } from '../../src/runtime/driver.ts';
import { waitFor } from '../../src/util/time.ts';
import { ensureConsoleBuilt } from '../../web/build-if-stale.ts';
import { REPO_ROOT, startControlPlane, type ControlPlaneProcess } from '../support/control-plane-process.ts';
import { httpRequest } from '../support/http.ts';
import { chromiumMissing, launchBrowser, type Browser } from './browser.ts';
import { DemoLoad } from './demo-load.ts';

/** Where screenshots go: BULWARK_SCREENSHOT_DIR (kept), else a temporary directory (removed after the file). */
const SHOTS_DIR = process.env.BULWARK_SCREENSHOT_DIR;
let shots: string;
const BANK_APPS = ['gateway', 'accounts', 'payments', 'ledger'];

let dataDir: string;
let cp: ControlPlaneProcess;
let browser: Browser;
let page: Page;
let load: DemoLoad | undefined;

async function shot(name: string, fullPage = false): Promise<void> {
  // Let charts and fonts settle; screenshots are documentation, not assertions.
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage });
}

/** What one instance's chart on the app page plots: points per line, and the values its caption shows. */
async function chartOf(instanceId: string, title: string): Promise<{ points: number[]; values: string[] }> {
  const fig = page
    .locator('.instance-charts', { has: page.locator('h3', { hasText: instanceId }) })
    .locator('figure.chart', { has: page.locator(`svg[aria-label="${title}"]`) });
  if ((await fig.count()) !== 1) return { points: [], values: [] };
  const points = await fig
    .locator('path.chart-line')
    // No DOM types here (the project's lib is ES only): the elements are typed as far as used.
    .evaluateAll((ps: { getAttribute: (name: string) => string | null }[]) =>
      ps.map((p) => (p.getAttribute('d') ?? '').split(/[ML]/).filter((x) => x.trim() !== '').length),
    );
  return { points, values: await fig.locator('.chart-values > span').allTextContents() };
}

async function instances(app: string): Promise<InstanceStatus[]> {
  const r = await cp.api<{ items: InstanceStatus[] }>('GET', `/api/v1/projects/bank/apps/${app}/instances`);
  return r.body.items;
}

async function allReady(): Promise<boolean> {
  const r = await cp.api<{ items: AppResource[] }>('GET', '/api/v1/apps?project=bank');
  return (
    r.body.items.length === BANK_APPS.length &&
    r.body.items.every((a) => a.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))
  );
}

/** The browser's zone: not the machine's (UTC), so a time shown without its zone would be caught. */
const TIMEZONE = 'Asia/Kolkata';
const ZONE_NAME = 'GMT+5:30';

/** The machinery's own words, which no page may show as its message (closed details are not in view). */
const INTERNAL_TEXT =
  /start-failed:|\bE(?:CONNREFUSED|NOENT|ACCES|ADDRINUSE)\b|fetch failed|Failed to fetch|TypeError|SyntaxError|\bHTTP\d{3}\b|\{"|\bat \S+ \(|\d{4}-\d\d-\d\dT\d\d:\d\d|Request failed \(|\b(?:NotFound|BadRequest|Unreachable|Internal|Unprocessable): /;

/**
 * What the main area shows a person (innerText: closed <details> and hidden text left out), less the
 * log tail and the manifest editor, which show the workload's own text verbatim.
 */
async function visibleText(): Promise<string> {
  let text = await page.locator('main').innerText();
  for (const verbatim of await page.locator('main pre.logs, main textarea').allInnerTexts())
    text = text.replace(verbatim, '');
  return text;
}

/** The page's visible text has no internal error string and every <time> names its zone. */
async function checkPageWords(where: string): Promise<void> {
  const text = await visibleText();
  expect(INTERNAL_TEXT.exec(text)?.[0], `${where} shows an internal string`).toBeUndefined();
  const times = await page.locator('main time').allInnerTexts();
  for (const t of times)
    expect(t, `${where}: a time without its zone`).toMatch(new RegExp(`${ZONE_NAME.replace('+', '\\+')}$`));
}

const missing = chromiumMissing();

// A static skip carries no note: the reason goes in the suite's name, which the skipped list prints.
describe.skipIf(missing !== undefined)(
  `web console in Chromium against the demo${missing ? ` (${missing})` : ''}`,
  () => {
    beforeAll(async () => {
      ensureConsoleBuilt();
      shots = SHOTS_DIR
        ? path.resolve(REPO_ROOT, SHOTS_DIR)
        : fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-e2e-shots-'));
      fs.mkdirSync(shots, { recursive: true });
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-e2e-'));
      cp = await startControlPlane({ dataDir });
      const yaml = fs.readFileSync(path.join(REPO_ROOT, 'examples/bank/bank.yaml'), 'utf8');
      const applied = await cp.api('POST', '/api/v1/apply', yaml, true);
      expect(applied.status, JSON.stringify(applied.body)).toBe(200);
      await waitFor('demo bank ready', allReady, { timeoutMs: 120_000, intervalMs: 500 });
      load = new DemoLoad(cp.gatewayUrl);
      browser = await launchBrowser({ timezoneId: TIMEZONE });
      page = browser.page;
    }, 240_000);

    afterAll(async () => {
      await load?.stop();
      await browser?.close();
      // The server leaves instances (and HAProxy) to be adopted on restart: delete and stop them with it.
      await cp?.stop();
      if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
      if (shots && !SHOTS_DIR) fs.rmSync(shots, { recursive: true, force: true });
    }, 120_000);

    it('refuses a wrong token, then signs in and shows the overview with the demo apps', async () => {
      await page.goto(`${cp.url}/`);
      await page.waitForURL(/\/console\/$/);
      await page.getByLabel('API token').fill('bwk_not_a_real_token_at_all');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByText('The control plane refused this token.').waitFor();
      await shot('signin');
      await page.getByLabel('API token').fill(cp.token);
      await page.getByRole('button', { name: 'Sign in' }).click();
      const apps = page.getByTestId('apps-by-health');
      await apps.waitFor();
      for (const a of BANK_APPS) await apps.getByText(`bank/${a}`, { exact: true }).waitFor();
      await page.locator('[data-testid=live-state][data-state=live]').waitFor();
      await checkPageWords('overview');
      await shot('overview');
    }, 60_000);

    it('topology shows the demo services and the edges between them', async () => {
      await page.getByRole('link', { name: 'Topology', exact: true }).first().click();
      await page.getByTestId('topology-graph').waitFor({ timeout: 30_000 });
      for (const a of BANK_APPS)
        await page.locator(`[data-node-id="app:bank/${a}"]`).waitFor({ timeout: 30_000 });
      // Calls take a moment to show up in the window: wait for the chain's edges.
      const edges = [
        ['gateway', 'accounts'],
        ['accounts', 'ledger'],
      ];
      for (const [from, to] of edges) {
        await page
          .locator(`[data-edge-id="app:bank/${from}->app:bank/${to}"]`)
          .waitFor({ state: 'attached', timeout: 45_000 });
      }
      // Hover shows rate / errors / latency.
      await page.locator('[data-node-id="app:bank/accounts"]').hover();
      const tip = page.getByRole('tooltip');
      await tip.waitFor();
      expect(await tip.textContent()).toMatch(/req\/s/);
      // Every node says what it is: the load's loopback caller is "clients on this host", not a bare IP.
      const local = page.locator('[data-node-id="external:127.0.0.1"]');
      await local.waitFor({ timeout: 30_000 });
      expect(await local.getAttribute('data-role')).toBe('local-clients');
      expect(await local.locator('text.node-label').textContent()).toBe('Clients on this host');
      expect(await local.locator('text.node-sub').textContent()).toBe('127.0.0.1');
      await local.hover();
      await tip.getByText('Clients on this host (127.0.0.1)').waitFor();
      expect(await tip.textContent()).toMatch(/outside the platform/);
      for (const n of await page.locator('[data-node-id]').all()) {
        const id = await n.getAttribute('data-node-id');
        expect(await n.locator('title').textContent(), `node ${id} explained`).toMatch(/\w{3,}.*\./);
      }
      const kinds = page.getByTestId('node-kinds');
      for (const k of ['Service', 'Site gateway', 'Clients on this host', 'External service'])
        await kinds.getByText(k, { exact: true }).waitFor();
      await checkPageWords('topology');
      await shot('topology');
      // Click-through opens the service.
      await page.locator('[data-node-id="app:bank/accounts"]').click();
      await page.waitForURL(/\/console\/apps\/bank\/accounts$/);
    }, 120_000);

    it('scaling from the app page changes the instance count', async () => {
      await page.goto(`${cp.url}/console/apps/bank/accounts`);
      // Count ready instances: on a loaded machine fault isolation may quarantine (and replace) one meanwhile.
      const ready = page.getByTestId('instances').locator('tbody tr[data-phase=ready]');
      await waitFor('2 ready accounts instances listed', async () => (await ready.count()) === 2, {
        timeoutMs: 60_000,
      });
      await page.getByTestId('replicas-input').fill('3');
      await page.getByTestId('scale-submit').click();
      await page.getByText('api set to 3 replicas.').waitFor();
      const app = await cp.api<AppResource>('GET', '/api/v1/projects/bank/apps/accounts');
      expect(app.body.spec.workloads[0]!.replicas).toBe(3);
      await waitFor('3 ready accounts instances listed', async () => (await ready.count()) === 3, {
        timeoutMs: 90_000,
      });
      await waitFor(
        '3 accounts instances ready (API)',
        async () =>
          (await instances('accounts')).filter((i) => i.ready && i.phase !== 'quarantined').length === 3,
        { timeoutMs: 60_000 },
      );
      await page.getByTestId('scale-status').getByText('3 of 3 ready').waitFor({ timeout: 30_000 });
      await checkPageWords('app page');
      // Every ready instance charts its request rate from several samples, and the traffic shows:
      // some instance has a rate above zero and plots its latency (p50 and p99).
      const ids = (await instances('accounts'))
        .filter((i) => i.ready && i.phase !== 'quarantined')
        .map((i) => i.id);
      let seen = '';
      await waitFor(
        'the app page charts each accounts instance from several samples',
        async () => {
          const charts = await Promise.all(
            ids.map(async (id) => ({
              id,
              rate: await chartOf(id, 'Request rate'),
              lat: await chartOf(id, 'Latency'),
            })),
          );
          seen = JSON.stringify(charts);
          const plotted = charts.every(
            (c) => (c.rate.points[0] ?? 0) >= 3 && /\d req\/s$/.test(c.rate.values[0] ?? ''),
          );
          const busy = charts.some(
            (c) =>
              Number(/([\d.]+) req\/s$/.exec(c.rate.values[0] ?? '')?.[1] ?? 0) > 0 &&
              c.lat.points.length === 2 &&
              c.lat.points.every((n) => n >= 3) &&
              c.lat.values.every((v) => /\d ms$/.test(v)),
          );
          return plotted && busy;
        },
        { timeoutMs: 60_000, intervalMs: 1000 },
      ).catch((err: unknown) => {
        throw new Error(`${String(err)}; the charts show: ${seen}`);
      });
      await shot('app', true);
    }, 150_000);

    it('an injected fault appears as an incident on the overview without a reload', async () => {
      await page.getByRole('link', { name: 'Overview', exact: true }).click();
      await page.getByTestId('apps-by-health').waitFor();
      await page.evaluate(() => ((globalThis as unknown as { __noReload: boolean }).__noReload = true));
      const victim = (await instances('payments')).find((i) => i.ready)!;
      const r = await httpRequest(`http://${victim.ip}:${victim.ports.http}/admin/fault`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ mode: 'hang' }),
      });
      expect(r.status).toBeLessThan(300);
      const t0 = Date.now();
      const row = page.getByTestId('open-incidents').locator('tr', { hasText: victim.id });
      await row.waitFor({ timeout: 45_000 });
      const seenAfterMs = Date.now() - t0;
      // Still the same document: the incident arrived live.
      expect(await page.evaluate(() => (globalThis as unknown as { __noReload?: boolean }).__noReload)).toBe(
        true,
      );
      expect(seenAfterMs).toBeLessThan(45_000);
      await page.getByText('Recent automatic actions').scrollIntoViewIfNeeded();
      // The platform's own actions on it, from GET /api/v1/actions, also live.
      await page
        .getByTestId('recent-actions')
        .locator('li', { hasText: victim.id })
        .filter({ hasText: 'Isolated' })
        .first()
        .waitFor({ timeout: 20_000 });
      await page.evaluate(() =>
        (globalThis as unknown as { scrollTo: (x: number, y: number) => void }).scrollTo(0, 0),
      );
      // Degraded (the quarantined instance) beside "N of N ready" carries its reason.
      const payments = page.getByTestId('apps-by-health').locator('li[data-app="bank/payments"]');
      await page.locator('li[data-app="bank/payments"][data-health=degraded]').waitFor({ timeout: 30_000 });
      await payments.getByText(/kept out of traffic for diagnosis \(hang\)/).waitFor({ timeout: 30_000 });
      await checkPageWords('overview with an incident');
      await shot('overview-incident');

      // The incident's page: timeline, signature, evidence, then delete the quarantined instance.
      await row.getByRole('link').first().click();
      await page.getByTestId('timeline').getByText('Isolated', { exact: true }).waitFor({ timeout: 20_000 });
      // The action in words, not the API's 'isolate'.
      await page.getByText('Taken out of traffic', { exact: true }).first().waitFor({ timeout: 10_000 });
      // Evidence collection runs after isolation and takes seconds (longer on a loaded machine).
      await page.getByRole('button', { name: 'Download evidence (.tar.gz)' }).waitFor({ timeout: 150_000 });
      const download = page.waitForEvent('download');
      await page.getByRole('button', { name: 'Download evidence (.tar.gz)' }).click();
      const file = await (await download).path();
      expect(fs.statSync(file).size).toBeGreaterThan(100);
      // Each timeline step once: no two rows with the same event and text.
      const rows = await page
        .getByTestId('timeline')
        .locator(':scope > li')
        .evaluateAll((lis: { getAttribute: (n: string) => string | null; textContent: string | null }[]) =>
          lis.map((li) => `${li.getAttribute('data-event')}|${li.textContent ?? ''}`),
        );
      expect(rows.length).toBeGreaterThanOrEqual(3);
      expect(new Set(rows).size, rows.join('\n')).toBe(rows.length);
      expect(new Set(rows.map((r) => r.split('|')[0])).size, rows.join('\n')).toBe(rows.length);
      await checkPageWords('incident');
      await shot('incident');
      await page.getByRole('button', { name: 'Delete', exact: true }).click();
      await page.getByRole('alertdialog').getByRole('button', { name: 'Delete' }).click();
      await page.locator('.page-header .state-tag', { hasText: 'Resolved' }).waitFor({ timeout: 30_000 });
      await page.getByRole('link', { name: 'Incidents', exact: true }).first().click();
      await page.getByTestId('incidents').waitFor();
      await shot('incidents');
    }, 300_000);

    it('an invalid manifest is rejected with the error shown at its line; a valid edit shows a dry-run diff and applies', async () => {
      await page.goto(`${cp.url}/console/manifests/bank/ledger`);
      const editor = page.getByLabel('Manifest YAML');
      await editor.waitFor();
      const original = await editor.inputValue();
      const lines = original.split('\n');
      const idx = lines.findIndex((l) => /^\s*replicas: \d+/.test(l));
      expect(idx).toBeGreaterThanOrEqual(0);
      const bad = [...lines];
      bad[idx] = bad[idx]!.replace(/replicas: \d+/, 'replicas: -3');
      await editor.fill(bad.join('\n'));
      await page.getByTestId('dry-run').click();
      const errors = page.getByTestId('manifest-errors');
      await errors.waitFor();
      const line = idx + 1;
      await errors.locator(`[data-line="${line}"]`).waitFor();
      expect(await errors.textContent()).toMatch(/replicas/);
      expect(await page.locator(`.gl-bad[data-line="${line}"]`).count()).toBe(1);
      expect(await page.getByTestId('apply').isDisabled()).toBe(true);
      await shot('manifests-error');

      const good = [...lines];
      good[idx] = good[idx]!.replace(/replicas: \d+/, 'replicas: 3');
      await editor.fill(good.join('\n'));
      await page.getByTestId('dry-run').click();
      const plan = page.getByTestId('plan');
      await plan.waitFor();
      expect(await plan.textContent()).toMatch(/replicas/);
      await shot('manifests-diff');
      await page.getByTestId('apply').click();
      await page.getByText('Applied', { exact: true }).waitFor();
      await waitFor(
        'ledger runs 3 ready instances after the applied manifest',
        async () =>
          (await instances('ledger')).filter((i) => i.ready && i.phase !== 'quarantined').length === 3,
        { timeoutMs: 90_000 },
      );
      const ledger = await cp.api<AppResource>('GET', '/api/v1/projects/bank/apps/ledger');
      expect(ledger.body.spec.workloads[0]!.replicas).toBe(3);
    }, 180_000);

    it('a workload whose command does not exist: the app page and the overview say what happened and what to do', async () => {
      const broken = [
        'apiVersion: bulwark.io/v1',
        'kind: App',
        'metadata: { name: broken, project: bank }',
        'spec:',
        '  workloads:',
        '    - name: api',
        '      type: service',
        '      replicas: 1',
        '      run: { command: [no-such-command-bulwark-e2e] }',
        '',
      ].join('\n');
      const applied = await cp.api('POST', '/api/v1/apply', broken, true);
      expect(applied.status, JSON.stringify(applied.body)).toBe(200);
      try {
        // What the API says (the raw text the console must not show as its message).
        let raw = '';
        await waitFor(
          'the broken instance reports its start failure',
          async () => {
            const r = await cp.api<{ items: InstanceStatus[] }>(
              'GET',
              '/api/v1/projects/bank/apps/broken/instances',
            );
            raw = r.body.items[0]?.message ?? '';
            return raw.includes('start-failed');
          },
          { timeoutMs: 60_000 },
        );
        await page.goto(`${cp.url}/console/apps/bank/broken`);
        const msg = page.getByTestId('instance-message').first();
        await msg.getByText("the command 'no-such-command-bulwark-e2e' does not exist on this host").waitFor({
          timeout: 30_000,
        });
        // The original is one click away, under "Technical details", and what to do is said.
        await msg.getByText('Technical details').click();
        expect(await msg.locator('code.original').innerText()).toContain('start-failed');
        expect(await msg.innerText()).toMatch(/Fix run\.command/);
        await msg.getByText('Technical details').click();
        // The header says why the app is not healthy, in words, and with times in the browser's zone.
        const reason = page.getByTestId('health-reason');
        await reason
          .getByText(/keeps failing and waits before its next restart/)
          .waitFor({ timeout: 30_000 });
        await checkPageWords('app page of a broken app');
        await shot('app-start-failed', true);
        await page.getByRole('link', { name: 'Overview', exact: true }).click();
        const row = page.getByTestId('apps-by-health').locator('li[data-app="bank/broken"]');
        await row
          .getByText(/does not exist on this host/)
          .first()
          .waitFor({ timeout: 30_000 });
        await checkPageWords('overview with a broken app');
        // An API error page: what happened and what to do, the code only under Technical details.
        await page.goto(`${cp.url}/console/apps/bank/no-such-app`);
        const failed = page.locator('.state-error');
        await failed.first().getByText('It does not exist (any more).').waitFor({ timeout: 30_000 });
        expect(await failed.first().getAttribute('data-code')).toBe('NotFound');
        await failed
          .first()
          .getByText(/go back to the list/)
          .waitFor();
        await checkPageWords('a missing app');
        await failed.first().getByText('Technical details').click();
        expect(await failed.first().locator('code.original').innerText()).toMatch(/^NotFound \(HTTP 404\): /);
      } finally {
        await cp.api('DELETE', '/api/v1/projects/bank/apps/broken');
      }
    }, 180_000);

    it('reconnects after the control plane is SIGKILLed and restarted, and keeps showing live data', async () => {
      await page.getByRole('link', { name: 'Overview', exact: true }).click();
      await page.locator('[data-testid=live-state][data-state=live]').waitFor();
      await page.getByTestId('apps-by-health').waitFor();
      await page.getByTestId('recent-actions').waitFor();
      const port = Number(new URL(cp.url).port);
      await cp.kill('SIGKILL');
      await page.locator('[data-testid=live-state][data-state=reconnecting]').waitFor({ timeout: 30_000 });
      await page.getByText('Lost the connection to the control plane').waitFor();
      try {
        // The next poll (5 s) fails: the page keeps its data and says so in words.
        await page
          .locator('.stale-note', { hasText: 'Could not refresh: The control plane did not answer.' })
          .first()
          .waitFor({ timeout: 20_000 })
          .catch(async (err: unknown) => {
            throw new Error(`${String(err)}; the page shows: ${await visibleText()}`);
          });
        await page.getByTestId('apps-by-health').waitFor();
        await checkPageWords('overview while the control plane is down');
      } finally {
        // Restarted whatever the check said: its instances (and their netns) are stopped with it.
        cp = await startControlPlane({ dataDir, port, gatewayPort: cp.gatewayPort, token: cp.token });
      }
      await page.locator('[data-testid=live-state][data-state=live]').waitFor({ timeout: 30_000 });
      // A change made after the restart reaches the open page: the wanted count follows the scale.
      const scaled = await cp.api('POST', '/api/v1/projects/bank/apps/ledger/scale', { replicas: 2 });
      expect(scaled.status, JSON.stringify(scaled.body)).toBe(200);
      const ledgerRow = page.getByTestId('apps-by-health').locator('li', { hasText: 'bank/ledger' });
      let shown = '';
      await waitFor(
        'overview shows ledger wanting 2 replicas after the restart',
        async () => /of 2 ready/.test((shown = (await ledgerRow.textContent()) ?? '')),
        { timeoutMs: 90_000 },
      ).catch((err: unknown) => {
        throw new Error(`${String(err)}; the page shows: ${shown}`);
      });
      expect(
        browser.errors.filter((e) => !/Failed to load resource|ERR_CONNECTION_REFUSED|net::/.test(e)),
      ).toEqual([]);
    }, 180_000);
  },
);
