/**
 * The CLI's HTTPS transport against a real node:https server with a
 * self-signed pair from openssl: a pin or a CA file is trusted, a wrong pin
 * fails before any request reaches the server (so the token is never sent),
 * an untrusted certificate or a name it does not carry is refused.
 */
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureSelfSigned, type SelfSignedPair } from '../controlplane/tls/self-signed.ts';
import { httpRequest, TlsTrustError, type RequestSpec } from './transport.ts';

let dir: string;
let pair: SelfSignedPair;
let server: https.Server;
let base: string;
const seen: { authorization?: string | undefined }[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-transport-'));
  pair = await ensureSelfSigned(dir, '127.0.0.1');
  server = https.createServer({ cert: pair.cert, key: pair.key }, (req, res) => {
    seen.push({ authorization: req.headers.authorization });
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, url: req.url, body }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  fs.rmSync(dir, { recursive: true, force: true });
});

const call = (trust: RequestSpec['trust'], p = '/x', url = base) =>
  httpRequest({
    method: 'POST',
    url: url + p,
    headers: { authorization: 'Bearer bwk_secret_token_value' },
    body: '{"a":1}',
    timeoutMs: 5000,
    trust,
  });

describe('CLI transport over TLS', () => {
  it('trusts the pinned certificate and sends the request with its body', async () => {
    const res = await call({ fingerprint: pair.fingerprint });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toEqual({ method: 'POST', url: '/x', body: '{"a":1}' });
    expect((await call({ fingerprint: pair.fingerprint }, '/missing')).ok).toBe(false);
  });

  it('trusts the certificate given as a CA file, checking the name', async () => {
    expect((await call({ ca: pair.cert })).status).toBe(200);
    // 127.0.0.2 is loopback too, but not among the certificate's names.
    const other = https.createServer({ cert: pair.cert, key: pair.key }, (_q, r) => r.end('{}'));
    await new Promise<void>((r) => other.listen(0, '127.0.0.2', () => r()));
    try {
      const url = `https://127.0.0.2:${(other.address() as AddressInfo).port}`;
      const err = await call({ ca: pair.cert }, '/x', url).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TlsTrustError);
      expect((err as Error).message).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID.*a name it lists/);
      // The pin does not care about names: exactly this certificate is trusted wherever it is.
      expect((await call({ fingerprint: pair.fingerprint }, '/x', url)).status).toBe(200);
    } finally {
      await new Promise<void>((r) => other.close(() => r()));
    }
  });

  it('refuses a wrong pin before anything is sent: the server sees no request and no token', async () => {
    const before = seen.length;
    const wrong = 'sha256:' + Array(32).fill('00').join(':');
    const err = await call({ fingerprint: wrong }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TlsTrustError);
    expect((err as Error).message).toContain(
      `presented certificate ${pair.fingerprint}, not the pinned ${wrong}`,
    );
    expect(seen.length).toBe(before);
  });

  it('refuses a self-signed certificate without a CA file or pin, saying which flag fixes it', async () => {
    const before = seen.length;
    await expect(call(undefined)).rejects.toThrow(
      /does not trust .*pass --ca-file FILE .* or --tls-fingerprint/,
    );
    expect(seen.length).toBe(before);
  });

  it('refuses trust settings on a plain http:// URL (the pin would protect nothing)', async () => {
    await expect(call({ fingerprint: pair.fingerprint }, '/x', 'http://127.0.0.1:1')).rejects.toThrow(
      /plain HTTP but a CA file or pinned fingerprint is configured; use https:\/\//,
    );
  });
});
