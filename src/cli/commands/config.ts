/**
 * `bulwark config save --server URL [--token T] [--tls-fingerprint sha256:... | --ca-file FILE] [--config FILE]`:
 * store how to reach a control plane, so later commands need no flags. The
 * server is called first with exactly these settings (its health route,
 * which needs no token), so a wrong pin or an untrusted certificate is
 * refused before it is saved.
 */
import path from 'node:path';
import { ApiClient } from '../client.ts';
import { resolveConfig, userConfigFile, writeConfig, type CliConfigFile } from '../config.ts';
import { CliError, EXIT } from '../exit-codes.ts';
import type { Io } from './resources.ts';

export async function cmdConfigSave(
  io: Io,
  f: {
    server?: string | undefined;
    token?: string | undefined;
    config?: string | undefined;
    'ca-file'?: string | undefined;
    'tls-fingerprint'?: string | undefined;
  },
): Promise<void> {
  if (!f.server)
    throw new CliError('config save needs --server URL (e.g. https://cp.example:7070)', EXIT.usage);
  const token = f.token ?? process.env.BULWARK_TOKEN;
  // The trust and URL checks of every command, on these flags alone (no config file is read).
  const cfg = resolveConfig({
    server: f.server,
    ...(token ? { token } : {}),
    readFile: false,
    ...(f['ca-file'] ? { 'ca-file': f['ca-file'] } : {}),
    ...(f['tls-fingerprint'] ? { 'tls-fingerprint': f['tls-fingerprint'] } : {}),
  });
  await new ApiClient(cfg).request('GET', '/api/v1/healthz', undefined, { timeoutMs: 10_000 });
  const file = f.config ?? process.env.BULWARK_CONFIG ?? userConfigFile();
  const saved: CliConfigFile & { server: string } = {
    server: cfg.server,
    ...(token ? { token } : {}),
    ...(cfg.trust?.fingerprint ? { tlsFingerprint: cfg.trust.fingerprint } : {}),
    ...(f['ca-file'] ? { caFile: path.resolve(f['ca-file']) } : {}),
  };
  writeConfig(file, saved);
  io.err(
    `saved ${cfg.server}${token ? ' with the token' : ''}${saved.tlsFingerprint ? `, pinning ${saved.tlsFingerprint}` : ''}` +
      `${saved.caFile ? `, trusting ${saved.caFile}` : ''} to ${file} (mode 0600)`,
  );
}
