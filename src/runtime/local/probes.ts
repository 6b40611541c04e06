/**
 * Readiness and liveness probes, run from the control plane against the
 * instance's address (its netns IP, or 127.0.0.1), like the kubelet does.
 * A probe flips to passing after `successThreshold` consecutive successes
 * and to failing after `failureThreshold` consecutive failures; only flips
 * are reported.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { Probe } from '../../model/types.ts';

export interface ProbeTarget {
  ip: string;
  /** Port name -> port reachable at `ip`. */
  ports: Record<string, number>;
  /** Exec probes run inside this netns path when set. */
  netnsPath?: string;
  env: Record<string, string>;
  cwd: string;
}

export interface ProbeResult {
  ok: boolean;
  message: string;
}

function resolvePort(target: ProbeTarget, port: string): number | undefined {
  return target.ports[port] ?? (/^\d+$/.test(port) ? Number(port) : undefined);
}

function httpCheck(
  target: ProbeTarget,
  p: { path: string; port: string },
  timeoutMs: number,
): Promise<ProbeResult> {
  const port = resolvePort(target, p.port);
  if (port === undefined)
    return Promise.resolve({ ok: false, message: `probe port '${p.port}' is not declared` });
  return new Promise((resolve) => {
    const req = http.get({ host: target.ip, port, path: p.path, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      const code = res.statusCode ?? 0;
      resolve({ ok: code >= 200 && code < 400, message: `GET ${p.path} -> ${code}` });
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ ok: false, message: `GET ${p.path}: ${err.message}` }));
  });
}

function tcpCheck(target: ProbeTarget, p: { port: string }, timeoutMs: number): Promise<ProbeResult> {
  const port = resolvePort(target, p.port);
  if (port === undefined)
    return Promise.resolve({ ok: false, message: `probe port '${p.port}' is not declared` });
  return new Promise((resolve) => {
    const sock = net.connect({ host: target.ip, port, timeout: timeoutMs });
    sock.on('connect', () => {
      sock.destroy();
      resolve({ ok: true, message: `tcp ${port} open` });
    });
    sock.on('timeout', () => sock.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    sock.on('error', (err) => resolve({ ok: false, message: `tcp ${port}: ${err.message}` }));
  });
}

function execCheck(target: ProbeTarget, p: { command: string[] }, timeoutMs: number): Promise<ProbeResult> {
  const argv = target.netnsPath ? ['nsenter', `--net=${target.netnsPath}`, '--', ...p.command] : p.command;
  const [file, ...args] = argv;
  if (!file) return Promise.resolve({ ok: false, message: 'exec probe has an empty command' });
  return new Promise((resolve) => {
    execFile(file, args, { cwd: target.cwd, env: target.env, timeout: timeoutMs }, (err) => {
      if (!err) resolve({ ok: true, message: 'exec exited 0' });
      else
        resolve({
          ok: false,
          message: `exec: ${err.killed ? `timed out after ${timeoutMs} ms` : err.message}`,
        });
    });
  });
}

export function checkOnce(probe: Probe, target: ProbeTarget): Promise<ProbeResult> {
  const timeoutMs = probe.timeoutMs ?? 1000;
  if ('http' in probe) return httpCheck(target, probe.http, timeoutMs);
  if ('tcp' in probe) return tcpCheck(target, probe.tcp, timeoutMs);
  return execCheck(target, probe.exec, timeoutMs);
}

export class ProbeRunner {
  /** Current verdict; readiness starts failing, liveness starts passing. */
  passing: boolean;
  lastMessage = '';
  private readonly probe: Probe;
  private readonly target: ProbeTarget;
  private readonly onFlip: (passing: boolean, message: string) => void;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private successes = 0;
  private failures = 0;

  constructor(
    probe: Probe,
    target: ProbeTarget,
    initiallyPassing: boolean,
    onFlip: (passing: boolean, message: string) => void,
  ) {
    this.probe = probe;
    this.target = target;
    this.passing = initiallyPassing;
    this.onFlip = onFlip;
  }

  start(): void {
    this.stopped = false;
    this.schedule(this.probe.initialDelayMs ?? 0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), ms);
  }

  private async tick(): Promise<void> {
    const r = await checkOnce(this.probe, this.target);
    if (this.stopped) return;
    this.lastMessage = r.message;
    if (r.ok) {
      this.failures = 0;
      this.successes++;
      if (!this.passing && this.successes >= (this.probe.successThreshold ?? 1)) {
        this.passing = true;
        this.onFlip(true, r.message);
      }
    } else {
      this.successes = 0;
      this.failures++;
      if (this.passing && this.failures >= (this.probe.failureThreshold ?? 3)) {
        this.passing = false;
        this.onFlip(false, r.message);
      }
    }
    this.schedule(this.probe.intervalMs ?? 1000);
  }
}
