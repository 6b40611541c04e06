#!/usr/bin/env node
/**
 * `bulwark` command line. Parses flags, resolves the server and token, runs
 * one command and exits with a meaningful code (see exit-codes.ts).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ApiClient } from './client.ts';
import { cmdAgent, cmdAgentManifest } from './commands/agent.ts';
import { cmdApply } from './commands/apply.ts';
import { cmdAuditVerifyBundle } from './commands/audit.ts';
import { cmdDiagnose, cmdProfile, cmdTopology } from './commands/diagnose.ts';
import { cmdEvidence, cmdIncident, cmdIncidents, cmdQuarantine } from './commands/incidents.ts';
import {
  appRef,
  cmdDelete,
  cmdDescribe,
  cmdGet,
  cmdLogs,
  cmdScale,
  cmdStatus,
  type Io,
} from './commands/resources.ts';
import { runServer, tlsFlags } from './commands/server.ts';
import { cmdTokens } from './commands/tokens.ts';
import { cmdConfigSave } from './commands/config.ts';
import { planCpus } from '../controlplane/cpu-plan.ts';
import { cpuCount, parseCpuList } from '../util/cpus.ts';
import { otlpOptionsFromEnv, validateOtlpOptions, type OtlpOptions } from '../observability/otlp/exporter.ts';
import { resolveConfig } from './config.ts';
import { CliError, EXIT } from './exit-codes.ts';
import { parseFormat } from './output.ts';
import { processIo } from './terminal-io.ts';

export const USAGE = `bulwark — financial-grade container cloud control plane

Usage:
  bulwark apply -f FILE [-f FILE...] [--dry-run] [--wait] [--timeout 120]
  bulwark get sites|projects|apps|instances [NAME|PROJECT/APP] [-p PROJECT] [-o table|json|yaml]
  bulwark describe app PROJECT/APP
  bulwark delete app PROJECT/APP | project NAME | site NAME
  bulwark scale PROJECT/APP --replicas N [--workload NAME] [--wait]
  bulwark logs INSTANCE [--tail 100] [--stream stdout|stderr|both]
  bulwark status
  bulwark incidents [-p PROJECT] [--app APP] [--state open|isolated|mitigated|resolved] [--limit 100]
  bulwark incident ID                     timeline and evidence status of one incident
  bulwark evidence ID [--output FILE]     download the evidence bundle (default ./ID-evidence.tar.gz)
  bulwark quarantine release INSTANCE     return a quarantined instance to traffic
  bulwark quarantine delete INSTANCE      stop and remove it (its evidence is kept)
  bulwark topology [-p PROJECT] [--window 60s]   call edges with rate, errors, latency, connections
  bulwark diagnose PROJECT/APP [--window 60s]    which layer is at fault (network, container, code) and where
  bulwark profile INSTANCE [--duration 10] [--output DIR]   CPU profile + heap stats without a restart
  bulwark agent --site SITE [--node NAME] [--interval-ms 1000]   eBPF node agent on another node of a site
                 (a Kubernetes node or another host; root; reports flows to the control plane)
  bulwark agent manifest --site SITE --image IMAGE [--namespace bulwark-system]
                 [--agent-token bwk_... | --create-agent-token]
                 DaemonSet (+ Namespace, Secret) that runs the agent on every node of a cluster; the
                 Secret gets an agent-scoped token (never this CLI's own), and the CLI's TLS trust
  bulwark tokens create --scope agent --name NAME   agent token (reports + inventory only); secret shown once
  bulwark tokens list | revoke ID [--reason TEXT]   (admin token needed; a revoked token gets 401)
  bulwark audit verify --bundle DIR [--keys FILE]   check an exported audit bundle offline
  bulwark config save --server URL [--token T] [--tls-fingerprint sha256:... | --ca-file FILE]
                 check the server with these settings, then store them in the config file (0600)
  bulwark server [--host 127.0.0.1] [--port 7070] [--data-dir .bulwark] [--store-url postgres://... | env BULWARK_STORE_URL]
                 [--gateway-port 8080] [--gateway-cpus 1,2] [--control-plane-cpus 1] [--unprivileged]
                 (--gateway-cpus: HAProxy pinned to those CPUs, one thread each; --control-plane-cpus:
                 this process, which also parses the gateway's request logs; with either, the local
                 instances get the other CPUs. Small box: --gateway-cpus 1 --control-plane-cpus 1)
                 [--otlp-endpoint URL] [--otlp-sample-ratio 1]   gateway spans to an OpenTelemetry collector
                 (OTLP/HTTP; env OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / _ENDPOINT / _HEADERS work too)
                 (env BULWARK_BOOTSTRAP_TOKEN=bwk_... registers that token on first start, for automation)
                 [--tls-cert FILE --tls-key FILE | --tls-self-signed]   HTTPS for the API; required when
                 --host is not loopback (self-signed: generated once into DATA_DIR/tls, fingerprint printed)

Global flags:
  --server URL   control plane URL (env BULWARK_SERVER; default http://127.0.0.1:7070)
  --token TOKEN  API token (env BULWARK_TOKEN)
  --config FILE  client config (env BULWARK_CONFIG; default: .bulwark/cli.json here or in a parent dir, then $XDG_CONFIG_HOME/bulwark/config.json (bulwark config save), then $XDG_CONFIG_HOME/bulwark/local.json (npm start); XDG_CONFIG_HOME defaults to ~/.config)
  --ca-file FILE trust this CA (or the server's own certificate) for https:// (env BULWARK_CA_FILE; config caFile)
  --tls-fingerprint sha256:...  trust exactly the server certificate with this SHA-256 fingerprint
                 (env BULWARK_TLS_FINGERPRINT; config tlsFingerprint)
  -o FORMAT      table (default), json or yaml (for 'evidence' and 'profile', -o/--output is where to write)

Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 invalid input, 5 conflict,
            6 unauthorized, 7 control plane unreachable, 8 timed out waiting.`;

function intFlag(name: string, v: string | undefined, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new CliError(`--${name} ${v}: must be an integer from ${min} to ${max}`, EXIT.usage);
  }
  return n;
}

/** `--gateway-cpus 1,2` or `2-3` (or `--control-plane-cpus`): CPU numbers this machine has. */
export function cpusFlag(v: string, flag = 'gateway-cpus', have: number = cpuCount()): number[] {
  const fail = (why: string): never => {
    throw new CliError(`--${flag} ${v}: ${why}; give CPU numbers such as 1 or 1,2 or 2-3`, EXIT.usage);
  };
  let cpus: number[] = [];
  try {
    cpus = parseCpuList(v);
  } catch (err) {
    fail((err as Error).message);
  }
  const beyond = cpus.filter((c) => c >= have);
  if (beyond.length > 0) fail(`this machine has CPUs 0-${have - 1}, not ${beyond.join(',')}`);
  if (new Set(cpus).size !== cpus.length) fail('a CPU is listed twice');
  if (cpus.length >= have) fail(`that is every CPU (${have}): leave at least one to the instances`);
  return cpus;
}

/** `--otlp-endpoint` (a base URL or the full traces URL) over the OTEL_* environment. */
function otlpFlags(endpoint: string | undefined, ratio: string | undefined): OtlpOptions | undefined {
  let o: OtlpOptions | undefined;
  try {
    o = otlpOptionsFromEnv(process.env);
  } catch (err) {
    throw new CliError((err as Error).message, EXIT.usage);
  }
  if (endpoint !== undefined) {
    const url = /^https?:\/\/[^/]+\/?$/.test(endpoint)
      ? `${endpoint.replace(/\/$/, '')}/v1/traces`
      : endpoint;
    o = { ...o, endpoint: url };
  }
  if (ratio !== undefined) {
    if (!o)
      throw new CliError(
        '--otlp-sample-ratio needs --otlp-endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT)',
        EXIT.usage,
      );
    o = { ...o, sampleRatio: Number(ratio) };
  }
  if (!o) return undefined;
  try {
    return validateOtlpOptions(o, {
      endpoint:
        endpoint !== undefined
          ? '--otlp-endpoint'
          : process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim()
            ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'
            : 'OTEL_EXPORTER_OTLP_ENDPOINT',
      sampleRatio: '--otlp-sample-ratio',
      headers: 'OTEL_EXPORTER_OTLP_HEADERS',
    });
  } catch (err) {
    throw new CliError((err as Error).message, EXIT.usage);
  }
}

const OPTIONS = {
  server: { type: 'string' },
  token: { type: 'string' },
  config: { type: 'string' },
  output: { type: 'string', short: 'o' },
  file: { type: 'string', short: 'f', multiple: true },
  project: { type: 'string', short: 'p' },
  'dry-run': { type: 'boolean' },
  wait: { type: 'boolean' },
  timeout: { type: 'string' },
  replicas: { type: 'string' },
  workload: { type: 'string' },
  app: { type: 'string' },
  state: { type: 'string' },
  limit: { type: 'string' },
  tail: { type: 'string' },
  stream: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  'data-dir': { type: 'string' },
  'store-url': { type: 'string' },
  'gateway-port': { type: 'string' },
  'gateway-cpus': { type: 'string' },
  'control-plane-cpus': { type: 'string' },
  unprivileged: { type: 'boolean' },
  'otlp-endpoint': { type: 'string' },
  'otlp-sample-ratio': { type: 'string' },
  window: { type: 'string' },
  duration: { type: 'string' },
  site: { type: 'string' },
  node: { type: 'string' },
  'interval-ms': { type: 'string' },
  image: { type: 'string' },
  namespace: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-self-signed': { type: 'boolean' },
  'ca-file': { type: 'string' },
  'tls-fingerprint': { type: 'string' },
  scope: { type: 'string' },
  name: { type: 'string' },
  reason: { type: 'string' },
  'agent-token': { type: 'string' },
  'create-agent-token': { type: 'boolean' },
  bundle: { type: 'string' },
  keys: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/**
 * `--replicas -1` means the value -1 (parseArgs would call it ambiguous): a
 * negative number after a flag that takes a value is that value, so the
 * flag's own check answers it.
 */
export function joinDashValues(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const name = a.startsWith('--') ? a.slice(2) : undefined;
    const next = argv[i + 1];
    const opt = name !== undefined ? (OPTIONS as Record<string, { type: string }>)[name] : undefined;
    if (opt?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** parseArgs' complaints in Bulwark's words: which flag, what is wrong, what to type. */
export function parseErrorMessage(err: Error & { code?: string }, argv: string[]): string {
  const flag = /Option '(-[^' ]+)|Unknown option '([^']+)'/.exec(err.message);
  const name = flag?.[1] ?? flag?.[2];
  const help = "; run 'bulwark help' for the commands and their flags";
  if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && name) return `unknown flag ${name}${help}`;
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && name) {
    if (/argument missing/.test(err.message)) return `${name} needs a value, e.g. ${name} VALUE${help}`;
    if (/does not take an argument/.test(err.message))
      return `${name} is a switch and takes no value; write ${name} alone`;
    if (/ambiguous/.test(err.message)) {
      const next = argv[argv.indexOf(name) + 1];
      return `${name} needs a value, but '${next ?? ''}' after it is a flag; give the value (write ${name}=VALUE for a value starting with '-')`;
    }
  }
  return `${err.message.split('\n')[0]}${help}`;
}

export async function main(argv: string[], io: Io): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: joinDashValues(argv),
      allowPositionals: true,
      strict: true,
      options: OPTIONS,
    });
  } catch (err) {
    io.err(`error: ${parseErrorMessage(err as Error & { code?: string }, argv)}`);
    return EXIT.usage;
  }
  const { values: f, positionals } = parsed;
  const [cmd, a1, a2] = positionals;
  if (f.help || !cmd || cmd === 'help') {
    io.out(USAGE);
    return cmd || f.help ? EXIT.ok : EXIT.usage;
  }
  try {
    // `evidence` writes a file, so its -o/--output names that file rather than a format.
    const fmt = cmd === 'evidence' || cmd === 'profile' ? 'table' : parseFormat(f.output);
    const timeoutMs = intFlag('timeout', f.timeout, 120, 1, 3600) * 1000;
    if (cmd === 'server') {
      const tls = tlsFlags(f);
      const otlp = otlpFlags(f['otlp-endpoint'], f['otlp-sample-ratio']);
      const gatewayCpus = f['gateway-cpus'] !== undefined ? cpusFlag(f['gateway-cpus']) : undefined;
      const controlPlaneCpus =
        f['control-plane-cpus'] !== undefined
          ? cpusFlag(f['control-plane-cpus'], 'control-plane-cpus')
          : undefined;
      try {
        planCpus(cpuCount(), gatewayCpus, controlPlaneCpus);
      } catch (err) {
        throw new CliError(`--gateway-cpus/--control-plane-cpus: ${(err as Error).message}`, EXIT.usage);
      }
      await runServer(io, {
        ...(otlp ? { otlp } : {}),
        ...(f.host ? { host: f.host } : {}),
        ...(tls ? { tls } : {}),
        port: intFlag('port', f.port, 7070, 0, 65535),
        ...(f['data-dir'] ? { dataDir: f['data-dir'] } : {}),
        // The environment keeps a password out of the command line every local user sees (ps).
        ...((f['store-url'] ?? process.env.BULWARK_STORE_URL)
          ? { storeUrl: (f['store-url'] ?? process.env.BULWARK_STORE_URL)! }
          : {}),
        gatewayPort: intFlag('gateway-port', f['gateway-port'], 8080, 1, 65535),
        ...(gatewayCpus ? { gatewayCpus } : {}),
        ...(controlPlaneCpus ? { controlPlaneCpus } : {}),
        ...(f.unprivileged ? { privileged: false } : {}),
        ...(process.env.BULWARK_BOOTSTRAP_TOKEN
          ? { bootstrapToken: process.env.BULWARK_BOOTSTRAP_TOKEN }
          : {}),
        ...(process.env.BULWARK_LOG_LEVEL ? { logLevel: process.env.BULWARK_LOG_LEVEL as 'info' } : {}),
      });
      return await new Promise<number>(() => undefined); // runs until a signal
    }
    if (cmd === 'audit') {
      // Offline: a bundle is checked without a server or a token.
      if (a1 === 'verify' && f.bundle !== undefined) return cmdAuditVerifyBundle(io, fmt, f.bundle, f.keys);
      throw new CliError(
        `audit ${a1 ?? ''}: only 'audit verify --bundle DIR [--keys FILE]' so far (the server-side trail is not wired yet)`,
        EXIT.usage,
      );
    }
    if (cmd === 'config') {
      if (a1 !== 'save')
        throw new CliError(`unknown config subcommand '${a1 ?? ''}' (only 'save')`, EXIT.usage);
      await cmdConfigSave(io, f);
      return EXIT.ok;
    }
    const api = new ApiClient(resolveConfig(f));
    switch (cmd) {
      case 'apply':
        await cmdApply(api, io, fmt, f.file ?? [], {
          dryRun: f['dry-run'] ?? false,
          wait: f.wait ?? false,
          timeoutMs,
        });
        break;
      case 'get':
        await cmdGet(api, io, fmt, a1, a2, f.project);
        break;
      case 'describe':
        await cmdDescribe(api, io, fmt, a1, a2, f.project);
        break;
      case 'delete':
        await cmdDelete(api, io, a1, a2, f.project);
        break;
      case 'scale': {
        if (f.replicas === undefined) throw new CliError('scale needs --replicas N', EXIT.usage);
        const replicas = intFlag('replicas', f.replicas, 1, 0, 100);
        await cmdScale(api, io, appRef(a1, f.project), replicas, f.workload, f.wait ?? false, timeoutMs);
        break;
      }
      case 'logs':
        await cmdLogs(api, io, a1, intFlag('tail', f.tail, 100, 1, 10000), f.stream ?? 'both');
        break;
      case 'status':
        await cmdStatus(api, io, fmt);
        break;
      case 'incidents':
        await cmdIncidents(api, io, fmt, {
          ...(f.project ? { project: f.project } : {}),
          ...(f.app ? { app: f.app } : {}),
          ...(f.state ? { state: f.state } : {}),
          ...(f.limit !== undefined ? { limit: intFlag('limit', f.limit, 100, 1, 1000) } : {}),
        });
        break;
      case 'incident':
        await cmdIncident(api, io, fmt, a1);
        break;
      case 'evidence':
        await cmdEvidence(api, io, a1, f.output);
        break;
      case 'quarantine':
        await cmdQuarantine(api, io, fmt, a1, a2);
        break;
      case 'diagnose':
        await cmdDiagnose(api, io, fmt, appRef(a1, f.project), f.window);
        break;
      case 'profile':
        await cmdProfile(api, io, fmt, a1, intFlag('duration', f.duration, 10, 1, 120), f.output);
        break;
      case 'topology':
        await cmdTopology(api, io, fmt, f.project, f.window);
        break;
      case 'agent': {
        const intervalMs = intFlag('interval-ms', f['interval-ms'], 1000, 100, 60_000);
        if (a1 === 'manifest') {
          await cmdAgentManifest(api, io, {
            site: f.site,
            image: f.image,
            agentToken: f['agent-token'],
            createAgentToken: f['create-agent-token'] ?? false,
            namespace: f.namespace,
            intervalMs,
          });
          break;
        }
        if (a1 !== undefined)
          throw new CliError(`unknown agent subcommand '${a1}' (only 'manifest')`, EXIT.usage);
        const until = new Promise<void>((resolve) => {
          process.once('SIGINT', () => resolve());
          process.once('SIGTERM', () => resolve());
        });
        await cmdAgent(api, io, { site: f.site, node: f.node, intervalMs }, until);
        break;
      }
      case 'tokens':
        await cmdTokens(api, io, fmt, a1, a2, { scope: f.scope, name: f.name, reason: f.reason });
        break;
      default:
        throw new CliError(`unknown command '${cmd}'\n\n${USAGE}`, EXIT.usage);
    }
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CliError) {
      io.err(`error: ${err.message}`);
      return err.exitCode;
    }
    // Our errors carry the fix in their message; the stack is for bug reports only.
    io.err(`error: ${err instanceof Error ? err.message : String(err)}`);
    if (process.env.BULWARK_DEBUG && err instanceof Error && err.stack) io.err(err.stack);
    return EXIT.error;
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/bin/bulwark')) {
  const io: Io = processIo();
  main(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`fatal: ${String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
