/**
 * A certificate and its private key from PEM files, checked before the
 * server starts: both readable, both PEM, the key the certificate's own, the
 * certificate valid now. Every error names the flag that gave the file, so
 * `bulwark server` fails with the fix instead of a TLS handshake error later.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import { certFingerprint } from './fingerprint.ts';

export interface PemPair {
  /** The certificate file's whole text (a chain after the leaf is passed on to clients). */
  cert: string;
  key: string;
  /** Of the leaf certificate, `sha256:AB:...`. */
  fingerprint: string;
  /** The leaf's subjectAltName as X509Certificate prints it (`DNS:a, IP Address:1.2.3.4`). */
  subjectAltName: string;
  validTo: string;
  /** Things worth a log line that do not stop the start (a key readable by others). */
  warnings: string[];
}

export class TlsConfigError extends Error {}

export interface PemFiles {
  certFile: string;
  keyFile: string;
}

/** Flag names for the messages; `bulwark server`'s by default. */
export interface PemFlags {
  cert: string;
  key: string;
}

const DEFAULT_FLAGS: PemFlags = { cert: '--tls-cert', key: '--tls-key' };

function read(flag: string, file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new TlsConfigError(`${flag} ${file}: cannot read it (${code}); give a readable PEM file`);
  }
}

export function loadPemPair(files: PemFiles, flags: PemFlags = DEFAULT_FLAGS, now = new Date()): PemPair {
  const cert = read(flags.cert, files.certFile);
  const key = read(flags.key, files.keyFile);
  if (!cert.includes('-----BEGIN CERTIFICATE-----')) {
    throw new TlsConfigError(
      `${flags.cert} ${files.certFile}: not a PEM certificate (no '-----BEGIN CERTIFICATE-----' line); ` +
        (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(cert)
          ? `this file holds a private key: swap ${flags.cert} and ${flags.key}?`
          : 'convert a DER file with: openssl x509 -inform der -in FILE -out cert.pem'),
    );
  }
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new TlsConfigError(
      `${flags.cert} ${files.certFile}: the PEM certificate does not parse (${(err as Error).message})`,
    );
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) {
    throw new TlsConfigError(
      `${flags.key} ${files.keyFile}: not a PEM private key (no '-----BEGIN ... PRIVATE KEY-----' line)` +
        (key.includes('-----BEGIN CERTIFICATE-----')
          ? '; this file holds a certificate: swap the two flags?'
          : ''),
    );
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new TlsConfigError(
      `${flags.key} ${files.keyFile}: the private key does not parse (${(err as Error).message}); ` +
        'an encrypted key is not supported: decrypt it with openssl pkey -in FILE -out key.pem',
    );
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new TlsConfigError(
      `${flags.key} ${files.keyFile} is not the private key of the certificate in ${flags.cert} ${files.certFile}; ` +
        'give the key the certificate was issued for',
    );
  }
  if (new Date(x509.validTo) < now) {
    throw new TlsConfigError(
      `${flags.cert} ${files.certFile}: the certificate expired on ${x509.validTo}; renew it`,
    );
  }
  if (new Date(x509.validFrom) > now) {
    throw new TlsConfigError(
      `${flags.cert} ${files.certFile}: the certificate is not valid before ${x509.validFrom}; check the clock or the certificate`,
    );
  }
  const warnings: string[] = [];
  const mode = fs.statSync(files.keyFile).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    warnings.push(
      `${flags.key} ${files.keyFile} is readable by other users (mode ${mode.toString(8)}); chmod 600 it`,
    );
  }
  return {
    cert,
    key,
    fingerprint: certFingerprint(x509),
    subjectAltName: x509.subjectAltName ?? '',
    validTo: x509.validTo,
    warnings,
  };
}
