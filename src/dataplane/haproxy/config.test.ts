import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { logFormat, newLogKey, renderConfig, pathPrefixFor, type RenderInput } from './config.ts';

const input = (dir: string) => ({
  binds: [{ address: '127.0.0.1', port: 18080 }],
  statsSocketPath: path.join(dir, 'stats.sock'),
  syslog: { host: '127.0.0.1', port: 5514 },
  mapDir: dir,
  backends: [
    {
      name: 'web.shop.acme',
      aliases: ['shop.acme'],
      checkPath: '/healthz',
      serverTimeoutMs: 5000,
      servers: [
        { name: 'i1', address: '127.0.0.1', port: 9001, weight: 50, state: 'ready' as const },
        { name: 'i2', address: '127.0.0.1', port: 9002, weight: 100, state: 'maint' as const },
      ],
    },
    { name: 'api.shop.acme', aliases: [], servers: [] },
  ],
});

describe('renderConfig', () => {
  it('bounds the wait for a response per backend, and rejects a nonsense timeout', () => {
    const cfg = renderConfig(input('/tmp')).cfg;
    const web = cfg.slice(cfg.indexOf('backend web.shop.acme'), cfg.indexOf('backend api.shop.acme'));
    expect(web).toContain('  timeout server 5000ms');
    expect(cfg.slice(cfg.indexOf('backend api.shop.acme'))).not.toContain('timeout server');
    const bad = input('/tmp');
    bad.backends[0]!.serverTimeoutMs = 0;
    expect(() => renderConfig(bad)).toThrow(
      /serverTimeoutMs of backend web.shop.acme must be a positive integer/,
    );
  });

  /** Renders `input(dir)` changed by `edit` into a fresh directory and runs `haproxy -c` on it. */
  const checked = (edit: (dir: string) => Partial<RenderInput> = () => ({})): string => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bw-cfg-'));
    try {
      const r = renderConfig({ ...input(dir), ...edit(dir) });
      for (const [n, c] of Object.entries(r.files)) writeFileSync(path.join(dir, n), c);
      writeFileSync(path.join(dir, 'haproxy.cfg'), r.cfg);
      expect(() =>
        execFileSync('/usr/sbin/haproxy', ['-c', '-q', '-f', path.join(dir, 'haproxy.cfg')]),
      ).not.toThrow();
      return r.cfg.replaceAll(dir, '<dir>');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('renders a configuration haproxy -c accepts', () => {
    expect(checked()).toContain('  server receiver 127.0.0.1:5514');
  });

  it('ships logs through the ring to a Unix socket when the receiver listens on one, and haproxy -c accepts it', () => {
    const cfg = checked((dir) => ({ syslog: { transport: 'unix', path: path.join(dir, 'log.sock') } }));
    expect(cfg).toContain('  server receiver unix@<dir>/log.sock');
    expect(cfg).toContain('  log ring@bulwark_logs len 4096 local0 info');
  });

  it('writes the log key after the tag of every request line, and haproxy -c accepts it', () => {
    const key = newLogKey();
    expect(key).toMatch(/^[0-9a-f]{32}$/);
    expect(newLogKey()).not.toBe(key);
    const cfg = checked(() => ({ logKey: key }));
    expect(cfg).toContain(`  log-format "bwlog1 ${key} %tr %ci `);
    expect(logFormat(key).slice(`bwlog1 ${key}`.length)).toBe(logFormat().slice('bwlog1'.length));
    expect(() => renderConfig({ ...input('/x'), logKey: 'x y' })).toThrow(
      /logKey must be 32 lower-case hex digits/,
    );
  });

  it('refuses a log socket path HAProxy or the kernel cannot take, naming the fix', () => {
    const unix = (p: string) => renderConfig({ ...input('/tmp'), syslog: { transport: 'unix', path: p } });
    expect(() => unix('log.sock')).toThrow(/syslog.path must be an absolute path/);
    expect(() => unix('/tmp/with space/log.sock')).toThrow(/may only use \[A-Za-z0-9._\/\+-\]/);
    expect(() => unix(`/tmp/${'d'.repeat(120)}/log.sock`)).toThrow(
      /longer than a Unix socket path may be \(107\): use a shorter work directory or the tcp log transport/,
    );
  });

  it('renders one thread per pinned CPU, and cpu-map only where HAProxy 2.6 applies it (two threads or more)', () => {
    const one = renderConfig({ ...input('/x'), options: { cpus: [1] } }).cfg;
    expect(one).toContain('  nbthread 1\n');
    expect(one).not.toContain('cpu-map');
    const two = renderConfig({ ...input('/x'), options: { cpus: [3, 2] } }).cfg;
    expect(two).toContain('  nbthread 2\n  cpu-map auto:1/1-2 2 3\n');
    expect(renderConfig(input('/x')).cfg).not.toMatch(/nbthread|cpu-map/);
  });

  it('rejects CPU lists that cannot be pinned, naming the option', () => {
    for (const [cpus, msg] of [
      [[], /cpus: give 1 to 64 CPU numbers/],
      [[-1], /cpus: '-1' is not a CPU number/],
      [[1.5], /cpus: '1.5' is not a CPU number/],
      [[1, 1], /cpus: 1,1 lists a CPU twice/],
    ] as const) {
      expect(() => renderConfig({ ...input('/x'), options: { cpus: [...cpus] } })).toThrow(msg);
    }
  });

  it('maps names, aliases and path prefixes to backends', () => {
    const r = renderConfig(input('/x'));
    expect(r.files['hosts.map']).toBe(
      'web.shop.acme web.shop.acme\nshop.acme web.shop.acme\napi.shop.acme api.shop.acme\n',
    );
    expect(r.files['paths.map']).toBe('/acme/shop/web web.shop.acme\n/acme/shop/api api.shop.acme\n');
  });
  it('renders current servers with weight, check and disabled for maint', () => {
    const r = renderConfig(input('/x'));
    expect(r.cfg).toContain(
      'server i1 127.0.0.1:9001 weight 50 check inter 1000 fall 2 rise 1 pool-max-conn 1000 pool-purge-delay 5s\n',
    );
    expect(r.cfg).toContain(
      'server i2 127.0.0.1:9002 weight 100 check inter 1000 fall 2 rise 1 pool-max-conn 1000 pool-purge-delay 5s disabled\n',
    );
    expect(r.cfg).toContain('option httpchk GET /healthz');
  });
  it('retries 5xx answers and disables layer-7 retries for unsafe methods without an Idempotency-Key', () => {
    const r = renderConfig(input('/x'));
    expect(r.cfg).toContain('retry-on conn-failure empty-response response-timeout 500 502 503 504\n');
    expect(r.cfg).toContain('http-request disable-l7-retry if !bw_safe_method !bw_idem_key');
  });
  it('rejects a backend name HAProxy cannot use, naming the field', () => {
    const bad = { ...input('/x'), backends: [{ name: 'web shop', aliases: [], servers: [] }] };
    expect(() => renderConfig(bad)).toThrow(/backend name 'web shop'/);
  });
  it('rejects an alias routed to two backends', () => {
    const bad = {
      ...input('/x'),
      backends: [
        { name: 'a.b.c', aliases: ['x.y'], servers: [] },
        { name: 'd.b.c', aliases: ['x.y'], servers: [] },
      ],
    };
    expect(() => renderConfig(bad)).toThrow(/aliases must be unique/);
  });
  it('derives the path prefix from a three-part service name only', () => {
    expect(pathPrefixFor('web.shop.acme')).toBe('/acme/shop/web');
    expect(pathPrefixFor('shop.acme')).toBeUndefined();
  });
});
