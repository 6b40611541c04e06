/**
 * A real OpenTelemetry Collector (core OTLP receiver + debug exporter, built by
 * scripts/otel/build.sh) on a free loopback port, and the spans it received,
 * read back from the debug exporter's detailed output.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/util/ports.ts';
import { waitFor } from '../../src/util/time.ts';

export const OTELCOL_BIN = path.join(
  process.env.BULWARK_OTELCOL_CACHE ?? '/var/cache/bulwark/otelcol',
  'bin/bulwark-otelcol',
);

export interface ReceivedSpan {
  traceId: string;
  parentId: string;
  id: string;
  name: string;
  kind: string;
  status: string;
  attributes: Record<string, string>;
  resource: Record<string, string>;
}

export interface Collector {
  /** Base URL of the OTLP/HTTP receiver (POST {url}/v1/traces). */
  url: string;
  spans(): ReceivedSpan[];
  stop(): Promise<void>;
}

/** `-> key: Str(value)` lines into a record (the type wrapper dropped). */
function attrs(lines: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of lines) {
    const m = /^\s*-> ([^:]+): \w+\((.*)\)$/.exec(l);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

export function parseDebugSpans(text: string): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of text.split(/ResourceSpans #\d+/).slice(1)) {
    const [head = '', ...spans] = rs.split(/\nSpan #\d+\n/);
    const resource = attrs(head.split('\n'));
    for (const block of spans) {
      const lines = block.split('\n');
      const field = (name: string): string =>
        lines
          .find((l) => l.trim().startsWith(`${name} `))
          ?.split(': ')
          .slice(1)
          .join(': ')
          .trim() ?? '';
      const at = lines.findIndex((l) => l.startsWith('Attributes:'));
      out.push({
        traceId: field('Trace ID'),
        parentId: field('Parent ID'),
        id: field('ID'),
        name: field('Name'),
        kind: field('Kind'),
        status: field('Status code'),
        attributes: at >= 0 ? attrs(lines.slice(at + 1)) : {},
        resource,
      });
    }
  }
  return out;
}

export async function startCollector(): Promise<Collector> {
  if (!fs.existsSync(OTELCOL_BIN))
    throw new Error(
      `${OTELCOL_BIN} is missing: run 'bash scripts/otel/build.sh' (about 5 minutes, Go module proxy)`,
    );
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bw-otelcol-'));
  const cfg = path.join(dir, 'config.yaml');
  fs.writeFileSync(
    cfg,
    [
      'receivers:',
      '  otlp:',
      '    protocols:',
      '      http:',
      `        endpoint: 127.0.0.1:${port}`,
      'exporters:',
      '  debug:',
      '    verbosity: detailed',
      'service:',
      '  telemetry:',
      '    metrics:',
      '      level: none', // no :8888 listener to collide with other tests
      '  pipelines:',
      '    traces:',
      '      receivers: [otlp]',
      '      exporters: [debug]',
      '',
    ].join('\n'),
  );
  let text = '';
  const child: ChildProcess = spawn(OTELCOL_BIN, ['--config', `file:${cfg}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  await waitFor('the collector to be ready', () => text.includes('Everything is ready'), {
    timeoutMs: 20_000,
  }).catch((err: Error) => {
    child.kill('SIGKILL');
    throw new Error(`${err.message}; collector output:\n${text.slice(-3000)}`);
  });
  return {
    url: `http://127.0.0.1:${port}`,
    spans: () => parseDebugSpans(text),
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        child.kill('SIGKILL');
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
