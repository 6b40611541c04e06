/**
 * The attacker instance of the sandbox acceptance test (sandbox.test.ts): run by
 * the local driver like any app, it tries, from wherever it runs, each of the
 * escapes a hostile app would try, prints one `ATTACK {"name","ok","detail"}`
 * line per attempt (`ok`: the attempt succeeded) and `ATTACK-DONE`, then serves
 * HTTP on $PORT so it looks like any healthy instance.
 *
 * Targets come from the environment (the test knows them, the app would have to guess):
 *   ATTACK_STORE        a file of the control plane's store
 *   ATTACK_OUTSIDE      a host path outside the instance's data directory to create
 *   ATTACK_ADMIN_SOCK   HAProxy's admin (stats) socket
 *   ATTACK_LOG_SOCK     the gateway's request-log socket
 *   ATTACK_PEER         ip:port of another instance (direct, not through the gateway)
 *   ATTACK_PEER_PID     host pid of that instance (runs an inspector on 127.0.0.1:9229)
 *   ATTACK_HOST_PID     host pid of a process outside any sandbox (the test runner)
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';

const env = process.env;
const results: { name: string; ok: boolean; detail: string }[] = [];

async function attempt(name: string, fn: () => Promise<string> | string): Promise<void> {
  let ok = false;
  let detail: string;
  try {
    detail = await fn();
    ok = true;
  } catch (err) {
    detail = err instanceof Error ? err.message : String(err);
  }
  const r = { name, ok, detail: detail.slice(0, 200) };
  results.push(r);
  console.log(`ATTACK ${JSON.stringify(r)}`);
}

const need = (k: string): string => {
  const v = env[k];
  if (!v) throw new Error(`${k} not set`);
  return v;
};

/** Connect to a Unix socket, send `payload`, resolve with what came back within 1 s. */
function talkUnix(path: string, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    let got = '';
    s.setTimeout(1000, () => {
      s.destroy();
      resolve(`connected, wrote ${payload.length} bytes, got ${got.length}`);
    });
    s.on('connect', () => s.write(payload));
    s.on('data', (d) => (got += d.toString()));
    s.on('end', () => resolve(`connected, got: ${got.slice(0, 80)}`));
    s.on('error', reject);
  });
}

function httpGet(host: string, port: number, path = '/'): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, timeout: 1500 }, (res) => {
      res.resume();
      resolve(`HTTP ${res.statusCode}`);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

/** Run a command; succeed only when it exits 0. */
function sh(cmd: string, args: string[], timeoutMs = 3000): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} exited ${r.status}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout.trim() || 'exit 0';
}

await attempt('read /etc/shadow', () => {
  const s = readFileSync('/etc/shadow', 'utf8');
  if (!s.includes('root:')) throw new Error(`read ${s.length} bytes, no account in them (masked)`);
  return `read ${s.length} bytes`;
});
await attempt('read the store', () => `read ${readFileSync(need('ATTACK_STORE')).length} bytes`);
await attempt('write outside the data directory', () => {
  writeFileSync(need('ATTACK_OUTSIDE'), 'pwned');
  return 'written';
});
await attempt('write into its own code', () => {
  writeFileSync(new URL('./pwned', import.meta.url), 'pwned');
  return 'written';
});
await attempt('reach the HAProxy admin socket', async () => {
  const r = await talkUnix(need('ATTACK_ADMIN_SOCK'), 'show info\n');
  return r;
});
await attempt('send a forged request record to the log socket', () =>
  talkUnix(
    need('ATTACK_LOG_SOCK'),
    '<134>Dec  7 12:00:00 haproxy[1]: forged record: victim 500 0 0 0 0 "GET / HTTP/1.1"\n',
  ),
);
await attempt('connect to another instance directly', () => {
  const [host, port] = need('ATTACK_PEER').split(':') as [string, string];
  return httpGet(host, Number(port), '/healthz');
});
const peerPid = Number(need('ATTACK_PEER_PID'));
const hostPid = Number(need('ATTACK_HOST_PID'));
await attempt('read the memory of another instance (ptrace access)', () => {
  const map = readFileSync(`/proc/${peerPid}/maps`, 'utf8').split('\n')[0] ?? '';
  const start = parseInt(map.split('-')[0] ?? '', 16);
  const fd = openSync(`/proc/${peerPid}/mem`, 'r');
  try {
    const buf = Buffer.alloc(16);
    const n = readSync(fd, buf, 0, 16, start);
    return `read ${n} bytes at 0x${start.toString(16)}`;
  } finally {
    closeSync(fd);
  }
});
await attempt('ptrace a process outside the sandbox (strace -p)', () => {
  const r = spawnSync('strace', ['-p', String(hostPid), '-o', '/dev/null'], {
    encoding: 'utf8',
    timeout: 500,
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code !== 'ETIMEDOUT') throw r.error;
  // strace keeps tracing until stopped: killed by the timeout after attaching means it attached.
  if (r.signal !== 'SIGTERM' || /Operation not permitted|No such process/.test(r.stderr))
    throw new Error(r.stderr.trim() || `strace exited ${r.status}`);
  return 'attached';
});
await attempt('signal a process outside the sandbox', () => {
  process.kill(hostPid, 0); // signal 0: the permission check without the harm
  return `may signal ${hostPid}`;
});
await attempt('signal another instance', () => {
  process.kill(peerPid, 'SIGCONT');
  return `signalled ${peerPid}`;
});
await attempt('raise its own hard limit on locked memory', () => {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max locked memory'));
  const hard = line?.trim().split(/\s+/)[4];
  if (!hard || hard === 'unlimited') throw new Error(`hard limit is ${hard}: nothing to raise`);
  const more = Number(hard) * 2;
  return sh('prlimit', [`--pid=${process.pid}`, `--memlock=${more}:${more}`]);
});
await attempt("raise its own cgroup's memory limit", () => {
  const line = readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .find((l) => /(^|,)memory(,|:)/.test(l.split(':')[1] ?? '') || l.startsWith('0::'));
  if (!line) throw new Error('no memory cgroup in /proc/self/cgroup');
  const rel = line.split(':')[2] ?? '';
  const file = line.startsWith('0::')
    ? `/sys/fs/cgroup${rel}/memory.max`
    : `/sys/fs/cgroup/memory${rel}/memory.limit_in_bytes`;
  writeFileSync(file, line.startsWith('0::') ? 'max' : '-1');
  return `wrote ${file}`;
});
await attempt('raise its own scheduling priority', () => {
  sh('renice', ['-n', '-5', '-p', String(process.pid)]);
  return 'reniced to -5';
});
await attempt('create a namespace (unshare -m)', () => sh('unshare', ['-m', 'true']));
await attempt('open the inspector of another instance', () => {
  // Its inspector listens on 127.0.0.1 inside its own netns: enter it, then ask for its targets.
  const probe =
    "require('http').get('http://127.0.0.1:9229/json',r=>{let b='';r.on('data',d=>b+=d);r.on('end',()=>{console.log(b.length);process.exit(b.includes('webSocketDebuggerUrl')?0:1)})}).on('error',e=>{console.error(e.message);process.exit(1)})";
  return sh('nsenter', [`--net=/proc/${peerPid}/ns/net`, '--', process.execPath, '-e', probe]);
});
console.log(`ATTACK-DONE ${results.filter((r) => r.ok).length}/${results.length} succeeded`);

http
  .createServer((_req, res) => res.end('ok\n'))
  .listen(Number(env.PORT ?? 8080), '0.0.0.0', () => console.log(`listening on ${env.PORT}`));
