/**
 * Profiling fixture: an HTTP server on $PORT (0 = any) and $HOST that does a
 * little CPU work per request (so the profile has samples in user code) and
 * prints "listening <port>" once bound.
 *
 *   FIXTURE_BUSY_AFTER_MS   spin forever in JavaScript after this long
 *   FIXTURE_BLOCK_AFTER_MS  block the main thread in native code (a synchronous child process)
 */
import { execFileSync } from 'node:child_process';
import http from 'node:http';

const env = process.env;

function work(n: number): number {
  let x = 0;
  for (let i = 0; i < n; i++) x += Math.sqrt(i);
  return x;
}

const server = http.createServer((_req, res) => {
  res.end(String(work(20_000)));
});
server.listen(Number(env.PORT ?? 0), env.HOST ?? '127.0.0.1', () => {
  const addr = server.address();
  console.log(`listening ${addr && typeof addr === 'object' ? addr.port : '?'}`);
});

if (env.FIXTURE_BUSY_AFTER_MS) {
  setTimeout(function spin() {
    for (;;) work(1000);
  }, Number(env.FIXTURE_BUSY_AFTER_MS));
}
if (env.FIXTURE_BLOCK_AFTER_MS) {
  setTimeout(() => execFileSync('sleep', ['600']), Number(env.FIXTURE_BLOCK_AFTER_MS));
}
