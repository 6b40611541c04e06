/**
 * `bulwark incidents|incident|evidence|quarantine` against a real control
 * plane HTTP server (in-process, on a loopback port) over a real PGlite store.
 * Fault isolation is the fake behind the IsolationApi seam.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EvidenceBundle } from '../isolation/evidence/types.ts';
import type { Incident } from '../model/incidents.ts';
import { FakeIsolation, writeBundle } from '../controlplane/api/testdata/isolation-fakes.ts';
import { runCli, startTestApi, type TestApi } from '../controlplane/api/testdata/test-api.ts';
import type { Store } from '../store/store.ts';
import { sampleIncident } from '../store/testdata/incidents.ts';
import { EXIT } from './exit-codes.ts';

const TOKEN = 'bwk_test_cli_incidents_0123456789ab';

let dir: string;
let store: Store;
let api: TestApi;
let isolation: FakeIsolation;
let url: string;
let bundle: { dir: string; manifest: EvidenceBundle };
const recent = new Date(Date.now() - 90_000).toISOString();

beforeAll(async () => {
  api = await startTestApi({
    token: TOKEN,
    prefix: 'bulwark-cli-incidents-',
    listen: true,
    deps: (s) => {
      isolation = new FakeIsolation(s);
      return { isolation };
    },
  });
  ({ dir, store, url } = api);

  bundle = writeBundle(path.join(dir, 'evidence'), 'payments-api-0');
  await store.putIncident(
    sampleIncident({
      id: 'inc-20260102-cli001',
      evidenceDir: bundle.dir,
      detectedAt: recent,
      createdAt: recent,
      durations: { detectMs: 900, isolateMs: 41.6, replaceMs: 2400, mttrMs: 3300.4 },
    }),
  );
  await store.putIncident(
    sampleIncident({
      id: 'inc-20260102-cli002',
      app: 'ledger',
      instanceId: 'ledger-api-1',
      signature: 'event-loop-stall',
      state: 'open',
      action: { kind: 'alert', reason: 'last healthy instance' },
      durations: {},
      createdAt: new Date().toISOString(),
    }),
  );
}, 60_000);

afterAll(async () => {
  await api?.close();
});

const cli = (...args: string[]): ReturnType<typeof runCli> => runCli(url, TOKEN, args);

describe('bulwark incidents', () => {
  it('prints a table newest first with rounded durations and "-" for the ones not known yet', async () => {
    const r = await cli('incidents', '-p', 'bank');
    expect(r.code).toBe(EXIT.ok);
    const lines = r.out.split('\n');
    expect(lines[0]).toMatch(
      /^ID\s+APP\s+INSTANCE\s+SIGNATURE\s+STATE\s+ACTION\s+DETECTED\s+ISOLATE-MS\s+MTTR-MS$/,
    );
    expect(lines[1]).toMatch(
      /^inc-20260102-cli002\s+bank\/ledger\s+ledger-api-1\s+event-loop-stall\s+open\s+alert\s+\S+\s+-\s+-$/,
    );
    expect(lines[2]).toMatch(
      /^inc-20260102-cli001\s+bank\/payments\s+payments-api-0\s+http-5xx-burst\s+isolated\s+isolate\s+\d+[sm]\s+42\s+3300$/,
    );
    expect(lines).toHaveLength(3);
  });

  it('passes the filters and prints JSON with -o json', async () => {
    const r = await cli('incidents', '--app', 'ledger', '--state', 'open', '--limit', '5', '-o', 'json');
    expect(r.code).toBe(EXIT.ok);
    const items = (JSON.parse(r.out) as { items: Incident[] }).items;
    expect(items.map((i) => i.id)).toEqual(['inc-20260102-cli002']);
  });

  it('exits 4 (invalid) with the field and the fix for an unknown state, and 2 (usage) for a bad --limit', async () => {
    const bad = await cli('incidents', '--state', 'closed');
    expect(bad.code).toBe(EXIT.invalid);
    expect(bad.err).toContain('querystring.state');
    expect(bad.err).toContain('fix: one of: open, isolated, mitigated, resolved');
    const limit = await cli('incidents', '--limit', 'abc');
    expect(limit.code).toBe(EXIT.usage);
    expect(limit.err).toContain('--limit abc: must be an integer from 1 to 1000');
  });
});

describe('bulwark incident', () => {
  it('describes the incident with its timeline offsets and every evidence part status', async () => {
    const r = await cli('incident', 'inc-20260102-cli001');
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toContain('Incident:     inc-20260102-cli001');
    expect(r.out).toContain('Action:       isolate: rule http-5xx-burst');
    expect(r.out).toContain('detect 900 ms   isolate 42 ms   replace 2400 ms   mttr 3300 ms');
    expect(r.out).toMatch(/2026-01-02T03:04:05\.900Z\s+\+0\.900s\s+detected\s+http-5xx-burst/);
    expect(r.out).toContain(`Evidence:     ${bundle.dir}`);
    expect(r.out).toMatch(/\n\s+cgroup\s+skipped\s+-\s+4\s+no cgroup \(unprivileged run\)/);
    expect(r.out).toMatch(/\n\s+profile\s+failed\s+-\s+4\s+inspector did not answer/);
    expect(r.out).toMatch(/\n\s+logs\s+ok\s+logs\/stderr\.log/);
  });

  it('says evidence is not collected yet instead of failing', async () => {
    const r = await cli('incident', 'inc-20260102-cli002');
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toContain('Evidence:     not collected yet');
  });

  it('prints the incident as YAML with -o yaml', async () => {
    const r = await cli('incident', 'inc-20260102-cli002', '-o', 'yaml');
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toContain('id: inc-20260102-cli002');
    expect(r.out).toContain('signature: event-loop-stall');
  });

  it('exits 3 (not found) naming the id, in-process and as a real process', async () => {
    const r = await cli('incident', 'inc-20990101-nope');
    expect(r.code).toBe(EXIT.notFound);
    expect(r.err).toContain("incident 'inc-20990101-nope' not found");
    const code = await new Promise<number | null>((resolve) => {
      const child = execFile(
        process.execPath,
        [
          path.join(import.meta.dirname, 'main.ts'),
          'incident',
          'inc-20990101-nope',
          '--server',
          url,
          '--token',
          TOKEN,
        ],
        { timeout: 30_000 },
      );
      child.on('exit', (c) => resolve(c));
    });
    expect(code).toBe(EXIT.notFound);
  });

  it('exits 2 (usage) without an id', async () => {
    expect((await cli('incident')).code).toBe(EXIT.usage);
  });
});

describe('bulwark evidence', () => {
  it('downloads the bundle to --output as a tar.gz holding the manifest', async () => {
    const file = path.join(dir, 'out', 'bundle.tar.gz');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const r = await cli('evidence', 'inc-20260102-cli001', '--output', file);
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toContain(`to ${file}`);
    const entries = execFileSync('tar', ['-tzf', file], { encoding: 'utf8' });
    expect(entries).toContain(`${path.basename(bundle.dir)}/manifest.json`);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['bundle.tar.gz']);
  });

  it('exits 3 and writes nothing when the evidence is not collected yet', async () => {
    const file = path.join(dir, 'none.tar.gz');
    const r = await cli('evidence', 'inc-20260102-cli002', '-o', file);
    expect(r.code).toBe(EXIT.notFound);
    expect(r.err).toContain('evidence not collected yet');
    expect(fs.existsSync(file)).toBe(false);
  });
});

describe('bulwark quarantine', () => {
  it('releases a quarantined instance and reports the resolved incident; -o json prints it', async () => {
    isolation.quarantined.add('payments-api-0');
    const r = await cli('quarantine', 'release', 'payments-api-0');
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toBe(
      'instance payments-api-0 released back into traffic; incident inc-20260102-cli001 is resolved',
    );
    isolation.quarantined.add('ledger-api-1');
    const d = await cli('quarantine', 'delete', 'ledger-api-1', '-o', 'json');
    expect(d.code).toBe(EXIT.ok);
    expect((JSON.parse(d.out) as Incident).timeline.at(-1)?.event).toBe('deleted');
  });

  it('exits 5 (conflict) when not quarantined, 3 for an unknown instance, 2 for an unknown action', async () => {
    expect((await cli('quarantine', 'release', 'payments-api-0')).code).toBe(EXIT.conflict);
    const missing = await cli('quarantine', 'delete', 'ghost-0');
    expect(missing.code).toBe(EXIT.notFound);
    expect(missing.err).toContain('ghost-0');
    const usage = await cli('quarantine', 'free', 'x');
    expect(usage.code).toBe(EXIT.usage);
    expect(usage.err).toContain('release|delete');
  });
});
