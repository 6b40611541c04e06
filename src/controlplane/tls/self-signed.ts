/**
 * `--tls-self-signed`: a certificate and key generated once with the openssl
 * CLI (Node can make keys but not X.509 certificates), kept 0600 in
 * `<dataDir>/tls/` and reused on every later start, so the fingerprint that
 * clients pinned stays valid across restarts. Delete the two files to get a
 * new pair (and re-pin).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { loadPemPair, TlsConfigError, type PemPair } from './pem-pair.ts';

const run = promisify(execFile);

export const SELF_SIGNED_CERT = 'self-signed-cert.pem';
export const SELF_SIGNED_KEY = 'self-signed-key.pem';
/** 825 days: the longest validity clients such as macOS still accept for a server certificate. */
const VALID_DAYS = 825;

export interface SelfSignedPair extends PemPair {
  certFile: string;
  keyFile: string;
  /** True when this call generated the pair (first start), false when it reused one. */
  generated: boolean;
}

/**
 * Names the certificate is valid for: loopback, this host's name and
 * addresses, and the listen host when it is a specific one. Hostname checks
 * (a client with `--ca-file`) then pass for the usual ways to reach it.
 */
export function subjectAltNames(listenHost: string): string[] {
  const dns = new Set(['localhost', os.hostname().toLowerCase()]);
  const ips = new Set(['127.0.0.1', '::1']);
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (!a.address.startsWith('fe80:')) ips.add(a.address);
  }
  const h = listenHost.replace(/^\[|\]$/g, '');
  if (net.isIP(h)) {
    if (h !== '0.0.0.0' && h !== '::') ips.add(h);
  } else if (h) dns.add(h.toLowerCase());
  return [...[...dns].map((d) => `DNS:${d}`), ...[...ips].map((ip) => `IP:${ip}`)];
}

/** Load the pair from `dir`, generating it first when absent. */
export async function ensureSelfSigned(
  dir: string,
  listenHost: string,
  opts: { openssl?: string } = {},
): Promise<SelfSignedPair> {
  const certFile = path.join(dir, SELF_SIGNED_CERT);
  const keyFile = path.join(dir, SELF_SIGNED_KEY);
  const flags = { cert: '--tls-self-signed (certificate)', key: '--tls-self-signed (key)' };
  const haveCert = fs.existsSync(certFile);
  const haveKey = fs.existsSync(keyFile);
  if (haveCert && haveKey)
    return { ...loadPemPair({ certFile, keyFile }, flags), certFile, keyFile, generated: false };
  if (haveCert !== haveKey) {
    throw new TlsConfigError(
      `--tls-self-signed: ${haveCert ? keyFile : certFile} is missing but ${haveCert ? certFile : keyFile} exists; ` +
        'delete the other file too and start again to generate a new pair (clients must then pin the new fingerprint)',
    );
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Generate beside the final names and rename: a crash mid-way leaves no half pair that would be reused.
  const tmpCert = `${certFile}.${process.pid}.tmp`;
  const tmpKey = `${keyFile}.${process.pid}.tmp`;
  const openssl = opts.openssl ?? 'openssl';
  try {
    await run(openssl, [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      tmpKey,
      '-out',
      tmpCert,
      '-days',
      String(VALID_DAYS),
      '-subj',
      '/CN=bulwark control plane',
      '-addext',
      `subjectAltName=${subjectAltNames(listenHost).join(',')}`,
      '-addext',
      'basicConstraints=critical,CA:FALSE',
      '-addext',
      'keyUsage=critical,digitalSignature',
      '-addext',
      'extendedKeyUsage=serverAuth',
    ]);
    fs.chmodSync(tmpKey, 0o600);
    fs.chmodSync(tmpCert, 0o600);
    fs.renameSync(tmpKey, keyFile);
    fs.renameSync(tmpCert, certFile);
  } catch (err) {
    fs.rmSync(tmpKey, { force: true });
    fs.rmSync(tmpCert, { force: true });
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const why =
      e.code === 'ENOENT'
        ? `${openssl} not found (scripts/prereqs.sh installs it)`
        : (e.stderr ?? e.message).trim();
    throw new TlsConfigError(
      `--tls-self-signed: generating a certificate failed: ${why}; or give your own with --tls-cert/--tls-key`,
    );
  }
  return { ...loadPemPair({ certFile, keyFile }, flags), certFile, keyFile, generated: true };
}
