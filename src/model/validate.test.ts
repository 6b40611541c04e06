import { describe, expect, it } from 'vitest';
import { ManifestError, formatIssue, parseManifests, validateResource } from './validate.ts';
import type { AppResource } from './types.ts';

// Tests break manifests on purpose, which no static type allows.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Loose = any;

function goodApp(): AppResource {
  return {
    apiVersion: 'bulwark.io/v1',
    kind: 'App',
    metadata: { name: 'gateway', project: 'bank' },
    spec: {
      workloads: [
        {
          name: 'api',
          type: 'service',
          replicas: 2,
          run: { command: ['node', 'server.ts'] },
          ports: [{ name: 'http', port: 8080 }],
          health: {
            readiness: { http: { path: '/healthz', port: 'http' }, intervalMs: 500 },
            liveness: { tcp: { port: 'http' } },
          },
          resources: { cpu: 0.5, memory: '128Mi' },
        },
        { name: 'migrate', type: 'job', run: { command: ['node', 'migrate.ts'] } },
      ],
    },
  };
}

/** Validate `goodApp()` after `mutate` and return `path: message` lines. */
function errorsAfter(mutate: (app: Loose) => void): string[] {
  const app = goodApp() as unknown as Loose;
  mutate(app);
  const r = validateResource(app);
  return r.errors.map((e) => `${e.path}: ${e.message}`);
}

function caught(fn: () => unknown): ManifestError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ManifestError) return err;
    throw err;
  }
  throw new Error('expected a ManifestError');
}

describe('validateResource', () => {
  it('accepts a complete App, a Site and a Project', () => {
    expect(validateResource(goodApp())).toMatchObject({ valid: true, errors: [] });
    const site = {
      apiVersion: 'bulwark.io/v1',
      kind: 'Site',
      metadata: { name: 'local' },
      spec: { kind: 'local', gatewayPort: 8080 },
    };
    expect(validateResource(site).valid).toBe(true);
    const project = {
      apiVersion: 'bulwark.io/v1',
      kind: 'Project',
      metadata: { name: 'bank' },
      spec: { tenant: 'retail' },
    };
    expect(validateResource(project).valid).toBe(true);
  });

  it('accepts server-set metadata and status on resources read back from the API', () => {
    expect(
      errorsAfter((a) => {
        a.metadata.generation = 3;
        a.metadata.resourceVersion = 9;
        a.metadata.createdAt = '2026-01-01T00:00:00Z';
        a.status = { conditions: [] };
      }),
    ).toEqual([]);
  });

  it.each([
    [
      'probe interval below 100 ms',
      (a: Loose) => (a.spec.workloads[0].health.readiness.intervalMs = 50),
      'spec.workloads[0].health.readiness.intervalMs: must be >= 100',
    ],
    [
      'probe timeout below 50 ms',
      (a: Loose) => (a.spec.workloads[0].health.liveness.timeoutMs = 10),
      'spec.workloads[0].health.liveness.timeoutMs: must be >= 50',
    ],
    [
      'zero failure threshold',
      (a: Loose) => (a.spec.workloads[0].health.liveness.failureThreshold = 0),
      'spec.workloads[0].health.liveness.failureThreshold: must be >= 1',
    ],
    [
      'too many replicas',
      (a: Loose) => (a.spec.workloads[0].replicas = 101),
      'spec.workloads[0].replicas: must be <= 100',
    ],
    [
      'negative replicas',
      (a: Loose) => (a.spec.workloads[0].replicas = -1),
      'spec.workloads[0].replicas: must be >= 0',
    ],
    [
      'fractional replicas',
      (a: Loose) => (a.spec.workloads[0].replicas = 1.5),
      'spec.workloads[0].replicas: must be an integer (got number)',
    ],
    [
      'replicas as text',
      (a: Loose) => (a.spec.workloads[0].replicas = '2'),
      'spec.workloads[0].replicas: must be an integer (got string)',
    ],
    [
      'port 0',
      (a: Loose) => (a.spec.workloads[0].ports[0].port = 0),
      'spec.workloads[0].ports[0].port: must be >= 1',
    ],
    [
      'port above 65535',
      (a: Loose) => (a.spec.workloads[0].ports[0].port = 65536),
      'spec.workloads[0].ports[0].port: must be <= 65535',
    ],
    [
      'cpu 0',
      (a: Loose) => (a.spec.workloads[0].resources.cpu = 0),
      'spec.workloads[0].resources.cpu: must be > 0',
    ],
    [
      'cpu above 64',
      (a: Loose) => (a.spec.workloads[0].resources.cpu = 65),
      'spec.workloads[0].resources.cpu: must be <= 64',
    ],
    [
      'bad memory unit',
      (a: Loose) => (a.spec.workloads[0].resources.memory = '128MB'),
      "spec.workloads[0].resources.memory: must be a memory quantity: bytes with an optional unit Ki, Mi, Gi, Ti, k, M, G, T (got '128MB')",
    ],
    [
      'zero memory',
      (a: Loose) => (a.spec.workloads[0].resources.memory = '0Mi'),
      'spec.workloads[0].resources.memory: must be more than 0 bytes',
    ],
    [
      'upper-case name',
      (a: Loose) => (a.metadata.name = 'Gateway'),
      "metadata.name: must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit (got 'Gateway')",
    ],
    [
      'name too long',
      (a: Loose) => (a.metadata.name = 'a'.repeat(64)),
      'metadata.name: must be at most 63 characters (got 64)',
    ],
    ['empty name', (a: Loose) => (a.metadata.name = ''), 'metadata.name: must not be empty'],
    ['missing project', (a: Loose) => delete a.metadata.project, 'metadata.project: is required'],
    [
      'unknown workload type',
      (a: Loose) => (a.spec.workloads[0].type = 'daemon'),
      "spec.workloads[0].type: must be one of 'service', 'stateful', 'job' (got 'daemon')",
    ],
    [
      'wrong apiVersion',
      (a: Loose) => (a.apiVersion = 'v1'),
      "apiVersion: must be 'bulwark.io/v1' (got 'v1')",
    ],
    ['no workloads', (a: Loose) => (a.spec.workloads = []), 'spec.workloads: must have at least 1 item'],
    [
      'probe path without slash',
      (a: Loose) => (a.spec.workloads[0].health.readiness.http.path = 'healthz'),
      "spec.workloads[0].health.readiness.http.path: must start with '/' (got 'healthz')",
    ],
    [
      'probe without action',
      (a: Loose) => (a.spec.workloads[0].health.readiness = { intervalMs: 500 }),
      'spec.workloads[0].health.readiness: must set one of http, tcp or exec',
    ],
    [
      'probe with two actions',
      (a: Loose) => (a.spec.workloads[0].health.liveness.exec = { command: ['true'] }),
      'spec.workloads[0].health.liveness: must set only one of http, tcp or exec (found tcp and exec)',
    ],
    [
      'placement weight above 100',
      (a: Loose) => (a.spec.placement = { sites: [{ name: 'local', weight: 101 }] }),
      'spec.placement.sites[0].weight: must be <= 100',
    ],
    [
      'env name starting with a digit',
      (a: Loose) => (a.spec.workloads[0].env = { '1X': 'v' }),
      `spec.workloads[0].env["1X"]: invalid key: must be an environment variable name: letters, digits and '_', not starting with a digit (got '1X')`,
    ],
    [
      'env value not a string',
      (a: Loose) => (a.spec.workloads[0].env = { PORT: 8080 }),
      'spec.workloads[0].env.PORT: must be a string (got integer)',
    ],
  ])('rejects %s', (_name, mutate, expected) => {
    expect(errorsAfter(mutate)).toEqual([expected]);
  });

  it('gives the offending value in the fix of a range error', () => {
    const app = goodApp();
    app.spec.workloads[1]!.health = { readiness: { exec: { command: ['true'] }, intervalMs: 50 } };
    expect(validateResource(app).errors).toEqual([
      {
        path: 'spec.workloads[1].health.readiness.intervalMs',
        message: 'must be >= 100',
        fix: 'got 50; use a value >= 100',
      },
    ]);
  });

  it('names the allowed fields and suggests the nearest one for an unknown field', () => {
    const r = validateResource({ ...goodApp(), spec: { ...goodApp().spec, workload: [] } });
    expect(r.errors).toContainEqual({
      path: 'spec.workload',
      message: "unknown field 'workload' (allowed: workloads, placement, isolation)",
      fix: "did you mean 'workloads'?",
    });
  });

  it('says remove for an unknown field with no near match', () => {
    const errs = validateResource({ ...goodApp(), foo: 1 }).errors;
    expect(errs).toEqual([
      {
        path: 'foo',
        message: "unknown field 'foo' (allowed: apiVersion, kind, metadata, spec, status)",
        fix: "remove 'foo'",
      },
    ]);
  });

  it('suggests a valid DNS label for a bad name', () => {
    const app = goodApp();
    app.metadata.name = 'My_Gateway';
    const r = validateResource(app);
    expect(r.errors[0]?.fix).toBe("use e.g. 'my-gateway'");
  });

  it.each([
    ['spec.autoscaling', (a: Loose) => (a.spec.autoscaling = { min: 1 }), 'autoscale controller'],
    ['spec.rollout', (a: Loose) => (a.spec.rollout = { strategy: 'canary' }), 'rollout controller'],
    ['spec.workloads[0].volumes', (a: Loose) => (a.spec.workloads[0].volumes = []), 'stateful volumes'],
  ])('rejects planned field %s as not supported yet', (path, mutate, capability) => {
    expect(errorsAfter(mutate)).toEqual([`${path}: not supported yet (planned: ${capability})`]);
  });

  const site = (spec: Record<string, unknown>): Loose => ({
    apiVersion: 'bulwark.io/v1',
    kind: 'Site',
    metadata: { name: 'dc1' },
    spec,
  });
  const siteErrors = (spec: Record<string, unknown>): string[] =>
    validateResource(site(spec)).errors.map((e) => `${e.path}: ${e.message}; fix: ${e.fix ?? ''}`);

  it('accepts a kubernetes Site with a kubeconfig path or env reference, a context and health timing', () => {
    expect(siteErrors({ kind: 'kubernetes', kubeconfig: { path: '/etc/bulwark/dc1.kubeconfig' } })).toEqual(
      [],
    );
    expect(
      siteErrors({
        kind: 'kubernetes',
        kubeconfig: { env: 'DC1_KUBECONFIG' },
        context: 'dc1-admin',
        health: { intervalMs: 500, timeoutMs: 300, failureThreshold: 3, failbackAfterMs: 5000 },
      }),
    ).toEqual([]);
  });

  it.each([
    [
      'no kubeconfig',
      { kind: 'kubernetes' },
      'spec.kubeconfig: is required for a kubernetes site; fix: add kubeconfig: { path: /etc/bulwark/dc1.kubeconfig } (or { env: DC1_KUBECONFIG } naming a control-plane environment variable)',
    ],
    [
      'a relative path',
      { kind: 'kubernetes', kubeconfig: { path: 'dc1.kubeconfig' } },
      "spec.kubeconfig.path: must be an absolute path on the control-plane host (got 'dc1.kubeconfig'); fix: write the full path, e.g. /etc/bulwark/dc1.kubeconfig",
    ],
    [
      'both path and env',
      { kind: 'kubernetes', kubeconfig: { path: '/k', env: 'K' } },
      'spec.kubeconfig: must set only one of path or env (found both); fix: keep one: path (a kubeconfig file on the control-plane host) or env (an environment variable holding it)',
    ],
    [
      'an inline token',
      { kind: 'kubernetes', kubeconfig: { path: '/k', token: 'abc' } },
      "spec.kubeconfig.token: unknown field 'token' (allowed: path, env); fix: remove 'token'",
    ],
    [
      'a gateway port',
      { kind: 'kubernetes', kubeconfig: { path: '/k' }, gatewayPort: 8080 },
      "spec.gatewayPort: a kubernetes site has no Bulwark gateway (traffic inside the cluster goes through its Services); fix: remove 'gatewayPort'",
    ],
    [
      'a kubeconfig on a local site',
      { kind: 'local', kubeconfig: { path: '/k' } },
      "spec.kubeconfig: only a kubernetes site has a kubeconfig; fix: remove 'kubeconfig' or set kind: kubernetes",
    ],
    [
      'bindBeforeStart on a local site',
      { kind: 'local', bindBeforeStart: true },
      "spec.bindBeforeStart: only a kubernetes site binds pods; fix: remove 'bindBeforeStart' or set kind: kubernetes",
    ],
    [
      'a failure threshold of 0',
      { kind: 'kubernetes', kubeconfig: { path: '/k' }, health: { failureThreshold: 0 } },
      'spec.health.failureThreshold: must be >= 1; fix: got 0; use a value >= 1',
    ],
  ])('rejects a Site with %s, naming the field and the fix', (_what, spec, expected) => {
    expect(siteErrors(spec)).toEqual([expected]);
  });

  it('accepts a spread placement with weights and minimums that fit the replicas', () => {
    expect(
      errorsAfter((a) => {
        a.spec.workloads[0].replicas = 6;
        a.spec.workloads[1].replicas = 0;
        a.spec.placement = {
          strategy: 'spread',
          sites: [
            { name: 'dc1', weight: 2, minReplicas: 1 },
            { name: 'dc2', weight: 1, minReplicas: 1 },
            { name: 'dc3', weight: 1 },
          ],
        };
      }),
    ).toEqual([]);
  });

  it.each([
    [
      'minimums above the replicas',
      (a: Loose) => {
        a.spec.workloads[0].replicas = 2;
        a.spec.placement = {
          strategy: 'spread',
          sites: [
            { name: 'dc1', minReplicas: 2 },
            { name: 'dc2', minReplicas: 1 },
          ],
        };
      },
      [
        "spec.workloads[0].replicas: is 2 but the placement's minReplicas add up to 3 (strategy spread: replicas is the total across sites)",
        "spec.workloads[1].replicas: is 1 but the placement's minReplicas add up to 3 (strategy spread: replicas is the total across sites)",
      ],
    ],
    [
      'minReplicas without strategy spread',
      (a: Loose) => (a.spec.placement = { sites: [{ name: 'dc1', minReplicas: 1 }] }),
      [
        'spec.placement.sites[0].minReplicas: applies only to strategy spread (replicate runs the full replicas on every site)',
      ],
    ],
    [
      'every weight 0',
      (a: Loose) =>
        (a.spec.placement = {
          strategy: 'spread',
          sites: [
            { name: 'dc1', weight: 0 },
            { name: 'dc2', weight: 0 },
          ],
        }),
      ['spec.placement.sites: strategy spread needs at least one site with a weight above 0'],
    ],
    [
      'an unknown strategy',
      (a: Loose) => (a.spec.placement = { strategy: 'balanced', sites: [{ name: 'dc1' }] }),
      ["spec.placement.strategy: must be one of 'replicate', 'spread' (got 'balanced')"],
    ],
  ])('rejects a placement with %s', (_what, mutate, expected) => {
    expect(errorsAfter(mutate)).toEqual(expected);
  });

  it('forbids metadata.project on Site and Project', () => {
    const project = {
      apiVersion: 'bulwark.io/v1',
      kind: 'Project',
      metadata: { name: 'bank', project: 'x' },
      spec: { tenant: 'retail' },
    };
    expect(validateResource(project).errors).toEqual([
      {
        path: 'metadata.project',
        message: 'must not be set (Site and Project are not inside a project)',
        fix: "remove 'project'",
      },
    ]);
  });

  it('requires kind and explains the choices', () => {
    expect(validateResource({ apiVersion: 'bulwark.io/v1', kind: 'Deployment' }).errors).toEqual([
      {
        path: 'kind',
        message: "must be one of 'Site', 'Project', 'App' (got 'Deployment')",
        fix: 'set kind to Site, Project or App',
      },
    ]);
    expect(validateResource('hello').errors[0]?.message).toBe(
      'must be a mapping with apiVersion, kind, metadata and spec',
    );
  });

  describe('semantic rules', () => {
    it('rejects duplicate workload names', () => {
      expect(errorsAfter((a) => (a.spec.workloads[1].name = 'api'))).toEqual([
        'spec.workloads[1].name: duplicate workload name "api" (already used by spec.workloads[0])',
      ]);
    });

    it('rejects duplicate port names and numbers in a workload', () => {
      expect(errorsAfter((a) => a.spec.workloads[0].ports.push({ name: 'http', port: 8080 }))).toEqual([
        'spec.workloads[0].ports[1].name: duplicate port name "http" (already used by spec.workloads[0].ports[0])',
        'spec.workloads[0].ports[1].port: duplicate port number 8080 (already used by spec.workloads[0].ports[0])',
      ]);
    });

    it('rejects a probe on an undeclared port and lists the declared ones', () => {
      const r = validateResource(
        (() => {
          const a = goodApp();
          a.spec.workloads[0]!.health!.readiness = { http: { path: '/healthz', port: 'web' } };
          return a;
        })(),
      );
      expect(r.errors).toEqual([
        {
          path: 'spec.workloads[0].health.readiness.http.port',
          message: "unknown port 'web' (declared: http)",
          fix: "use one of http or declare 'web' in spec.workloads[0].ports",
        },
      ]);
    });

    it('requires run or image for a service', () => {
      expect(errorsAfter((a) => delete a.spec.workloads[0].run)).toEqual([
        "spec.workloads[0]: a service workload needs 'run' or 'image'",
      ]);
    });

    it('rejects restartPolicy Always for a job', () => {
      expect(errorsAfter((a) => (a.spec.workloads[1].restartPolicy = 'Always'))).toEqual([
        'spec.workloads[1].restartPolicy: a job cannot use restartPolicy Always (it would run again forever)',
      ]);
    });
  });

  it('reports every error at once, schema and semantic', () => {
    const errs = errorsAfter((a) => {
      a.spec.workloads[0].replicas = 500;
      a.spec.workloads[0].health.readiness.http.port = 'nope';
      a.spec.rollout = {};
    });
    expect(errs).toHaveLength(3);
  });
});

describe('parseManifests', () => {
  const good = `apiVersion: bulwark.io/v1
kind: Project
metadata:
  name: bank
spec:
  tenant: retail
---
apiVersion: bulwark.io/v1
kind: App
metadata:
  name: ledger
  project: bank
spec:
  workloads:
    - name: api
      type: service
      run:
        command: [node, ledger.ts]
`;

  it('returns every resource of a multi-document YAML file in order', () => {
    const rs = parseManifests(`${good}---\n`, 'bank.yaml');
    expect(rs.map((r) => `${r.kind}/${r.metadata.name}`)).toEqual(['Project/bank', 'App/ledger']);
  });

  it('accepts JSON, including a list of resources', () => {
    const project = {
      apiVersion: 'bulwark.io/v1',
      kind: 'Project',
      metadata: { name: 'bank' },
      spec: { tenant: 'retail' },
    };
    expect(parseManifests(JSON.stringify(project))).toHaveLength(1);
    const site = {
      apiVersion: 'bulwark.io/v1',
      kind: 'Site',
      metadata: { name: 'local' },
      spec: { kind: 'local' },
    };
    expect(parseManifests(JSON.stringify([project, site], null, 2))).toHaveLength(2);
  });

  it('locates each error at its document and line', () => {
    const text = good
      .replace('tenant: retail', 'tenant: retail\n  owner: me')
      .replace('type: service', 'type: service\n      replicas: 1000');
    const err = caught(() => parseManifests(text, 'bank.yaml'));
    expect(err.errors).toEqual([
      {
        path: 'spec.owner',
        message: "unknown field 'owner' (allowed: tenant, displayName)",
        fix: "remove 'owner'",
        source: 'bank.yaml',
        document: 1,
        line: 7,
        column: 3,
        resource: 'Project/bank',
      },
      {
        path: 'spec.workloads[0].replicas',
        message: 'must be <= 100',
        fix: 'got 1000; use a value <= 100',
        source: 'bank.yaml',
        document: 2,
        line: 18,
        column: 17,
        resource: 'App/bank/ledger',
      },
    ]);
    expect(err.message).toContain(
      'bank.yaml:18 (document 2, App/bank/ledger) spec.workloads[0].replicas: must be <= 100',
    );
  });

  it('locates a missing field at its parent', () => {
    const err = caught(() => parseManifests(good.replace('  tenant: retail\n', '  displayName: Bank\n')));
    expect(err.errors[0]).toMatchObject({ path: 'spec.tenant', message: 'is required', line: 5 });
  });

  it('rejects the same resource twice in one file', () => {
    const err = caught(() => parseManifests(`${good}---\n${good}`, 'x.yaml'));
    expect(err.errors.map(formatIssue)).toEqual([
      'x.yaml:23 (document 3, Project/bank) metadata.name: duplicate resource Project/bank (first defined in document 1); fix: remove one of them or give it another name',
      'x.yaml:30 (document 4, App/bank/ledger) metadata.name: duplicate resource App/bank/ledger (first defined in document 2); fix: remove one of them or give it another name',
    ]);
  });

  it('reports invalid YAML with its line', () => {
    const err = caught(() => parseManifests('kind: App\nmetadata: {name: x\n'));
    expect(err.errors[0]?.message).toMatch(/^invalid YAML: /);
    expect(err.errors[0]?.line).toBeGreaterThan(0);
  });

  it('rejects duplicate keys in a mapping', () => {
    const err = caught(() => parseManifests('kind: App\nkind: Site\n'));
    expect(err.errors[0]?.message).toMatch(/^invalid YAML: Map keys must be unique/);
  });

  it('rejects text with no resource', () => {
    expect(caught(() => parseManifests('---\n# nothing\n', 'empty.yaml')).errors).toEqual([
      {
        path: '',
        message: 'no resources found',
        fix: 'add a document with apiVersion, kind, metadata and spec',
        source: 'empty.yaml',
      },
    ]);
  });

  it('collects errors of all documents, not just the first', () => {
    const bad = good.replace('tenant: retail', 'tenant: Retail').replace('type: service', 'type: svc');
    expect(caught(() => parseManifests(bad)).errors.map((e) => e.document)).toEqual([1, 2]);
  });
});

describe('spec.isolation', () => {
  it('accepts a policy with custom signatures and a disabled built-in', () => {
    expect(
      errorsAfter((a) => {
        a.spec.isolation = {
          minHealthy: 2,
          maxIsolationsPerMinute: 5,
          quarantine: { cpu: 0.1, memoryFactor: 2, maxInstances: 2 },
          evidence: { profile: false },
          signatures: [
            { name: 'latency-spike', enabled: false },
            {
              name: 'db-pool-exhausted',
              when: { logPattern: { regex: 'pool exhausted', flags: 'i' } },
              severity: 'major',
              action: 'isolate',
            },
          ],
        };
      }),
    ).toEqual([]);
  });

  it('names the field of a bad policy value', () => {
    expect(errorsAfter((a) => (a.spec.isolation = { minHealthy: -1 }))).toEqual([
      'spec.isolation.minHealthy: must be >= 0',
    ]);
    expect(errorsAfter((a) => (a.spec.isolation = { quarantine: { memoryFactr: 2 } }))[0]).toMatch(
      /^spec\.isolation\.quarantine\.memoryFactr: unknown field/,
    );
  });

  it('rejects a signature whose regex does not compile, and a disabled rule that does not exist', () => {
    const badRegex = errorsAfter((a) => {
      a.spec.isolation = {
        signatures: [
          { name: 'bad-re', when: { logPattern: { regex: '(' } }, severity: 'major', action: 'alert' },
        ],
      };
    });
    expect(badRegex).toEqual([
      'spec.isolation.signatures[0].when.logPattern.regex: not a valid JavaScript regular expression: Invalid regular expression: /(/: Unterminated group',
    ]);
    const unknown = errorsAfter((a) => {
      a.spec.isolation = { signatures: [{ name: 'no-such-builtin', enabled: false }] };
    });
    expect(unknown).toHaveLength(1);
    expect(unknown[0]).toMatch(
      /^spec\.isolation\.signatures: 'no-such-builtin' is disabled but there is no such rule/,
    );
  });
});
