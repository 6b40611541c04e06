/**
 * One HTTP(S) exchange with the control plane, with the CLI's trust
 * settings. Node's fetch cannot take a CA or a pinned certificate without
 * undici's Agent (not a dependency), so this uses node:http over a socket we
 * connect ourselves:
 *   - `https://` with no trust settings: the system CAs and the host name.
 *   - `caFile`: that CA (or the server's self-signed certificate itself) and the host name.
 *   - `fingerprint`: exactly that certificate (SHA-256), whatever signed it and whatever
 *     names it carries; the pin is checked before a single byte (the token) is sent.
 */
import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { certFingerprint, parseFingerprint } from '../controlplane/tls/fingerprint.ts';

export interface TrustOptions {
  /** PEM text of the CA bundle to trust instead of the system's. */
  ca?: string;
  /** `sha256:AB:...`: trust only the certificate with this fingerprint. */
  fingerprint?: string;
}

export interface HttpAnswer {
  status: number;
  ok: boolean;
  body: Buffer;
}

/** The server presented a certificate we do not trust: not an outage, so never retried. */
export class TlsTrustError extends Error {}

export interface RequestSpec {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string | undefined;
  timeoutMs: number;
  trust?: TrustOptions | undefined;
}

function connectTls(url: URL, trust: TrustOptions, onReady: (err: Error | null, s?: Duplex) => void): void {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const pin = trust.fingerprint ? parseFingerprint(trust.fingerprint) : undefined;
  const socket = tls.connect({
    host,
    port: Number(url.port || 443),
    // SNI carries names only.
    ...(net.isIP(host) ? {} : { servername: host }),
    ALPNProtocols: ['http/1.1'],
    ...(trust.ca ? { ca: trust.ca } : {}),
    // With a pin the chain and names do not matter, the exact certificate does: checked below,
    // before the socket is handed to HTTP (nothing is written to it until then).
    rejectUnauthorized: pin === undefined,
  });
  let settled = false;
  const done = (err: Error | null, s?: Duplex): void => {
    if (settled) return;
    settled = true;
    onReady(err, s);
  };
  socket.once('secureConnect', () => {
    if (pin !== undefined) {
      const raw = socket.getPeerCertificate().raw as Buffer | undefined;
      const seen = raw ? certFingerprint(new X509Certificate(raw)) : 'no certificate';
      if (seen !== pin) {
        socket.destroy();
        done(
          new TlsTrustError(
            `the server at ${url.host} presented certificate ${seen}, not the pinned ${pin}; ` +
              'nothing was sent. If the server has a new certificate on purpose, pin the fingerprint ' +
              '`bulwark server` printed at start (--tls-fingerprint or tlsFingerprint in the CLI config); ' +
              'otherwise something is intercepting the connection',
          ),
        );
        return;
      }
    }
    done(null, socket);
  });
  socket.once('error', (err: NodeJS.ErrnoException) => {
    const code = err.code ?? '';
    // Verification failures come as errors with these codes; anything else is the network.
    if (/CERT|SELF_SIGNED|UNABLE_TO|HOSTNAME|ERR_TLS_CERT_ALTNAME_INVALID/.test(code)) {
      done(
        new TlsTrustError(
          `the server at ${url.host} presented a certificate this CLI does not trust (${code}: ${err.message}); ` +
            (trust.ca
              ? 'check that --ca-file is the CA that signed it (or the server certificate itself) and that the URL uses a name it lists'
              : 'pass --ca-file FILE (its CA, or the server certificate itself) or --tls-fingerprint sha256:... (printed by `bulwark server` at start)'),
        ),
      );
      return;
    }
    done(err);
  });
}

/** Send one request and read the whole answer. Network failures reject with the socket's error. */
export function httpRequest(spec: RequestSpec): Promise<HttpAnswer> {
  const url = new URL(spec.url);
  const isHttps = url.protocol === 'https:';
  if (!isHttps && url.protocol !== 'http:') {
    return Promise.reject(new TypeError(`unsupported URL scheme ${url.protocol}; use http:// or https://`));
  }
  if (!isHttps && spec.trust && (spec.trust.ca || spec.trust.fingerprint)) {
    return Promise.reject(
      new TlsTrustError(
        `${url.origin} is plain HTTP but a CA file or pinned fingerprint is configured; use https:// in --server`,
      ),
    );
  }
  return new Promise<HttpAnswer>((resolve, reject) => {
    const headers: Record<string, string> = { ...spec.headers };
    if (spec.body !== undefined) headers['content-length'] = String(Buffer.byteLength(spec.body));
    const req = http.request({
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port || (isHttps ? 443 : 80)),
      path: url.pathname + url.search,
      method: spec.method,
      headers: { host: url.host, ...headers },
      signal: AbortSignal.timeout(spec.timeoutMs),
      ...(isHttps
        ? {
            // No agent: each request gets the socket connectTls verified (the CLI makes few requests).
            createConnection: (_o: unknown, cb: (err: Error | null, s: Duplex) => void) => {
              connectTls(url, spec.trust ?? {}, (err, s) => cb(err, s as Duplex));
              return undefined;
            },
          }
        : {}),
    });
    req.once('error', reject);
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('error', reject);
      res.once('end', () => {
        const status = res.statusCode ?? 0;
        resolve({ status, ok: status >= 200 && status < 300, body: Buffer.concat(chunks) });
      });
    });
    req.end(spec.body);
  });
}
