import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { renderAgentManifest } from './kubernetes-manifest.ts';
import { localAddressesOfFibTrie } from './netns-scan.ts';
import { RemoteAgents } from './remote-agents.ts';
import { AgentReportError, validateAgentReport, type AgentReport } from './report.ts';

const flow = {
  client: '10.213.0.5',
  server: '10.213.0.1',
  port: 8080,
  opened: 1,
  accepted: 0,
  closedClient: 0,
  closedServer: 0,
  lifetimeMsSum: 0,
  failed: 0,
  bytesToServer: 100,
  bytesToClient: 300,
  retransmits: 0,
  resets: 0,
  clientPids: [],
  established: 1,
};
const report = (over: Partial<AgentReport> = {}): AgentReport => ({
  site: 'dc2',
  node: 'node-a',
  status: { state: 'running', intervals: 3, restarts: 0 },
  interval: { at: '2026-12-02T00:00:00.000Z', intervalMs: 1000, flows: [flow] },
  ...over,
});

describe('agent report validation', () => {
  it('accepts a report and a status-only one', () => {
    expect(validateAgentReport(report())).toMatchObject({ site: 'dc2', node: 'node-a' });
    const { interval: _iv, ...statusOnly } = report();
    expect(validateAgentReport(statusOnly).interval).toBeUndefined();
  });

  it('names every bad field with its fix and refuses the whole report', () => {
    const bad = {
      ...report(),
      site: 'DC 2',
      extra: true,
      interval: {
        at: 'yesterday',
        intervalMs: 5,
        flows: [{ ...flow, port: 0, client: '10.0.0.999', bytesToServer: -1, rttUs: 'slow' }],
      },
    };
    let err: unknown;
    try {
      validateAgentReport(bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AgentReportError);
    const paths = (err as AgentReportError).issues.map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'extra',
        'site',
        'interval.at',
        'interval.intervalMs',
        'interval.flows[0].client',
        'interval.flows[0].port',
        'interval.flows[0].bytesToServer',
        'interval.flows[0].rttUs',
      ]),
    );
    expect((err as AgentReportError).issues.every((i) => i.fix.length > 0)).toBe(true);
    expect(() => validateAgentReport('x')).toThrow(/must be a JSON object/);
  });
});

describe('remote agents', () => {
  const inventory = {
    instances: [
      { id: 'shop.web.api-0-aaaaaa', project: 'shop', app: 'web', ip: '10.213.0.5', ports: { http: 3000 } },
    ],
    gatewayBinds: [{ address: '10.213.0.1', port: 8080 }],
    gatewayNodeId: 'external:10.213.0.1:8080',
  };

  it('attributes flows with the inventory it holds and drops what has no endpoint of the site', () => {
    const r = new RemoteAgents();
    const noise = { ...flow, client: '192.0.2.1', server: '192.0.2.2', port: 22 };
    const iv = r.ingest(
      report({ interval: { at: '2026-12-02T00:00:00.000Z', intervalMs: 1000, flows: [flow, noise] } }),
      inventory,
      0,
    );
    expect(iv?.flows).toHaveLength(1);
    expect(iv?.flows[0]).toMatchObject({
      from: { kind: 'instance', instanceId: 'shop.web.api-0-aaaaaa' },
      to: { kind: 'gateway', nodeId: 'external:10.213.0.1:8080' },
      bytesToServer: 100,
      rttUs: undefined,
    });
    expect(r.list('dc2', 1000)).toMatchObject([
      { site: 'dc2', node: 'node-a', state: 'running', reports: 1 },
    ]);
    expect(r.running('dc2', 1000)).toBe(true);
  });

  it('reports a node gone quiet as failed, saying for how long', () => {
    const r = new RemoteAgents();
    r.ingest(report(), inventory, 0);
    const [st] = r.list(undefined, 10_000);
    expect(st).toMatchObject({ state: 'failed' });
    expect(st?.reason).toMatch(/no report from node node-a for 10 s/);
    expect(r.running('dc2', 10_000)).toBe(false);
  });
});

describe('node namespaces', () => {
  it('reads the local addresses of a fib_trie dump, without loopback', () => {
    const text = [
      'Main:',
      '  +-- 0.0.0.0/0 3 0 5',
      '     |-- 10.213.0.5',
      '        /32 host LOCAL',
      '     |-- 10.213.255.255',
      '        /32 link BROADCAST',
      '     |-- 127.0.0.1',
      '        /32 host LOCAL',
      'Local:',
      '     |-- 10.213.0.5',
      '        /32 host LOCAL',
    ].join('\n');
    expect(localAddressesOfFibTrie(text)).toEqual(['10.213.0.5']);
  });
});

describe('DaemonSet manifest', () => {
  it('renders a Namespace, a Secret and a privileged host-PID DaemonSet for the site', () => {
    const yaml = renderAgentManifest({
      site: 'dc2',
      image: 'registry.example/bulwark:1',
      server: 'https://cp:7070',
    });
    interface PodSpec {
      hostPID: boolean;
      hostNetwork: boolean;
      containers: {
        args: string[];
        securityContext: unknown;
        env: { name: string; valueFrom?: unknown }[];
      }[];
    }
    const docs = parseAllDocuments(yaml).map(
      (d) => d.toJSON() as { kind: string; spec?: { template: { spec: PodSpec } } },
    );
    expect(docs.map((d) => d.kind)).toEqual(['Namespace', 'Secret', 'DaemonSet']);
    const pod = docs[2]!.spec!.template.spec;
    expect(pod).toMatchObject({ hostPID: true, hostNetwork: true });
    const [agent] = pod.containers;
    expect(agent?.args).toEqual(['--site', 'dc2', '--interval-ms', '1000']);
    expect(agent?.securityContext).toEqual({ privileged: true });
    expect(agent?.env.find((e) => e.name === 'BULWARK_NODE_NAME')?.valueFrom).toEqual({
      fieldRef: { fieldPath: 'spec.nodeName' },
    });
    expect(parse(yaml.split('---\n')[1]!).stringData.token).toMatch(/REPLACE-with-an-agent-token/);
  });

  it('carries the agent token and the CLI trust: a pinned fingerprint as env, a CA file in the Secret, mounted', () => {
    const docs = (o: Partial<Parameters<typeof renderAgentManifest>[0]>) =>
      parseAllDocuments(
        renderAgentManifest({ site: 'dc2', image: 'i', server: 'https://cp:7070', token: 'bwk_agent', ...o }),
      ).map((d) => d.toJSON() as Record<string, any>); // eslint-disable-line @typescript-eslint/no-explicit-any
    const fp = 'sha256:' + Array(32).fill('AB').join(':');
    const pinned = docs({ tlsFingerprint: fp });
    const env = pinned[2]!.spec.template.spec.containers[0].env as { name: string; value?: string }[];
    expect(env.find((e) => e.name === 'BULWARK_TLS_FINGERPRINT')?.value).toBe(fp);
    expect(env.some((e) => e.name === 'BULWARK_CA_FILE')).toBe(false);
    expect(pinned[1]!.stringData).toEqual({ token: 'bwk_agent' });

    const withCa = docs({ caPem: '-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n' });
    expect(withCa[1]!.stringData['ca.crt']).toMatch(/BEGIN CERTIFICATE/);
    const pod = withCa[2]!.spec.template.spec;
    expect(pod.containers[0].env).toContainEqual({ name: 'BULWARK_CA_FILE', value: '/etc/bulwark/ca.crt' });
    expect(pod.containers[0].volumeMounts).toContainEqual({
      name: 'ca',
      mountPath: '/etc/bulwark',
      readOnly: true,
    });
    expect(pod.volumes).toContainEqual({
      name: 'ca',
      secret: { secretName: 'bulwark-agent-dc2', items: [{ key: 'ca.crt', path: 'ca.crt' }] },
    });
  });
});
