/**
 * Where the CLI finds the server, the token and whom to trust over TLS:
 * flags, then environment (BULWARK_SERVER, BULWARK_TOKEN, BULWARK_CA_FILE,
 * BULWARK_TLS_FINGERPRINT), then a config file (--config, BULWARK_CONFIG,
 * .bulwark/cli.json written by `npm start` in this directory or a parent,
 * then $XDG_CONFIG_HOME/bulwark/config.json from `bulwark config save`, then
 * $XDG_CONFIG_HOME/bulwark/local.json from `npm start`; keys server, token,
 * caFile, tlsFingerprint).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseFingerprint } from '../controlplane/tls/fingerprint.ts';
import { CliError, EXIT } from './exit-codes.ts';
import type { TrustOptions } from './transport.ts';

export interface CliConfig {
  server: string;
  token?: string;
  source: string;
  /** How an https:// server is trusted; absent: the system CAs. */
  trust?: TrustOptions;
}

/** What a config file may hold (all optional). */
export interface CliConfigFile {
  server?: string;
  token?: string;
  /** Path of a PEM CA bundle (or the server's own certificate). */
  caFile?: string;
  /** `sha256:...` of the server certificate (what `bulwark server --tls-self-signed` prints). */
  tlsFingerprint?: string;
}

interface TrustLayer {
  caFile?: string | undefined;
  fingerprint?: string | undefined;
  /** How the user spells these in this layer, for messages. */
  names: { caFile: string; fingerprint: string };
}

/**
 * The first layer (flags, env, file) that sets either a CA file or a pin
 * decides; one layer setting both is ambiguous and refused.
 */
function resolveTrust(layers: TrustLayer[]): TrustOptions | undefined {
  for (const l of layers) {
    if (!l.caFile && !l.fingerprint) continue;
    if (l.caFile && l.fingerprint) {
      throw new CliError(
        `${l.names.caFile} and ${l.names.fingerprint} are both set; give one: a CA file (the server's chain is checked) or a pinned fingerprint (exactly that certificate)`,
        EXIT.usage,
      );
    }
    if (l.fingerprint) {
      try {
        return { fingerprint: parseFingerprint(l.fingerprint) };
      } catch (err) {
        throw new CliError(`${l.names.fingerprint}: ${(err as Error).message}`, EXIT.usage);
      }
    }
    const file = l.caFile!;
    let ca: string;
    try {
      ca = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new CliError(
        `${l.names.caFile} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give a readable PEM file`,
        EXIT.usage,
      );
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) {
      throw new CliError(
        `${l.names.caFile} ${file}: not a PEM certificate (no '-----BEGIN CERTIFICATE-----' line); give the CA's certificate or the server's own`,
        EXIT.usage,
      );
    }
    return { ca };
  }
  return undefined;
}

/** `$XDG_CONFIG_HOME/bulwark` (default `~/.config/bulwark`): the CLI's config from any directory. */
export function userConfigDir(): string {
  const xdg = process.env.XDG_CONFIG_HOME;
  // The XDG spec says a relative value is to be ignored.
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.config'), 'bulwark');
}

/** Where `bulwark config save` writes. */
export function userConfigFile(): string {
  return path.join(userConfigDir(), 'config.json');
}

/** Where `npm start` records the local control plane it started last, for a CLI run from anywhere. */
export function localDemoConfigFile(): string {
  return path.join(userConfigDir(), 'local.json');
}

/**
 * The config files to try, first found wins: a checkout's `.bulwark/cli.json`
 * in this directory or any parent (like git finds `.git`), then the user's
 * saved config, then the local control plane `npm start` recorded.
 */
export function configCandidates(explicit?: string, cwd: string = process.cwd()): string[] {
  if (explicit) return [explicit];
  if (process.env.BULWARK_CONFIG) return [process.env.BULWARK_CONFIG];
  const found: string[] = [];
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    const f = path.join(dir, '.bulwark/cli.json');
    if (fs.existsSync(f)) {
      found.push(f);
      break;
    }
    if (path.dirname(dir) === dir) break;
  }
  return [...found, userConfigFile(), localDemoConfigFile()];
}

export function resolveConfig(flags: {
  server?: string;
  token?: string;
  config?: string;
  'ca-file'?: string;
  'tls-fingerprint'?: string;
  /** false: flags and environment only (`config save` checks what it is about to write). */
  readFile?: boolean;
}): CliConfig {
  let fileCfg: CliConfigFile = {};
  let source = 'defaults';
  for (const file of flags.readFile === false ? [] : configCandidates(flags.config)) {
    if (!fs.existsSync(file)) {
      if (flags.config) throw new CliError(`config file ${file} does not exist`, EXIT.usage);
      continue;
    }
    try {
      fileCfg = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof fileCfg;
    } catch (err) {
      throw new CliError(`config file ${file} is not valid JSON: ${(err as Error).message}`, EXIT.usage);
    }
    source = file;
    break;
  }
  const server = flags.server ?? process.env.BULWARK_SERVER ?? fileCfg.server ?? 'http://127.0.0.1:7070';
  const token = flags.token ?? process.env.BULWARK_TOKEN ?? fileCfg.token;
  try {
    new URL(server);
  } catch {
    throw new CliError(`--server '${server}' is not a URL; expected e.g. http://127.0.0.1:7070`, EXIT.usage);
  }
  const trust = resolveTrust([
    {
      caFile: flags['ca-file'],
      fingerprint: flags['tls-fingerprint'],
      names: { caFile: '--ca-file', fingerprint: '--tls-fingerprint' },
    },
    {
      caFile: process.env.BULWARK_CA_FILE,
      fingerprint: process.env.BULWARK_TLS_FINGERPRINT,
      names: { caFile: 'BULWARK_CA_FILE', fingerprint: 'BULWARK_TLS_FINGERPRINT' },
    },
    {
      // A relative caFile in a config file means relative to that file.
      caFile: fileCfg.caFile ? path.resolve(path.dirname(source), fileCfg.caFile) : undefined,
      fingerprint: fileCfg.tlsFingerprint,
      names: { caFile: `caFile in ${source}`, fingerprint: `tlsFingerprint in ${source}` },
    },
  ]);
  return {
    server: server.replace(/\/$/, ''),
    ...(token ? { token } : {}),
    source,
    ...(trust ? { trust } : {}),
  };
}

/** Write a client config readable only by its owner (it holds a credential). */
export function writeConfig(file: string, cfg: CliConfigFile & { server: string }): void {
  // The file holds a token: its directory is the user's alone too.
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.writeFileSync(file, JSON.stringify(cfg, null, 2) + '\n', { mode: 0o600 });
  fs.chmodSync(file, 0o600);
}
