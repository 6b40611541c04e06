/**
 * Where the API may listen without TLS: only on loopback, where a bearer
 * token never crosses a wire. Anything else (0.0.0.0, ::, an interface
 * address, a host name) carries tokens over a network, so it needs TLS.
 */
import net from 'node:net';

/** True for 127.0.0.0/8, ::1, ::ffff:127.x.x.x and the name `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, '');
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    return mapped !== null && mapped[1]!.startsWith('127.');
  }
  return false;
}

/** The refusal to listen in clear text beyond loopback, naming the flags that fix it. */
export function clearTextRefusal(host: string): string {
  return (
    `--host ${host} is not a loopback address, and without TLS the API would receive bearer tokens in ` +
    'clear text; add --tls-cert FILE --tls-key FILE (a certificate and its key, PEM), or --tls-self-signed ' +
    '(a generated pair kept in the data directory; clients pin its fingerprint), or listen on 127.0.0.1'
  );
}
