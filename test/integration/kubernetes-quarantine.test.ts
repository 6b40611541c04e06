/**
 * Fault isolation on Kubernetes against the real control plane: quarantining
 * an instance relabels its pod out of the Service's and the ReplicaSet's
 * selector. Checked: the pod keeps running (not deleted, not restarted),
 * annotated with the incident; the EndpointSlice controller drops it; the
 * ReplicaSet releases it and starts a replacement that turns Ready and that
 * the controller's next ensure binds; release puts the pod back into the
 * EndpointSlice; removing a quarantined instance deletes its pod.
 *
 * Measured (several runs, p50/p99 in the log line and docs/kubernetes.md):
 * decision (the quarantine call) -> the pod's IP absent from every
 * EndpointSlice of the Service, and -> the replacement pod Ready.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InstanceSpec } from '../../src/runtime/driver.ts';
import { KubeClient } from '../../src/runtime/kubernetes/client.ts';
import { Informer } from '../../src/runtime/kubernetes/informer.ts';
import { KubernetesDriver } from '../../src/runtime/kubernetes/kubernetes-driver.ts';
import type { EndpointSlice, KubeObject, Pod } from '../../src/runtime/kubernetes/types.ts';
import { waitFor } from '../../src/util/time.ts';
import {
  kubeBinaries,
  kubeRequest,
  missingBinariesMessage,
  startKubeCluster,
  type KubeCluster,
} from '../support/kube-harness.ts';

const RUNS = 10;
const NS = 'bulwark-bank';
type DeploymentLike = KubeObject & {
  metadata: { name: string; generation?: number };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    readyReplicas?: number;
    availableReplicas?: number;
  };
};
const SERVICE = 'payments-api';

let cluster: KubeCluster;
let driver: KubernetesDriver;
let client: KubeClient;
const stop: (() => Promise<void>)[] = [];

beforeAll(async () => {
  const { missing } = kubeBinaries();
  if (missing.length > 0) throw new Error(missingBinariesMessage(missing));
  cluster = await startKubeCluster({ name: 'kquar', nodes: 2 });
  const connection = { server: cluster.server, token: cluster.token, caCertPem: cluster.caCertPem };
  driver = await KubernetesDriver.create({ site: 'kube-q', connection });
  client = new KubeClient(connection);
}, 240_000);
afterAll(async () => {
  for (const s of stop) await s();
  await driver?.close({ stopInstances: true });
  client?.close();
  await cluster?.stop();
});

/** A test-side informer with the time each object was last seen changing. */
async function watchKind<T extends KubeObject>(
  kind: 'Pod' | 'EndpointSlice',
  labelSelector: string,
  onChange: () => void,
): Promise<Informer<T>> {
  const inf = new Informer<T>(
    {
      list: () => client.list<T>(kind, NS, { labelSelector }),
      watch: (resourceVersion, onEvent, signal) =>
        client.watch<T>(
          kind,
          NS,
          { labelSelector, resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 300 },
          onEvent,
          signal,
        ),
    },
    onChange,
  );
  await inf.start();
  stop.push(() => inf.stop());
  return inf;
}

const spec = (ordinal: number): InstanceSpec => ({
  id: `bank.payments.api-${ordinal}-${Math.random().toString(16).slice(2, 8)}`,
  site: 'kube-q',
  project: 'bank',
  app: 'payments',
  workload: 'api',
  ordinal,
  image: 'registry.example/payments:3.0',
  env: {},
  ports: [{ name: 'http', port: 8080 }],
  readiness: { http: { path: '/healthz', port: 'http' }, intervalMs: 1000 },
  restartPolicy: 'Always',
  terminationGracePeriodMs: 1000,
  specHash: `p-${ordinal}`,
});

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

describe('quarantine on Kubernetes', () => {
  it('takes the pod out of the EndpointSlice and the ReplicaSet, keeps it running, and the replacement turns Ready', async () => {
    let changed = 0;
    const bump = (): void => void changed++;
    const slices = await watchKind<EndpointSlice>(
      'EndpointSlice',
      `kubernetes.io/service-name=${SERVICE}`,
      bump,
    );
    const pods = await watchKind<Pod>('Pod', `app.kubernetes.io/instance=${SERVICE}`, bump);
    const inSlices = (ip: string): boolean =>
      slices.list().some((s) => (s.endpoints ?? []).some((e) => e.addresses.includes(ip)));
    const readyInSlices = (): string[] =>
      slices
        .list()
        .flatMap((s) => s.endpoints ?? [])
        .filter((e) => e.conditions?.ready)
        .flatMap((e) => e.addresses);
    const podOf = (id: string): Pod | undefined =>
      pods.list().find((p) => p.metadata.annotations?.['bulwark.io/instance-id'] === id);
    const servingReady = (): Pod[] =>
      pods
        .list()
        .filter(
          (p) =>
            p.metadata.labels?.['bulwark.io/pool'] === 'serving' &&
            !p.metadata.deletionTimestamp &&
            p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        );

    const live = new Map<number, InstanceSpec>();
    for (const o of [0, 1, 2]) {
      live.set(o, spec(o));
      await driver.ensure(live.get(o)!);
    }
    await waitFor('3 ready in the EndpointSlice', () => readyInSlices().length === 3, { timeoutMs: 60_000 });
    // Start from a settled rollout: the ReplicaSet controller has observed its own pod creations,
    // so the first quarantine measures the replacement, not a controller still catching up
    // (one CI run timed out on the very first quarantine right after the scale-up to 3).
    await waitFor(
      'the Deployment rolled out (3 updated, ready and available, generation observed)',
      async () => {
        const r = await kubeRequest<{ items?: DeploymentLike[] }>(
          cluster,
          `/apis/apps/v1/namespaces/${NS}/deployments`,
        );
        const d = (r.body.items ?? []).find((x) => x.metadata.name === SERVICE);
        const st = d?.status;
        return (
          !!d &&
          st?.observedGeneration === d.metadata.generation &&
          st?.updatedReplicas === 3 &&
          st?.readyReplicas === 3 &&
          st?.availableReplicas === 3 &&
          st?.replicas === 3
        );
      },
      { timeoutMs: 60_000 },
    );

    const outMs: number[] = [];
    const replacedMs: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const ordinal = run % 3;
      const victim = live.get(ordinal)!;
      const st = driver.get(victim.id)!;
      expect(st.phase).toBe('ready');
      const pod = podOf(victim.id)!;
      const before = new Set(pods.list().map((p) => p.metadata.name));
      let tOut = 0;
      let tReady = 0;
      const t0 = performance.now();
      const q = await driver.quarantine(victim.id, { reason: `incident ${run + 1}: error-rate spike` });
      // Poll the test's own caches (fed by watches) at 5 ms: the error this adds is below 5 ms.
      await waitFor(
        'out of the EndpointSlice and a replacement Ready',
        () => {
          const now = performance.now();
          if (!tOut && !inSlices(st.ip)) tOut = now;
          if (!tReady && servingReady().some((p) => !before.has(p.metadata.name))) tReady = now;
          return tOut && tReady;
        },
        { timeoutMs: 30_000, intervalMs: 5 },
      ).catch((err: unknown) => {
        console.log(
          `diagnostics run ${run}: out=${tOut > 0} replacementReady=${tReady > 0} victim=${st.ip} ` +
            `slices=${JSON.stringify(slices.list().map((s) => (s.endpoints ?? []).map((e) => [e.addresses, e.conditions?.ready])))}\n  ` +
            pods
              .list()
              .map(
                (p) =>
                  `${p.metadata.name} pool=${p.metadata.labels?.['bulwark.io/pool']} id=${p.metadata.annotations?.['bulwark.io/instance-id']} ` +
                  `new=${!before.has(p.metadata.name)} del=${p.metadata.deletionTimestamp ?? ''} ${p.status?.phase} ip=${p.status?.podIP}`,
              )
              .join('\n  '),
        );
        throw err;
      });
      outMs.push(tOut - t0);
      replacedMs.push(tReady - t0);
      expect(q).toMatchObject({
        phase: 'quarantined',
        ready: false,
        quarantine: { reason: `incident ${run + 1}: error-rate spike` },
      });

      // The pod is alive, untouched and out of its ReplicaSet, annotated with the incident.
      const qp = (await client.get<Pod>('Pod', NS, pod.metadata.name)) as Pod;
      expect(qp.metadata.uid).toBe(pod.metadata.uid);
      expect(qp.metadata.deletionTimestamp).toBeUndefined();
      expect(qp.status?.phase).toBe('Running');
      expect(qp.metadata.labels?.['bulwark.io/pool']).toBe('quarantined');
      expect(JSON.parse(qp.metadata.annotations!['bulwark.io/quarantine']!)).toMatchObject({
        reason: `incident ${run + 1}: error-rate spike`,
      });
      await waitFor('released by its ReplicaSet', async () => {
        const p = await client.get<Pod>('Pod', NS, pod.metadata.name);
        return !(p.metadata.ownerReferences ?? []).some((r) => r.controller);
      });
      expect(readyInSlices()).not.toContain(st.ip);
      // The replacement's endpoint follows its pod's Ready by one EndpointSlice sync.
      await waitFor('3 ready endpoints', () => readyInSlices().length === 3, { timeoutMs: 20_000 });

      // The controller's next pass ensures a replacement for the ordinal: it binds the new pod.
      const repl = spec(ordinal);
      await driver.ensure(repl);
      const r = await waitFor(
        `run ${run}: replacement bound and ready`,
        () => (driver.get(repl.id)?.phase === 'ready' ? driver.get(repl.id) : undefined),
        { timeoutMs: 20_000 },
      ).catch((err: unknown) => {
        const show = (p: Pod): string =>
          `${p.metadata.name} pool=${p.metadata.labels?.['bulwark.io/pool']} id=${p.metadata.annotations?.['bulwark.io/instance-id']} ` +
          `th=${p.metadata.labels?.['bulwark.io/template-hash']} del=${p.metadata.deletionTimestamp ?? ''} ${p.status?.phase}`;
        console.log(
          `diagnostics: instances ${JSON.stringify(driver.list().map((i) => [i.id, i.phase, i.ip]))}\n  ${pods.list().map(show).join('\n  ')}`,
        );
        throw err;
      });
      expect(r.ip).not.toBe(st.ip);
      await waitFor('replacement in the EndpointSlice', () => readyInSlices().includes(r.ip), {
        timeoutMs: 20_000,
      });
      live.set(ordinal, repl);

      if (run === 0) {
        // Release: back into the selector and the EndpointSlice, still the same pod.
        await driver.unquarantine(victim.id);
        await waitFor('back in the EndpointSlice', () => readyInSlices().includes(st.ip), {
          timeoutMs: 20_000,
        });
        expect(driver.get(victim.id)).toMatchObject({ phase: 'ready', ip: st.ip, startedAt: st.startedAt });
        await waitFor('adopted again', async () => {
          const p = await client.get<Pod>('Pod', NS, pod.metadata.name);
          return (p.metadata.ownerReferences ?? []).some((o) => o.kind === 'ReplicaSet' && o.controller);
        });
        // Two instances for one ordinal: the controller keeps one; here the replacement goes.
        await driver.remove(repl.id);
        live.set(ordinal, victim);
        await waitFor('3 ready again', () => readyInSlices().length === 3 && servingReady().length === 3, {
          timeoutMs: 20_000,
        });
        // remove() hands the pod to its ReplicaSet with the lowest deletion cost; should the
        // ReplicaSet still pick another (one not Ready) it falls back to taking the pod out, and
        // the ReplicaSet replaces the one it deleted. The next run's "new pod" must not be such a
        // leftover (seen in CI before the deletion-cost path: an unbound leftover stood in for the
        // replacement and no new pod was ever created).
        await waitFor(
          'no pod left over from the removal',
          () =>
            pods.list().filter((p) => !p.metadata.deletionTimestamp).length === 3 &&
            pods.list().every((p) => p.metadata.annotations?.['bulwark.io/instance-id']),
          { timeoutMs: 20_000 },
        );
      } else {
        // Cleanup: removing the quarantined instance deletes its pod; the others are untouched.
        await driver.remove(victim.id);
        expect(await client.tryGet('Pod', NS, pod.metadata.name)).toBeUndefined();
        await waitFor('3 serving', () => servingReady().length === 3 && readyInSlices().length === 3, {
          timeoutMs: 20_000,
        });
      }
    }
    const line =
      `kubernetes quarantine (n=${RUNS}): decision -> out of EndpointSlice p50 ${pct(outMs, 50).toFixed(0)} ms ` +
      `p99 ${pct(outMs, 99).toFixed(0)} ms; -> replacement Ready p50 ${pct(replacedMs, 50).toFixed(0)} ms ` +
      `p99 ${pct(replacedMs, 99).toFixed(0)} ms (raw out: ${outMs.map((x) => x.toFixed(0)).join(',')}; ` +
      `ready: ${replacedMs.map((x) => x.toFixed(0)).join(',')})`;
    console.log(line);
    expect(changed).toBeGreaterThan(0);
    // Loose bounds: a regression to "waits for a resync" (tens of seconds) fails; noise does not.
    expect(pct(outMs, 50)).toBeLessThan(5000);
    expect(pct(replacedMs, 50)).toBeLessThan(10_000);
  }, 300_000);
});
