/**
 * Faults sent from outside the platform, the way an operator's bad day or a
 * chaos tool sends them: signals to the instance's process, packet loss in
 * its network namespace (iptables: this kernel has no sch_netem), and CPU
 * starvation by busy loops on the host. Each fault says what a correct
 * platform does about it, which is what false and missed isolations are
 * counted against.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import type { InstanceStatus } from '../../src/runtime/driver.ts';

const run = promisify(execFile);

/**
 * What the platform must do:
 * - `restart`: the process is gone; the runtime restarts it (a `crash` incident, action restart).
 *   Isolating anything, the restarted process included, is a false isolation.
 * - `isolate`: the process is alive but cannot serve; it must be taken out of traffic.
 * - `none`: a cause shared by every instance (the host is starved): isolating any instance
 *   removes healthy capacity, a false isolation.
 */
export type Expectation = 'restart' | 'isolate' | 'none';

export interface Fault {
  name: string;
  expect: Expectation;
  /** Inject into `target`; returns how to undo it (before the quarantined process is deleted). */
  inject(target: InstanceStatus): Promise<() => Promise<void>>;
}

const signal = (sig: NodeJS.Signals) => async (t: InstanceStatus) => {
  if (!t.pid) throw new Error(`instance ${t.id} has no pid`);
  process.kill(t.pid, sig);
  return async () => {
    if (sig === 'SIGSTOP') {
      try {
        process.kill(t.pid!, 'SIGCONT');
      } catch {
        // gone already
      }
    }
  };
};

async function iptablesInNetns(netns: string, args: string[]): Promise<void> {
  await run('ip', ['netns', 'exec', netns, 'iptables', '-w', ...args]);
}

/** Drop a share of the packets the instance sends (its answers and handshakes). */
const loss = (probability: number) => async (t: InstanceStatus) => {
  const ns = t.isolation.netns;
  if (!ns) throw new Error(`instance ${t.id} has no network namespace (run as root, privileged)`);
  const rule = [
    'OUTPUT',
    '-p',
    'tcp',
    '-m',
    'statistic',
    '--mode',
    'random',
    '--probability',
    String(probability),
    '-j',
    'DROP',
  ];
  await iptablesInNetns(ns, ['-I', ...rule]);
  return async () => {
    await iptablesInNetns(ns, ['-D', ...rule]).catch(() => undefined);
  };
};

/** Busy loops on every CPU of the host for `ms`: every instance (and the platform) slows down alike. */
const hostCpuHog = (ms: number, loops: number) => async () => {
  const children: ChildProcess[] = [];
  for (let i = 0; i < loops; i++) {
    children.push(
      spawn('sh', ['-c', `timeout ${ms / 1000} sh -c 'while :; do :; done'`], { stdio: 'ignore' }),
    );
  }
  const done = Promise.all(children.map((c) => new Promise<void>((r) => c.once('exit', () => r()))));
  return async () => {
    for (const c of children) c.kill('SIGKILL');
    await done;
  };
};

export const FAULTS: readonly Fault[] = [
  { name: 'sigkill', expect: 'restart', inject: signal('SIGKILL') },
  { name: 'sigterm', expect: 'restart', inject: signal('SIGTERM') },
  { name: 'sigstop', expect: 'isolate', inject: signal('SIGSTOP') },
  { name: 'loss-100', expect: 'isolate', inject: loss(1) },
  { name: 'cpu-hog', expect: 'none', inject: hostCpuHog(4000, 2) },
];

export function faultNamed(name: string): Fault {
  const f = FAULTS.find((x) => x.name === name);
  if (!f) throw new Error(`unknown fault '${name}'; known: ${FAULTS.map((x) => x.name).join(', ')}`);
  return f;
}
