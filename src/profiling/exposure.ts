/**
 * Where a process's inspector would listen after SIGUSR1, and whether that is
 * safe to open: an open inspector runs arbitrary code for whoever connects.
 *
 * - In a network namespace of its own (not ours): its loopback is reachable
 *   only from inside that namespace; the helper joins it (`ip netns exec`
 *   with the name, or `nsenter --net` by pid when the namespace has none).
 * - In our (the host's) namespace: the host loopback, which every local
 *   process reaches. Allowed only when the process was started with
 *   `--inspect-port=0` (on the command line or in NODE_OPTIONS): the kernel
 *   then picks a random port, which is open only for the one profile. A fixed
 *   port (the default 9229) is refused before SIGUSR1 is sent: anyone could
 *   wait on it. A non-loopback inspector host is refused too.
 */
import { readFile, stat } from 'node:fs/promises';

export type Exposure =
  | { via: 'netns'; netns: string }
  | { via: 'netns-pid' }
  | { via: 'host-loopback' }
  | { via: 'unsafe'; reason: string };

/** The inode of a network namespace file (`/proc/<pid>/ns/net`, `/run/netns/<name>`). */
async function nsInode(p: string): Promise<number | undefined> {
  try {
    return (await stat(p)).ino;
  } catch {
    return undefined;
  }
}

/** Options that take their value as the next argument (so it is not mistaken for the script). */
const VALUE_FLAGS = new Set([
  '-e',
  '--eval',
  '-p',
  '--print',
  '-r',
  '--require',
  '--import',
  '--loader',
  '--experimental-loader',
  '--inspect-port',
  '--debug-port',
  '--title',
  '--conditions',
  '-C',
  '--env-file',
  '--stack-size',
  '--max-old-space-size',
  '--input-type',
]);

/**
 * The `--inspect-port` / `--debug-port` setting in effect for a process
 * started with `argv` (its /proc cmdline) and `nodeOptions` (NODE_OPTIONS in
 * its initial environment): command-line options win over NODE_OPTIONS, the
 * last one wins. Undefined when neither sets it (Node then uses 9229).
 */
export function inspectPortSetting(argv: readonly string[], nodeOptions: string): string | undefined {
  let value: string | undefined;
  const scan = (args: readonly string[], stopAtScript: boolean): void => {
    for (let i = 0; i < args.length; i++) {
      const a = args[i] ?? '';
      if (a === '--') return;
      if (!a.startsWith('-')) {
        if (stopAtScript) return; // the script: what follows are the application's own arguments
        continue;
      }
      const m = /^--(?:inspect|debug)-port(?:=(.*))?$/.exec(a);
      if (m) value = m[1] ?? args[++i];
      else if (VALUE_FLAGS.has(a)) i++;
    }
  };
  scan(nodeOptions.split(/\s+/).filter(Boolean), false);
  scan(argv.slice(1), true);
  return value;
}

/** `0`, `127.0.0.1:0`, `[::1]:0`, `localhost:0`: a random port on a loopback host. */
function isRandomLoopbackPort(setting: string): boolean {
  const m = /^(?:(.*):)?(\d+)$/.exec(setting);
  if (!m || Number(m[2]) !== 0) return false;
  const host = (m[1] ?? '127.0.0.1').replace(/^\[(.*)\]$/, '$1');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** NODE_OPTIONS from the process's initial environment ('' when absent or unreadable). */
async function nodeOptionsOf(pid: number): Promise<string> {
  const env = await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '');
  const entry = env.split('\0').find((e) => e.startsWith('NODE_OPTIONS='));
  return entry?.slice('NODE_OPTIONS='.length) ?? '';
}

/** Decide where the helper talks to the inspector of `pid`, or why it must not be opened. */
export async function inspectorExposure(pid: number, netns: string | undefined): Promise<Exposure> {
  const target = await nsInode(`/proc/${pid}/ns/net`);
  if (netns !== undefined) {
    const named = await nsInode(`/run/netns/${netns}`);
    if (target !== undefined && named !== undefined && target !== named)
      return {
        via: 'unsafe',
        reason: `process ${pid} is not in network namespace '${netns}' (its instance record is stale?): its inspector would open somewhere else`,
      };
    return { via: 'netns', netns };
  }
  const ours = await nsInode('/proc/self/ns/net');
  if (target !== undefined && ours !== undefined && target !== ours) return { via: 'netns-pid' };
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  const setting = inspectPortSetting(cmdline.split('\0').filter(Boolean), await nodeOptionsOf(pid));
  if (setting !== undefined && isRandomLoopbackPort(setting)) return { via: 'host-loopback' };
  return {
    via: 'unsafe',
    reason:
      `process ${pid} shares the host's network namespace and its inspector port is ` +
      `${setting === undefined ? 'the default 9229' : `'${setting}'`}: SIGUSR1 would open it where any local ` +
      'process can connect and run code in it, so it was not sent. Start the instance with ' +
      'NODE_OPTIONS=--inspect-port=0 (a random loopback port, open only for the profile), or run it in ' +
      'its own network namespace (the local runtime in privileged mode)',
  };
}
