import { describe, expect, it } from 'vitest';
import type { TopologyNode } from '../api/types.ts';
import { translate } from '../i18n/translate.ts';
import { endpointMetrics, explainNode, roleOf, splitAddress } from './roles.ts';

const t = (k: Parameters<typeof translate>[1], v?: Record<string, string | number>): string =>
  translate('en', k, v);
const node = (id: string, extra: Partial<TopologyNode> = {}): TopologyNode => ({
  id,
  kind: id.startsWith('app:') ? 'app' : id.startsWith('instance:') ? 'instance' : 'external',
  label: id.replace(/^\w+:/, ''),
  health: 'ok',
  metrics: { rps: 0, errorRate: 0, p50Ms: null, p99Ms: null },
  ...extra,
});

describe('topology node roles', () => {
  it('the loopback client node is "clients on this host (127.0.0.1)"', () => {
    // The L7 collector's caller id for a request from this host: `external:${clientIp}`.
    const x = explainNode(node('external:127.0.0.1'), t);
    expect(x.role).toBe('local-clients');
    expect(`${x.title} (${x.subtitle})`).toBe('Clients on this host (127.0.0.1)');
    expect(x.description).toMatch(/outside the platform/);
  });

  it('the site gateway is named as the gateway, with its site and address', () => {
    // The builder gives the gateway node its site and the label observability.ts makes.
    const x = explainNode(
      node('external:127.0.0.1:38253', { site: 'local', label: 'site gateway local (HAProxy)' }),
      t,
    );
    expect(x.role).toBe('gateway');
    expect(x.title).toBe('Site gateway');
    expect(x.subtitle).toBe('local · 127.0.0.1:38253');
    expect(x.description).toContain('site gateway local (HAProxy)');
  });

  it('other addresses: callers without a port, servers with one', () => {
    expect(roleOf(node('external:10.1.2.3'))).toBe('clients');
    expect(roleOf(node('external:10.1.2.3:5432'))).toBe('external-service');
    expect(explainNode(node('external:10.1.2.3:5432'), t).description).toBe(
      'A server at 10.1.2.3:5432 outside the platform that an instance connects to.',
    );
    expect(roleOf(node('external:::1'))).toBe('local-clients');
  });

  it('apps and instances say whose they are', () => {
    expect(
      explainNode(node('app:bank/gateway', { project: 'bank', app: 'gateway', label: 'bank/gateway' }), t)
        .description,
    ).toBe('App gateway of project bank: its instances taken together.');
    expect(explainNode(node('instance:x', { parent: 'app:bank/gateway' }), t).description).toBe(
      'One running process of bank/gateway.',
    );
  });

  it('splits addresses', () => {
    expect(splitAddress('[::1]:80')).toEqual({ host: '::1', port: '80' });
    expect(splitAddress('10.0.0.5')).toEqual({ host: '10.0.0.5' });
  });
});

describe('endpointMetrics', () => {
  it("an outside node's rate is what its edges carried (the API measures only apps and instances)", () => {
    const client = node('external:127.0.0.1');
    const edge = (to: string, rps: number, errorRate: number, p99Ms: number) => ({
      id: `external:127.0.0.1->${to}`,
      from: 'external:127.0.0.1',
      to,
      layers: ['l7' as const],
      health: 'ok' as const,
      metrics: { rps, errorRate, p50Ms: 1, p99Ms },
    });
    const m = endpointMetrics(client, [
      edge('app:bank/gateway', 3, 0.1, 40),
      edge('app:shop/web', 1, 0.5, 90),
    ]);
    expect(m.rps).toBe(4);
    expect(m.errorRate).toBeCloseTo((3 * 0.1 + 1 * 0.5) / 4);
    expect(m.p99Ms).toBe(90);
    const app = node('app:bank/gateway', { metrics: { rps: 7, errorRate: 0, p50Ms: 2, p99Ms: 3 } });
    expect(endpointMetrics(app, [])).toBe(app.metrics);
  });
});
