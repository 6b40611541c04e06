/**
 * Third-party HTTP servers the adversarial suite runs beside the demo: code
 * nobody here wrote, with their own start-up, backlog and shutdown habits.
 * Each is a Debian package's program started as an App workload (3 replicas
 * by default, port 8080 in the instance's own network namespace).
 */
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface ChaosWorkload {
  /** Short name, used in tables and the App's name. */
  name: string;
  /** The program, so a run can say at once when it is not installed. */
  binary: string;
  /** Debian package that brings it. */
  debianPackage: string;
  /** The `run.command` of the workload (it listens on $PORT, 8080 in a netns). */
  command(dir: string): string[];
  /** A path that answers 200 (readiness and load). */
  path: string;
}

/** nginx needs a configuration file; single process so a SIGKILL of the instance ends it (no orphan workers). */
function nginxConf(dir: string): string {
  const conf = path.join(dir, 'nginx.conf');
  if (!existsSync(conf)) {
    // Readable by the instance's own unprivileged uid in its sandbox (mkdtemp makes 0700).
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    chmodSync(path.dirname(dir), 0o755);
    chmodSync(dir, 0o755);
    writeFileSync(
      conf,
      [
        'master_process off;',
        'daemon off;',
        'worker_processes 1;',
        // Never /dev/null: nginx removes its pid file when it exits.
        'pid /tmp/bulwark-chaos-nginx.pid;',
        'error_log stderr warn;',
        'events { worker_connections 1024; }',
        'http {',
        '  access_log off;',
        // Every temp path: Debian's defaults are under /var/lib/nginx, which the sandbox does not show.
        '  client_body_temp_path /tmp;',
        '  proxy_temp_path /tmp;',
        '  fastcgi_temp_path /tmp;',
        '  uwsgi_temp_path /tmp;',
        '  scgi_temp_path /tmp;',
        '  server {',
        '    listen 8080 backlog=511;',
        '    location / { return 200 "ok\\n"; }',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
  }
  return conf;
}

export const WORKLOADS: readonly ChaosWorkload[] = [
  {
    name: 'python',
    binary: 'python3',
    debianPackage: 'python3',
    // http.server: a ThreadingHTTPServer with the socketserver default backlog of 5.
    command: () => [
      'sh',
      '-c',
      'exec python3 -m http.server "$PORT" --bind 0.0.0.0 --directory /usr/share/doc/python3',
    ],
    path: '/README.Debian', // a small static file
  },
  {
    name: 'nginx',
    binary: '/usr/sbin/nginx',
    debianPackage: 'nginx-light',
    command: (dir) => ['/usr/sbin/nginx', '-c', nginxConf(dir), '-p', dir],
    path: '/',
  },
  {
    name: 'caddy',
    binary: '/usr/bin/caddy',
    debianPackage: 'caddy',
    // Caddy (Go): `respond` serves a fixed body without a Caddyfile.
    command: () => ['sh', '-c', 'exec /usr/bin/caddy respond --listen "0.0.0.0:$PORT" ok'],
    path: '/',
  },
];

export function workloadNamed(name: string): ChaosWorkload {
  const w = WORKLOADS.find((x) => x.name === name);
  if (!w) throw new Error(`unknown workload '${name}'; known: ${WORKLOADS.map((x) => x.name).join(', ')}`);
  return w;
}

/** The App manifest (YAML) of a workload: a Project and an App with `replicas` instances. */
export function manifestOf(w: ChaosWorkload, project: string, dir: string, replicas: number): string {
  const cmd = JSON.stringify(w.command(dir));
  return `apiVersion: bulwark.io/v1
kind: Project
metadata: { name: ${project} }
spec: { tenant: chaos }
---
apiVersion: bulwark.io/v1
kind: App
metadata: { name: ${w.name}, project: ${project} }
spec:
  placement: { sites: [{ name: local }] }
  workloads:
    - name: web
      type: service
      replicas: ${replicas}
      run: { command: ${cmd} }
      ports: [{ name: http, port: 8080, timeoutMs: 2000 }]
      health:
        readiness: { http: { path: ${w.path}, port: http }, intervalMs: 500 }
      resources: { cpu: 0.5, memory: 128Mi }
  # The suite injects a fault every few seconds; the default blast radius (3 isolations a
  # minute) would turn later isolations into alerts by design, which is not what is measured.
  isolation: { maxIsolationsPerMinute: 30 }
`;
}
