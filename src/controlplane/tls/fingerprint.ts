/**
 * SHA-256 certificate fingerprints in one notation, `sha256:AB:CD:...`
 * (what `openssl x509 -noout -fingerprint -sha256` prints, with a prefix that
 * says which hash). Parsing also takes the bare 64 hex digits, any case, with
 * or without colons, so a pin can be pasted from either tool.
 */
import { X509Certificate } from 'node:crypto';

const PREFIX = 'sha256:';

/** The fingerprint of a DER or PEM certificate, as `sha256:AB:CD:...`. */
export function certFingerprint(cert: X509Certificate | string | Buffer): string {
  const x = cert instanceof X509Certificate ? cert : new X509Certificate(cert);
  return PREFIX + x.fingerprint256;
}

/**
 * Normalise a pin to `sha256:AB:CD:...`; throws a TypeError saying the
 * expected form when it is not a SHA-256 fingerprint.
 */
export function parseFingerprint(pin: string): string {
  const raw = pin.trim();
  const body = raw.toLowerCase().startsWith(PREFIX) ? raw.slice(PREFIX.length) : raw;
  const hex = body.replace(/:/g, '');
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new TypeError(
      `'${pin}' is not a SHA-256 certificate fingerprint; expected sha256: followed by 64 hex digits ` +
        '(colons allowed), as printed by `bulwark server` at start',
    );
  }
  return PREFIX + (hex.toUpperCase().match(/../g) ?? []).join(':');
}
