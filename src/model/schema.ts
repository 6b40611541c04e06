/**
 * JSON Schema (draft-07, the dialect ajv 8 handles natively) of the Site,
 * Project and App manifests in `types.ts`. Published to
 * `schemas/bulwark.schema.json` by `publish-schema.ts` for editors and CI.
 *
 * Two extension keywords mark fields a later capability will implement, so the
 * validator can say "not supported yet (planned: X)" instead of a generic
 * unknown-field error, while generic validators still reject them (`not: {}`):
 * - `x-bulwark-planned: "<capability>"` on a property schema;
 * - `x-bulwark-planned-values: { "<value>": "<capability>" }` beside an `enum`.
 */
import { API_VERSION } from './types.ts';
import { DEFAULTS, DEFAULT_SITE, MEMORY_PATTERN } from './defaults.ts';
import { signaturesSchema } from '../isolation/signatures/schema.ts';

export const SCHEMA_ID = 'https://bulwark.io/schemas/bulwark.schema.json';
export const PLANNED_KEYWORD = 'x-bulwark-planned';
export const PLANNED_VALUES_KEYWORD = 'x-bulwark-planned-values';
export const DNS_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
export const ENV_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_]*$';
export const ABSOLUTE_PATH_PATTERN = '^/.*$';
export const LABEL_KEY_PATTERN = '^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$';

type Json = Record<string, unknown>;

/** Shorthand for a closed object: every object in the schema rejects unknown fields. */
function object(description: string, properties: Record<string, Json>, required: string[] = []): Json {
  const o: Json = { type: 'object', description, additionalProperties: false, properties };
  if (required.length > 0) o.required = required;
  return o;
}

function planned(capability: string, description: string): Json {
  return {
    description: `${description} Not supported yet (planned: ${capability}).`,
    not: {},
    [PLANNED_KEYWORD]: capability,
  };
}

const dnsLabel = (description: string): Json => ({
  type: 'string',
  description: `${description} A DNS label: 1..63 lowercase letters, digits and '-', starting and ending with a letter or digit.`,
  minLength: 1,
  maxLength: 63,
  pattern: DNS_LABEL_PATTERN,
});

const port = (description: string): Json => ({ type: 'integer', description, minimum: 1, maximum: 65535 });

const stringMap = (description: string, keyPattern: string): Json => ({
  type: 'object',
  description,
  propertyNames: { pattern: keyPattern, maxLength: 253 },
  additionalProperties: { type: 'string' },
});

const metadata = (projectRule: 'required' | 'forbidden'): Json =>
  object(
    'Identity of the resource. Fields marked "set by the server" are ignored on apply.',
    {
      name: dnsLabel('Name of the resource, unique per kind (and per project for App).'),
      ...(projectRule === 'required'
        ? { project: dnsLabel('Project the App belongs to.') }
        : {
            project: {
              description: 'Site and Project are not inside a project.',
              not: {},
            },
          }),
      labels: stringMap('Free-form key/value labels.', LABEL_KEY_PATTERN),
      generation: {
        type: 'integer',
        minimum: 0,
        description: 'Set by the server: bumps when the spec changes.',
      },
      resourceVersion: {
        type: 'integer',
        minimum: 0,
        description: 'Set by the server: bumps on every write.',
      },
      createdAt: { type: 'string', description: 'Set by the server (ISO 8601).' },
      updatedAt: { type: 'string', description: 'Set by the server (ISO 8601).' },
    },
    projectRule === 'required' ? ['name', 'project'] : ['name'],
  );

const status: Json = { type: 'object', description: 'Set by the server; ignored on apply.' };

function envelope(kind: string, description: string, meta: Json, spec: Json): Json {
  return object(
    description,
    {
      apiVersion: { const: API_VERSION, description: `Always "${API_VERSION}".` },
      kind: { const: kind, description: `Always "${kind}".` },
      metadata: meta,
      spec,
      status,
    },
    ['apiVersion', 'kind', 'metadata', 'spec'],
  );
}

const portRef = dnsLabel('Name of a port declared in the workload’s `ports`.');

const probe: Json = {
  ...object('Health probe: exactly one of http, tcp or exec, plus timing.', {
    http: object(
      'HTTP GET; a 2xx or 3xx answer passes.',
      {
        path: { type: 'string', pattern: '^/', description: 'Request path, starting with "/".' },
        port: portRef,
      },
      ['path', 'port'],
    ),
    tcp: object('TCP connect; an accepted connection passes.', { port: portRef }, ['port']),
    exec: object(
      'Run a command; exit code 0 passes.',
      { command: { type: 'array', minItems: 1, items: { type: 'string' }, description: 'argv form.' } },
      ['command'],
    ),
    intervalMs: {
      type: 'integer',
      minimum: 100,
      default: DEFAULTS.probe.intervalMs,
      description: 'Time between probes.',
    },
    timeoutMs: {
      type: 'integer',
      minimum: 50,
      default: DEFAULTS.probe.timeoutMs,
      description: 'Probe timeout.',
    },
    failureThreshold: {
      type: 'integer',
      minimum: 1,
      default: DEFAULTS.probe.failureThreshold,
      description: 'Consecutive failures before the probe is failing.',
    },
    successThreshold: {
      type: 'integer',
      minimum: 1,
      default: DEFAULTS.probe.successThreshold,
      description: 'Consecutive successes before the probe is passing.',
    },
    initialDelayMs: {
      type: 'integer',
      minimum: 0,
      default: DEFAULTS.probe.initialDelayMs,
      description: 'Delay after start before the first probe.',
    },
  }),
  oneOf: [{ required: ['http'] }, { required: ['tcp'] }, { required: ['exec'] }],
};

const workload: Json = object(
  'One workload of an App: a set of identical instances.',
  {
    name: dnsLabel('Workload name, unique in the App.'),
    type: {
      enum: ['service', 'stateful', 'job'],
      description:
        'service: stateless, long-running; stateful: long-running with identity; job: runs to completion.',
    },
    replicas: {
      type: 'integer',
      minimum: 0,
      maximum: 100,
      default: DEFAULTS.replicas,
      description: 'Number of instances.',
    },
    run: object(
      'Command line for the local runtime.',
      {
        command: {
          type: 'array',
          minItems: 1,
          items: { type: 'string', minLength: 1 },
          description: 'argv form.',
        },
        cwd: { type: 'string', minLength: 1, description: 'Working directory.' },
      },
      ['command'],
    ),
    image: { type: 'string', minLength: 1, description: 'Container image for the Kubernetes driver.' },
    ports: {
      type: 'array',
      description: 'Ports the instances listen on.',
      items: object(
        'A named port.',
        {
          name: dnsLabel('Port name used by probes and routing, e.g. "http".'),
          port: port('Port number the instance listens on.'),
          protocol: {
            enum: ['http', 'tcp'],
            default: DEFAULTS.portProtocol,
            description: 'Only http is routed by the gateway for now.',
          },
          timeoutMs: {
            type: 'integer',
            minimum: 100,
            maximum: 3_600_000,
            default: DEFAULTS.portTimeoutMs,
            description:
              'Gateway wait for a response before the request is given up on this instance and, when retryable (GET, or with an Idempotency-Key), sent to another one. Bounds what a hung instance costs.',
          },
        },
        ['name', 'port'],
      ),
    },
    env: stringMap('Environment variables.', ENV_NAME_PATTERN),
    health: object('Health probes.', {
      readiness: { ...probe, description: 'Readiness: gates traffic to the instance.' },
      liveness: { ...probe, description: 'Liveness: a failing instance is restarted.' },
    }),
    resources: object('Resource limits.', {
      cpu: { type: 'number', exclusiveMinimum: 0, maximum: 64, description: 'CPU limit in cores, e.g. 0.5.' },
      memory: {
        type: 'string',
        pattern: MEMORY_PATTERN,
        description: 'Memory limit: bytes with an optional unit, e.g. "128Mi", "1Gi", "512M".',
      },
    }),
    restartPolicy: {
      enum: ['Always', 'OnFailure', 'Never'],
      description: 'Default: Always for service/stateful, OnFailure for job.',
    },
    terminationGracePeriodMs: {
      type: 'integer',
      minimum: 0,
      maximum: 3_600_000,
      default: DEFAULTS.terminationGracePeriodMs,
      description: 'Grace period between SIGTERM and SIGKILL.',
    },
    volumes: planned('stateful volumes', 'Persistent volumes.'),
  },
  ['name', 'type'],
);

const appSpec: Json = object(
  'What the App runs and where.',
  {
    workloads: { type: 'array', minItems: 1, items: workload, description: 'Workloads of the App.' },
    placement: object(
      `Sites the App runs on. Default: the single site "${DEFAULT_SITE}".`,
      {
        strategy: {
          enum: ['replicate', 'spread'],
          default: DEFAULTS.placementStrategy,
          description:
            'replicate: every placed site runs each workload’s full replicas (weights steer traffic). spread: replicas is the total across the sites, split by weight (largest remainder) with per-site minReplicas; an unreachable site’s share moves to the healthy ones and comes back after the site’s failback period.',
        },
        sites: {
          type: 'array',
          minItems: 1,
          items: object(
            'A site and its weight.',
            {
              name: dnsLabel('Site name.'),
              weight: {
                type: 'integer',
                minimum: 0,
                maximum: 100,
                default: DEFAULTS.placementWeight,
                description: 'Relative share: of traffic (replicate) or of replicas (spread).',
              },
              minReplicas: {
                type: 'integer',
                minimum: 0,
                maximum: 100,
                default: 0,
                description:
                  'strategy spread: replicas of each workload this site always gets while it is healthy.',
              },
            },
            ['name'],
          ),
        },
      },
      ['sites'],
    ),
    autoscaling: planned('autoscale controller', 'Automatic replica scaling.'),
    isolation: object(
      'Fault isolation policy: which signatures take an instance out of traffic, and the safety limits. See docs/isolation-signatures.md.',
      {
        enabled: {
          type: 'boolean',
          default: true,
          description:
            'false: signatures are still evaluated and incidents recorded, but nothing is isolated.',
        },
        minHealthy: {
          type: 'integer',
          minimum: 0,
          default: 1,
          description:
            'Never isolate when fewer than this many other instances of the workload are ready (an alert is raised instead).',
        },
        maxIsolationsPerMinute: {
          type: 'integer',
          minimum: 1,
          maximum: 1000,
          default: 3,
          description:
            'Blast-radius limit: isolations per workload per rolling minute; beyond it, alert only.',
        },
        massFaultRatio: {
          type: 'number',
          exclusiveMinimum: 0,
          maximum: 1,
          default: 0.5,
          description:
            'When more than this fraction of a workload’s instances match a signature within 10 s, suspect a shared dependency: alert, do not isolate.',
        },
        quarantine: object('What happens to an isolated instance.', {
          cpu: {
            type: 'number',
            exclusiveMinimum: 0,
            maximum: 64,
            description: 'CPU cap (cores) while quarantined; default: unchanged.',
          },
          memoryFactor: {
            type: 'number',
            minimum: 1,
            maximum: 16,
            default: 1.5,
            description:
              'Multiply the memory limit while quarantined so a leaking process survives until its evidence is taken.',
          },
          maxInstances: {
            type: 'integer',
            minimum: 0,
            maximum: 100,
            default: 3,
            description:
              'Quarantined instances kept per workload; the oldest is deleted beyond this (retention).',
          },
          ttlSeconds: {
            type: 'integer',
            minimum: 60,
            default: 86400,
            description: 'Delete a quarantined instance after this long.',
          },
        }),
        evidence: object('Evidence bundle of a quarantined instance.', {
          profile: {
            type: 'boolean',
            default: true,
            description: 'Take a CPU profile and heap statistics of Node.js processes through the inspector.',
          },
          profileDurationMs: {
            type: 'integer',
            minimum: 100,
            maximum: 30000,
            default: 2000,
            description: 'How long the CPU profile samples.',
          },
        }),
        signatures: signaturesSchema,
      },
    ),
    rollout: planned('rollout controller', 'Rollout strategy.'),
  },
  ['workloads'],
);

const siteSpec: Json = object(
  'A data center (or this machine) where Apps run.',
  {
    kind: {
      enum: ['local', 'kubernetes'],
      description:
        '"local": this machine’s runtime driver. "kubernetes": a cluster reached through its API server (kubeconfig).',
    },
    displayName: { type: 'string', maxLength: 253, description: 'Human-readable name, e.g. "Shanghai DC1".' },
    gatewayPort: port('Port of the site’s HTTP gateway (local sites only).'),
    kubeconfig: object(
      'kind kubernetes: where the kubeconfig is. Exactly one of path or env; the Site stores only this reference, never credentials.',
      {
        path: {
          type: 'string',
          minLength: 1,
          maxLength: 4096,
          pattern: ABSOLUTE_PATH_PATTERN,
          description: 'Absolute path of a kubeconfig file on the control-plane host.',
        },
        env: {
          type: 'string',
          pattern: ENV_NAME_PATTERN,
          maxLength: 253,
          description: 'Name of a control-plane environment variable holding the kubeconfig text.',
        },
      },
    ),
    context: {
      type: 'string',
      minLength: 1,
      maxLength: 253,
      description: 'kind kubernetes: the kubeconfig context to use. Default: its current-context.',
    },
    bindBeforeStart: {
      type: 'boolean',
      default: false,
      description:
        'kind kubernetes: pods wait behind a scheduling gate until bound to an instance, so the container sees BULWARK_INSTANCE_ID. The cost: no pod (not even a self-healing restart of a deleted pod) starts while no control plane runs.',
    },
    health: object('How the control plane probes the site and decides failover and failback.', {
      intervalMs: {
        type: 'integer',
        minimum: 100,
        maximum: 60000,
        default: DEFAULTS.siteHealth.intervalMs,
        description: 'Time between health probes.',
      },
      timeoutMs: {
        type: 'integer',
        minimum: 50,
        maximum: 30000,
        default: DEFAULTS.siteHealth.timeoutMs,
        description: 'Timeout of one probe.',
      },
      failureThreshold: {
        type: 'integer',
        minimum: 1,
        maximum: 100,
        default: DEFAULTS.siteHealth.failureThreshold,
        description: 'Consecutive failed probes before the site is unreachable and its share moves.',
      },
      failbackAfterMs: {
        type: 'integer',
        minimum: 0,
        maximum: 86_400_000,
        default: DEFAULTS.siteHealth.failbackAfterMs,
        description:
          'Hysteresis: how long a returning site must answer every probe before it gets its share back.',
      },
    }),
  },
  ['kind'],
);

const projectSpec: Json = object(
  'A team’s project.',
  {
    tenant: dnsLabel('Tenant (department) the team belongs to.'),
    displayName: { type: 'string', maxLength: 253, description: 'Human-readable name.' },
  },
  ['tenant'],
);

export const KIND_DEFINITIONS = { Site: 'Site', Project: 'Project', App: 'App' } as const;

export const bulwarkSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: SCHEMA_ID,
  title: 'Bulwark manifest',
  description: `A Site, Project or App resource (apiVersion ${API_VERSION}).`,
  type: 'object',
  required: ['apiVersion', 'kind'],
  properties: { kind: { enum: ['Site', 'Project', 'App'] } },
  allOf: (['Site', 'Project', 'App'] as const).map((k) => ({
    if: { properties: { kind: { const: k } }, required: ['kind'] },
    then: { $ref: `#/definitions/${k}` },
  })),
  definitions: {
    Site: envelope('Site', 'A site: where Apps run.', metadata('forbidden'), siteSpec),
    Project: envelope(
      'Project',
      'A project: a team’s namespace for Apps.',
      metadata('forbidden'),
      projectSpec,
    ),
    App: envelope('App', 'An application: workloads and their placement.', metadata('required'), appSpec),
  },
} as const;

/** The published file's text (stable key order: the order above). */
export function renderSchema(): string {
  return `${JSON.stringify(bulwarkSchema, null, 2)}\n`;
}
