/**
 * Where the CLI finds the server and the token: flags, then environment
 * (BULWARK_SERVER, BULWARK_TOKEN), then a config file (--config,
 * BULWARK_CONFIG, ./.bulwark/cli.json written by `npm start`, then
 * ~/.config/bulwark/config.json).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CliError, EXIT } from './exit-codes.ts';

export interface CliConfig {
  server: string;
  token?: string;
  source: string;
}

export function configCandidates(explicit?: string): string[] {
  if (explicit) return [explicit];
  if (process.env.BULWARK_CONFIG) return [process.env.BULWARK_CONFIG];
  return [path.resolve('.bulwark/cli.json'), path.join(os.homedir(), '.config/bulwark/config.json')];
}

export function resolveConfig(flags: { server?: string; token?: string; config?: string }): CliConfig {
  let fileCfg: { server?: string; token?: string } = {};
  let source = 'defaults';
  for (const file of configCandidates(flags.config)) {
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
  return { server: server.replace(/\/$/, ''), ...(token ? { token } : {}), source };
}

/** Write a client config readable only by its owner (it holds a credential). */
export function writeConfig(file: string, cfg: { server: string; token: string }): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(cfg, null, 2) + '\n', { mode: 0o600 });
  fs.chmodSync(file, 0o600);
}
