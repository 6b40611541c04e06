/**
 * Test program for the driver contract: an HTTP server on $PORT whose
 * misbehaviour is chosen by environment variables, so one binary covers
 * healthy, crashing, hanging, exiting and memory-hungry instances.
 *
 *   APP_READY_AFTER_MS   /healthz answers 503 until this long after start
 *   APP_EXIT_AFTER_MS    exit with APP_EXIT_CODE (default 3) after this long
 *   APP_HANG_AFTER_MS    after this long, /live and /healthz never answer
 *   APP_IGNORE_SIGTERM   "1": ignore SIGTERM (tests the SIGKILL escalation)
 *   APP_ALLOC_MB         allocate and touch this many MiB, 8 MiB every 10 ms
 *   APP_LINES            print this many numbered lines to stdout at start
 *   APP_CALL_HOST_PORT   GET http://$BULWARK_HOST_IP:<port>/ at start, print "host said <body>"
 *
 * Endpoints: /healthz, /live, /env (JSON of the environment), /crash (exit 3),
 * /say?text=T[&stream=stderr][&n=N] (print T, or N lines "T 1".."T N", to stdout or stderr),
 * /burn?ms=N (spin until this process used N ms of CPU, then answer).
 */
import http from 'node:http';

const env = process.env;
const started = Date.now();
const num = (k: string): number | undefined =>
  env[k] !== undefined && env[k] !== '' ? Number(env[k]) : undefined;
let hung = false;

const exitAfter = num('APP_EXIT_AFTER_MS');
if (exitAfter !== undefined) setTimeout(() => process.exit(num('APP_EXIT_CODE') ?? 3), exitAfter);
const hangAfter = num('APP_HANG_AFTER_MS');
if (hangAfter !== undefined) setTimeout(() => (hung = true), hangAfter);

process.on('SIGTERM', () => {
  console.log('got SIGTERM');
  if (env.APP_IGNORE_SIGTERM !== '1') process.exit(0);
});

const allocMb = num('APP_ALLOC_MB');
if (allocMb !== undefined) {
  const keep: Buffer[] = [];
  const timer = setInterval(() => {
    if (keep.length * 8 >= allocMb) return clearInterval(timer);
    keep.push(Buffer.alloc(8 * 1024 * 1024, 1));
  }, 10);
}

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  if (url === '/crash') {
    res.end('bye');
    setTimeout(() => process.exit(3), 10);
    return;
  }
  if ((url === '/live' || url === '/healthz') && hung) return; // never answer
  if (url.startsWith('/burn?')) {
    const ms = Number(new URL(url, 'http://app').searchParams.get('ms') ?? 0);
    const used = (): number => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
    // CPU time, not wall time: under a CPU quota the same work takes longer.
    const until = used() + ms;
    while (used() < until) {
      // spin
    }
    res.end('burnt');
    return;
  }
  if (url.startsWith('/say?')) {
    const q = new URL(url, 'http://app').searchParams;
    const text = q.get('text') ?? '';
    const n = q.get('n');
    const print = q.get('stream') === 'stderr' ? console.error : console.log;
    if (n === null) print(text);
    else for (let i = 1; i <= Number(n); i++) print(`${text} ${i}`);
    res.end('said');
    return;
  }
  if (url === '/healthz') {
    const ready = Date.now() - started >= (num('APP_READY_AFTER_MS') ?? 0);
    res.statusCode = ready ? 200 : 503;
    res.end(ready ? 'ok' : 'not yet');
    return;
  }
  if (url === '/live') {
    res.end('alive');
    return;
  }
  if (url === '/env') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(env));
    return;
  }
  res.statusCode = 404;
  res.end('not found');
});

const port = Number(env.PORT ?? 0);
server.listen(port, env.APP_HOST ?? '0.0.0.0', () => {
  console.log(`listening on ${port}`);
  console.error('stderr hello');
  const lines = num('APP_LINES') ?? 0;
  for (let i = 1; i <= lines; i++) console.log(`line ${i}`);
  const callPort = num('APP_CALL_HOST_PORT');
  if (callPort !== undefined) {
    http
      .get({ host: env.BULWARK_HOST_IP, port: callPort, path: '/', agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => console.log(`host said ${body}`));
      })
      .on('error', (err) => console.log(`host call failed: ${err.message}`));
  }
});
