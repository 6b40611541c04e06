/**
 * Test fixture: a local process that does what any local user can to an
 * inspector on the host loopback. It polls /proc/net/tcp for a loopback port
 * that starts listening (one not in $PORTS, the ports listening when it
 * started), connects to it and holds the connection, printing
 * "connected <port>".
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';

const known = new Set((process.env.PORTS ?? '').split(' ').filter(Boolean).map(Number));

function newLoopbackPort(): number | undefined {
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const c = line.trim().split(/\s+/);
    // 0A: listening; 0100007F: 127.0.0.1 in /proc's little-endian hex.
    if (c[3] !== '0A' || !c[1]?.startsWith('0100007F:')) continue;
    const port = Number.parseInt(c[1].split(':')[1] ?? '', 16);
    if (!known.has(port)) return port;
  }
  return undefined;
}

const timer = setInterval(() => {
  const port = newLoopbackPort();
  if (port === undefined) return;
  clearInterval(timer);
  const s = net.connect(port, '127.0.0.1', () => console.log(`connected ${port}`));
  s.on('error', () => undefined);
}, 5);
