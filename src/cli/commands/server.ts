/** `bulwark server`: run the control plane in the foreground until SIGINT/SIGTERM. */
import fs from 'node:fs';
import path from 'node:path';
import { ControlPlane, type ControlPlaneOptions } from '../../controlplane/control-plane.ts';
import { TlsConfigError } from '../../controlplane/tls/pem-pair.ts';
import type { ServerTlsOptions } from '../../controlplane/tls/server-tls.ts';
import { writeConfig, type CliConfigFile } from '../config.ts';
import { CliError, EXIT } from '../exit-codes.ts';
import { missingServerNodeFlags } from '../node-flags.ts';
import type { Io } from './resources.ts';

/** `--tls-cert/--tls-key` or `--tls-self-signed` into the control plane's option; mistakes name the flag. */
export function tlsFlags(f: {
  'tls-cert'?: string | undefined;
  'tls-key'?: string | undefined;
  'tls-self-signed'?: boolean | undefined;
}): ServerTlsOptions | undefined {
  const cert = f['tls-cert'];
  const key = f['tls-key'];
  if (f['tls-self-signed']) {
    if (cert !== undefined || key !== undefined) {
      throw new CliError(
        '--tls-self-signed generates its own pair; drop it, or drop --tls-cert/--tls-key',
        EXIT.usage,
      );
    }
    return { selfSigned: true };
  }
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined)
    throw new CliError('--tls-key needs --tls-cert FILE (the certificate, PEM)', EXIT.usage);
  if (key === undefined)
    throw new CliError('--tls-cert needs --tls-key FILE (its private key, PEM)', EXIT.usage);
  return { certFile: path.resolve(cert), keyFile: path.resolve(key) };
}

/**
 * Keep `<dataDir>/cli.json` pointing at this server: its URL, and the
 * fingerprint to pin when the certificate is self-signed (the local CLI then
 * trusts it without flags). Only a file that exists is touched.
 */
function refreshLocalConfig(file: string, cp: ControlPlane): void {
  let cfg: CliConfigFile;
  try {
    cfg = JSON.parse(fs.readFileSync(file, 'utf8')) as CliConfigFile;
  } catch {
    return;
  }
  const { tlsFingerprint: _old, caFile: _ca, ...rest } = cfg;
  writeConfig(file, {
    ...rest,
    server: cp.url,
    ...(cp.tls?.source === 'self-signed' ? { tlsFingerprint: cp.tls.fingerprint } : {}),
    ...(cp.tls?.source === 'files' && cfg.caFile ? { caFile: cfg.caFile } : {}),
  });
}

export async function runServer(
  io: Io,
  opts: ControlPlaneOptions & { stopWorkloadsOnExit?: boolean },
): Promise<ControlPlane & { shutdown: (why: string) => void }> {
  const dataDir = path.resolve(opts.dataDir ?? '.bulwark');
  const missing = missingServerNodeFlags(process.execArgv);
  if (missing.length > 0)
    io.err(
      `note: Node runs without ${missing.join(' ')} (bin/bulwark server and npm start pass it; see src/cli/node-flags.ts): the request-log receiver will pause for garbage collection more often`,
    );
  let token: string | undefined;
  let cp: ControlPlane;
  try {
    cp = await ControlPlane.create({
      ...opts,
      dataDir,
      onInitialToken: (t) => {
        token = t;
      },
    });
  } catch (err) {
    // A refused listen address or a bad certificate is a usage error, with the flag in the message.
    if (err instanceof TlsConfigError) throw new CliError(err.message, EXIT.usage);
    throw err;
  }
  const cfgFile = path.join(dataDir, 'cli.json');
  if (cp.tls) {
    for (const w of cp.tls.warnings) io.err(`warning: ${w}`);
    io.err(
      [
        '',
        `TLS: serving ${cp.url} with ${cp.tls.source === 'self-signed' ? (cp.tls.generated ? 'a newly generated self-signed' : 'the self-signed') : 'the given'} certificate ${cp.tls.certFile}`,
        `  fingerprint ${cp.tls.fingerprint}`,
        `  valid for ${cp.tls.subjectAltName || '(no subjectAltName)'} until ${cp.tls.validTo}`,
        cp.tls.source === 'self-signed'
          ? `  clients pin it: bulwark --server ${cp.url} --tls-fingerprint ${cp.tls.fingerprint}`
          : '  clients trust it through its CA (bulwark --ca-file CA.pem if not a system CA)',
        '',
      ].join('\n'),
    );
  }
  if (!token) refreshLocalConfig(cfgFile, cp);
  if (token) {
    writeConfig(cfgFile, {
      server: cp.url,
      token,
      ...(cp.tls?.source === 'self-signed' ? { tlsFingerprint: cp.tls.fingerprint } : {}),
    });
    io.err(
      [
        '',
        'First start: an admin API token was created. It is shown only this once and stored on the server',
        'only as a SHA-256 hash:',
        '',
        `    ${token}`,
        '',
        `The CLI config ${cfgFile} (mode 0600) holds it for this checkout.`,
        '',
      ].join('\n'),
    );
  }
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    io.err(
      `${sig}: shutting down${opts.stopWorkloadsOnExit ? ' (stopping instances and the gateway)' : ' (instances keep running)'}...`,
    );
    cp.close({ stopWorkloads: opts.stopWorkloadsOnExit ?? false }).then(
      () => process.exit(0),
      (err: unknown) => {
        io.err(`shutdown failed: ${String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  return Object.assign(cp, { shutdown: stop });
}
