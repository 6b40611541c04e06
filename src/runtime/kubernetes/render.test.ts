import { describe, expect, it } from 'vitest';
import type { InstanceSpec } from '../driver.ts';
import { bindPods } from './binding.ts';
import { dnsLabel, labelValue, namespaceName, workloadName } from './names.ts';
import {
  desiredReplicas,
  renderPdb,
  renderService,
  renderWorkload,
  templateHash,
  type InstanceEntry,
  type WorkloadState,
} from './render.ts';
import { instanceStatus } from './status.ts';
import { KubeApiError } from './client.ts';
import { LogCursor, splitLogsUnsupported, timestampNs } from './kubernetes-driver.ts';
import type { Pod } from './types.ts';

// Rendered objects are plain JSON; the tests walk them freely.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const spec = (over: Partial<InstanceSpec> = {}): InstanceSpec => ({
  id: 'bank.accounts.api-0-abc123',
  site: 'dc1',
  project: 'bank',
  app: 'accounts',
  workload: 'api',
  ordinal: 0,
  image: 'registry.example/accounts:1.4',
  command: ['node', 'server.js'],
  env: { LOG_LEVEL: 'info', BULWARK_ORDINAL: '0' },
  ports: [{ name: 'http', port: 8080 }],
  readiness: { http: { path: '/healthz', port: 'http' }, intervalMs: 500, failureThreshold: 2 },
  liveness: { tcp: { port: 'http' }, intervalMs: 2000, successThreshold: 3 },
  cpu: 0.25,
  memoryBytes: 128 * 2 ** 20,
  restartPolicy: 'Always',
  terminationGracePeriodMs: 2500,
  specHash: 'h1',
  ...over,
});

const state = (instances: InstanceEntry[], over: Partial<WorkloadState> = {}): WorkloadState => {
  const s = spec();
  return {
    namespace: 'bulwark-bank',
    name: 'accounts-api',
    kind: 'Deployment',
    site: 'dc1',
    project: 'bank',
    app: 'accounts',
    workload: 'api',
    template: s,
    templateHash: templateHash(s),
    instances,
    ...over,
  };
};
const entry = (id: string, ordinal: number, th = templateHash(spec()), q = false): InstanceEntry => ({
  id,
  ordinal,
  specHash: `h-${ordinal}`,
  templateHash: th,
  ...(q ? { quarantined: true } : {}),
});

describe('names', () => {
  it('keeps valid names and hashes altered or long ones so they never collide', () => {
    expect(dnsLabel('accounts-api')).toBe('accounts-api');
    expect(dnsLabel('Accounts_API')).toMatch(/^accounts-api-[0-9a-f]{6}$/);
    expect(dnsLabel('accounts-api')).not.toBe(dnsLabel('Accounts-api'));
    expect(workloadName('a'.repeat(40), 'b'.repeat(40))).toHaveLength(47);
    expect(namespaceName('bulwark-', 'bank')).toBe('bulwark-bank');
    expect(labelValue('x'.repeat(70))).toHaveLength(63);
  });
});

describe('render', () => {
  it('renders an idiomatic Deployment: labels, owner annotation, selector, probes, resources, env without per-instance fields', () => {
    const d = renderWorkload(state([entry('i0', 0), entry('i1', 1)])) as Json;
    expect(d).toMatchObject({ apiVersion: 'apps/v1', kind: 'Deployment' });
    expect(d.metadata.labels).toEqual({
      'app.kubernetes.io/name': 'accounts',
      'app.kubernetes.io/instance': 'accounts-api',
      'app.kubernetes.io/component': 'api',
      'app.kubernetes.io/part-of': 'bank',
      'app.kubernetes.io/managed-by': 'bulwark',
      'bulwark.io/site': 'dc1',
    });
    expect(d.metadata.annotations['bulwark.io/owner']).toBe('dc1/bank/accounts');
    expect(JSON.parse(d.metadata.annotations['bulwark.io/instances'])).toHaveLength(2);
    expect(d.spec.replicas).toBe(2);
    expect(d.spec.selector.matchLabels).toEqual({
      'app.kubernetes.io/instance': 'accounts-api',
      'bulwark.io/pool': 'serving',
    });
    expect(d.spec.strategy.rollingUpdate).toEqual({ maxSurge: 1, maxUnavailable: 0 });
    const pod = d.spec.template;
    expect(pod.metadata.labels).toMatchObject(d.spec.selector.matchLabels);
    const c = pod.spec.containers[0];
    expect(c.image).toBe('registry.example/accounts:1.4');
    expect(c.command).toBeUndefined(); // run.command is the local runtime's
    expect(c.ports).toEqual([{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
    expect(c.readinessProbe).toMatchObject({
      httpGet: { path: '/healthz', port: 'http' },
      periodSeconds: 1,
      failureThreshold: 2,
    });
    expect(c.livenessProbe).toMatchObject({
      tcpSocket: { port: 'http' },
      periodSeconds: 2,
      successThreshold: 1,
    });
    // Liveness waits for the first ready (a slow start is not a dead process), up to 60 s.
    expect(c.startupProbe).toEqual({ ...c.readinessProbe, successThreshold: 1, failureThreshold: 60 });
    expect(c.resources).toEqual({
      requests: { cpu: '250m', memory: String(128 * 2 ** 20) },
      limits: { cpu: '250m', memory: String(128 * 2 ** 20) },
    });
    const names = c.env.map((e: { name: string }) => e.name);
    expect(names).not.toContain('BULWARK_ORDINAL');
    expect(names).toEqual(
      expect.arrayContaining(['LOG_LEVEL', 'PORT', 'BULWARK_PORT_HTTP', 'BULWARK_HOST_IP']),
    );
    expect(pod.spec.terminationGracePeriodSeconds).toBe(3);
    expect(pod.spec.restartPolicy).toBe('Always');
  });

  it('renders a Service and a PDB selecting the serving pool, a headless Service for a StatefulSet, none for a Job', () => {
    const w = state([entry('i0', 0)]);
    const svc = renderService(w) as Json;
    expect(svc.spec.selector).toEqual({
      'app.kubernetes.io/instance': 'accounts-api',
      'bulwark.io/pool': 'serving',
    });
    expect(svc.spec.ports).toEqual([{ name: 'http', port: 8080, targetPort: 'http', protocol: 'TCP' }]);
    expect((renderPdb(w) as Json).spec).toEqual({
      maxUnavailable: 1,
      selector: { matchLabels: svc.spec.selector },
    });
    expect((renderService({ ...w, kind: 'StatefulSet' }) as Json).spec.clusterIP).toBe('None');
    expect(renderService({ ...w, kind: 'Job' })).toBeUndefined();
  });

  it('renders an Indexed Job with its own selector, sized by the highest ordinal, that keeps Never failures failed', () => {
    const s = spec({ restartPolicy: 'Never' });
    const j = renderWorkload(
      state([entry('j0', 0), entry('j2', 2)], { kind: 'Job', template: s, templateHash: templateHash(s) }),
    ) as Json;
    expect(j.kind).toBe('Job');
    expect(j.metadata.name).toMatch(/^accounts-api-[0-9a-f]{10}$/);
    expect(j.spec).toMatchObject({
      completionMode: 'Indexed',
      completions: 3,
      parallelism: 3,
      manualSelector: true,
    });
    expect(j.spec.backoffLimitPerIndex).toBe(0);
    expect(j.spec.template.spec.restartPolicy).toBe('Never');
    expect(j.spec.template.metadata.labels).toMatchObject(j.spec.selector.matchLabels);
  });

  it('holds liveness off with a startup probe only when a readiness probe says when the start-up is over', () => {
    const c = (over: Partial<InstanceSpec>): Json =>
      (renderWorkload(state([entry('a', 0)], { template: spec(over) })).spec.template as Json).spec
        .containers[0];
    expect(c({ readiness: undefined }).startupProbe).toBeUndefined();
    expect(c({ liveness: undefined }).startupProbe).toBeUndefined();
    expect(c({ readiness: { tcp: { port: 'http' }, intervalMs: 7000 } }).startupProbe.failureThreshold).toBe(
      9,
    );
  });

  it('with bindBeforeStart gates pods until bound and gives them BULWARK_INSTANCE_ID from the binding', () => {
    const w = state([entry('a', 0)], { template: spec({ env: { BULWARK_INSTANCE_ID: 'a', X: '1' } }) });
    const pod = (renderWorkload(w, { bindBeforeStart: true }).spec.template as Json).spec;
    expect(pod.schedulingGates).toEqual([{ name: 'bulwark.io/instance-id' }]);
    const env = pod.containers[0].env as { name: string; value?: string; valueFrom?: unknown }[];
    expect(env.filter((e) => e.name === 'BULWARK_INSTANCE_ID')).toEqual([
      {
        name: 'BULWARK_INSTANCE_ID',
        valueFrom: { fieldRef: { fieldPath: "metadata.annotations['bulwark.io/instance-id']" } },
      },
    ]);
    // Not per instance in the template hash, and absent without the option (it would be racy).
    expect(templateHash(w.template)).toBe(templateHash(spec({ env: { X: '1' } })));
    const plain = (renderWorkload(w).spec.template as Json).spec;
    expect(plain.schedulingGates).toBeUndefined();
    expect(plain.containers[0].env.some((e: { name: string }) => e.name === 'BULWARK_INSTANCE_ID')).toBe(
      false,
    );
  });

  it('refuses an instance without an image, naming the field', () => {
    expect(() => renderWorkload(state([entry('i0', 0)], { template: spec({ image: undefined }) }))).toThrow(
      /image is required on Kubernetes \(set workloads\[\]\.image/,
    );
  });

  it('changes the template hash with the pod spec but not with the ordinal', () => {
    expect(templateHash(spec({ ordinal: 3, env: { LOG_LEVEL: 'info', BULWARK_ORDINAL: '3' } }))).toBe(
      templateHash(spec()),
    );
    expect(templateHash(spec({ image: 'registry.example/accounts:1.5' }))).not.toBe(templateHash(spec()));
  });

  it('counts replicas per ordinal: surge keeps one, a quarantined ordinal keeps its slot until replaced, duplicates count', () => {
    expect(desiredReplicas([entry('a0', 0), entry('a1', 1)])).toBe(2);
    expect(desiredReplicas([entry('a0', 0, 'old'), entry('b0', 0, 'new'), entry('a1', 1, 'old')])).toBe(2);
    expect(desiredReplicas([entry('q0', 0, 't', true)])).toBe(1);
    expect(desiredReplicas([entry('q0', 0, 't', true), entry('r0', 0, 't')])).toBe(1);
    expect(desiredReplicas([entry('a0', 0, 't'), entry('d0', 0, 't')])).toBe(2);
    expect(desiredReplicas([])).toBe(0);
  });
});

const pod = (
  name: string,
  over: { th?: string; id?: string; pool?: string; at?: string; deleting?: boolean } = {},
): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name,
    namespace: 'bulwark-bank',
    creationTimestamp: over.at ?? '2026-01-01T00:00:00Z',
    labels: {
      'app.kubernetes.io/instance': 'accounts-api',
      'bulwark.io/pool': over.pool ?? 'serving',
      'bulwark.io/template-hash': over.th ?? 't',
    },
    annotations: over.id ? { 'bulwark.io/instance-id': over.id } : {},
    ...(over.deleting ? { deletionTimestamp: '2026-01-01T00:01:00Z' } : {}),
  },
  status: { phase: 'Running', podIP: '10.0.0.1', conditions: [{ type: 'Ready', status: 'True' }] },
});

describe('bindPods', () => {
  it('keeps explicit bindings, binds waiting instances to the oldest unbound pod of their template, deterministically', () => {
    const insts = [entry('a1', 1, 't'), entry('a0', 0, 't'), entry('b0', 0, 'new')];
    const pods = [
      pod('p-new', { th: 'new', at: '2026-01-01T00:00:03Z' }),
      pod('p-late', { at: '2026-01-01T00:00:02Z' }),
      pod('p-early', { at: '2026-01-01T00:00:01Z' }),
      pod('p-bound', { id: 'a1', at: '2026-01-01T00:00:00Z' }),
    ];
    const r = bindPods('Deployment', insts, pods);
    expect(r.bound.get('a1')?.metadata.name).toBe('p-bound');
    expect(r.bound.get('a0')?.metadata.name).toBe('p-early');
    expect(r.bound.get('b0')?.metadata.name).toBe('p-new');
    expect(r.patches).toEqual([
      { pod: 'p-early', id: 'a0' },
      { pod: 'p-new', id: 'b0' },
    ]);
    // Same answer whatever order the cache lists pods in.
    expect(bindPods('Deployment', insts, [...pods].reverse()).patches).toEqual(r.patches);
  });

  it('never binds a quarantined, removing or terminating pod to a new instance; a quarantined instance keeps its pod', () => {
    const r = bindPods(
      'Deployment',
      [entry('q0', 0, 't', true), entry('r0', 0, 't')],
      [
        pod('p-q', { id: 'q0', pool: 'quarantined' }),
        pod('p-rm', { id: 'gone', pool: 'removing' }),
        pod('p-term', { deleting: true }),
      ],
    );
    expect(r.bound.get('q0')?.metadata.name).toBe('p-q');
    expect(r.bound.has('r0')).toBe(false);
    expect(r.patches).toEqual([]);
  });

  it('frees a second pod that claims an already bound instance, so a waiting instance can take it', () => {
    const r = bindPods(
      'Deployment',
      [entry('a0', 0, 't'), entry('a1', 1, 't')],
      [
        pod('p-first', { id: 'a0', at: '2026-01-01T00:00:01Z' }),
        pod('p-dup', { id: 'a0', at: '2026-01-01T00:00:02Z' }),
      ],
    );
    expect(r.bound.get('a0')?.metadata.name).toBe('p-first');
    expect(r.bound.get('a1')?.metadata.name).toBe('p-dup');
    expect(r.patches).toEqual([{ pod: 'p-dup', id: 'a1' }]);
  });

  it('lets an instance whose spec changed wait for a pod of its new template instead of its old pod', () => {
    const old = pod('p-old', { id: 'a0', th: 'old' });
    const fresh = pod('p-fresh', { th: 'new', at: '2026-01-01T00:00:09Z' });
    expect(bindPods('Deployment', [entry('a0', 0, 'new')], [old]).bound.size).toBe(0);
    const r = bindPods('Deployment', [entry('a0', 0, 'new')], [old, fresh]);
    expect(r.bound.get('a0')).toBe(fresh);
    expect(r.patches).toEqual([{ pod: 'p-fresh', id: 'a0' }]);
  });

  it('binds StatefulSet pods by ordinal name', () => {
    const p1 = pod('accounts-api-1');
    const r = bindPods('StatefulSet', [entry('s0', 0, 't'), entry('s1', 1, 't')], [p1], 'accounts-api');
    expect(r.bound.get('s1')).toBe(p1);
    expect(r.bound.has('s0')).toBe(false);
  });
});

describe('instanceStatus', () => {
  const w = state([entry('i0', 0)]);
  const e = w.instances[0]!;
  it('is starting without a pod, ready with a Ready pod, quarantined when relabelled', () => {
    expect(instanceStatus(w, e, undefined)).toMatchObject({ phase: 'starting', ready: false, ip: '' });
    const ready = instanceStatus(w, e, pod('p'));
    expect(ready).toMatchObject({
      phase: 'ready',
      ready: true,
      ip: '10.0.0.1',
      ports: { http: 8080 },
      restarts: 0,
    });
    const q = pod('p', { pool: 'quarantined' });
    q.metadata.annotations!['bulwark.io/quarantine'] = JSON.stringify({
      since: '2026-01-01T00:00:05Z',
      reason: 'leak',
    });
    expect(instanceStatus(w, e, q)).toMatchObject({
      phase: 'quarantined',
      ready: false,
      quarantine: { since: '2026-01-01T00:00:05Z', reason: 'leak' },
    });
  });

  it('maps container exits, OOM kills, crash-loop backoff and image pull failures', () => {
    const p = pod('p');
    p.status!.containerStatuses = [
      {
        name: 'api',
        ready: false,
        restartCount: 2,
        state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 20s' } },
        lastState: { terminated: { exitCode: 3, reason: 'Error', finishedAt: '2026-01-01T00:00:10Z' } },
      },
    ];
    const s = instanceStatus(w, e, p);
    expect(s).toMatchObject({ phase: 'backoff', restarts: 2, lastExit: { reason: 'exited', code: 3 } });
    expect(Date.parse(s.nextRestartAt!)).toBe(Date.parse('2026-01-01T00:00:30Z'));
    p.status!.containerStatuses[0]!.lastState = { terminated: { exitCode: 137, reason: 'OOMKilled' } };
    expect(instanceStatus(w, e, p).lastExit).toMatchObject({ reason: 'oom-killed', signal: 'SIGKILL' });
    p.status!.containerStatuses[0]!.state = {
      waiting: { reason: 'ErrImagePull', message: 'pull nope:1 failed' },
    };
    p.spec = { containers: [{ name: 'api', image: 'nope:1' }] };
    expect(instanceStatus(w, e, p).lastExit).toMatchObject({
      reason: 'start-failed',
      message: expect.stringContaining('nope:1'),
    });
  });

  it('says liveness-failed when a Killing event for a failed liveness probe falls within the ended run', () => {
    const p = pod('p');
    p.metadata.uid = 'uid-1';
    p.status!.containerStatuses = [
      {
        name: 'api',
        ready: true,
        restartCount: 1,
        state: { running: { startedAt: '2026-01-01T00:00:12Z' } },
        lastState: {
          terminated: {
            exitCode: 0,
            reason: 'Completed',
            startedAt: '2026-01-01T00:00:00Z',
            finishedAt: '2026-01-01T00:00:10Z',
          },
        },
      },
    ];
    const at = (t: string): number => Date.parse(t);
    expect(instanceStatus(w, e, p).lastExit?.reason).toBe('exited');
    expect(
      instanceStatus(w, e, p, new Map([['uid-1', [at('2026-01-01T00:00:09Z')]]])).lastExit,
    ).toMatchObject({
      reason: 'liveness-failed',
      code: 0,
    });
    // A kill of an earlier run, or of another pod, says nothing about this exit.
    expect(instanceStatus(w, e, p, new Map([['uid-1', [at('2025-12-31T23:59:00Z')]]])).lastExit?.reason).toBe(
      'exited',
    );
    expect(instanceStatus(w, e, p, new Map([['uid-2', [at('2026-01-01T00:00:09Z')]]])).lastExit?.reason).toBe(
      'exited',
    );
  });
});

describe('splitLogsUnsupported', () => {
  it('names the feature gate for the API server 422 and the kubelet 400, nothing for other errors', () => {
    const api = new KubeApiError(
      422,
      'Invalid',
      'GET /api/v1/namespaces/x/pods/p/log: 422 Invalid: PodLogOptions "p" is invalid: stream: Forbidden: may not be specified',
    );
    expect(splitLogsUnsupported(api)).toMatch(/API server .*--feature-gates=PodLogsQuerySplitStreams=true/);
    const kubelet = new KubeApiError(
      400,
      'BadRequest',
      'GET /api/v1/namespaces/x/pods/p/log: 400 BadRequest: unable to return the given log stream: "Stderr". Please enable PodLogsQuerySplitStreams feature gate in kubelet',
    );
    expect(splitLogsUnsupported(kubelet)).toMatch(/kubelet .*KubeletConfiguration/);
    expect(splitLogsUnsupported(new KubeApiError(404, 'NotFound', 'pods "p" not found'))).toBeUndefined();
    expect(
      splitLogsUnsupported(
        new KubeApiError(422, 'Invalid', '`tailLines` and specific `stream` are mutually exclusive for now'),
      ),
    ).toBeUndefined();
    expect(splitLogsUnsupported(new Error('ECONNRESET'))).toBeUndefined();
  });
});

describe('timestampNs', () => {
  it('reads the kubelet log timestamps to the nanosecond, any fraction length, and refuses the rest', () => {
    const base = BigInt(Date.parse('2026-12-07T20:59:01Z')) * 1_000_000n;
    expect(timestampNs('2026-12-07T20:59:01.123456789Z')).toBe(base + 123_456_789n);
    expect(timestampNs('2026-12-07T20:59:01.5Z')).toBe(base + 500_000_000n);
    expect(timestampNs('2026-12-07T20:59:01Z')).toBe(base);
    expect(timestampNs('2026-12-07T21:59:01.000000001+01:00')).toBe(base + 1n);
    expect(timestampNs('listening')).toBeUndefined();
  });
});

describe('LogCursor', () => {
  it('delivers each line once across reconnections, lines sharing one stamp included', () => {
    const s = 1_800_000_000_000_000_000n; // a whole second, in ns
    const c = new LogCursor(s + 500n);
    // sinceTime is the cursor rounded down to the millisecond (the API server then to the second).
    expect(c.connect()).toBe(new Date(Number(s / 1_000_000n)).toISOString());
    // Printed before the follow began: dropped; then two lines of one write share a stamp.
    const first = [s + 100n, s + 500n, s + 900n, s + 900n].map((ns) => c.take(ns));
    expect(first).toEqual([false, true, true, true]);
    // The connection ends; the next one replays from the second: only what is new passes.
    c.connect();
    const second = [s + 100n, s + 500n, s + 900n, s + 900n, s + 900n, s + 1000n].map((ns) => c.take(ns));
    expect(second).toEqual([false, false, false, false, true, true]);
    // And a third: one line stamped s+1000 was delivered, so a second one with that stamp is new.
    c.connect();
    expect([s + 900n, s + 1000n, s + 1000n].map((ns) => c.take(ns))).toEqual([false, false, true]);
  });
});
