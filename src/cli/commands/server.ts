/** `bulwark server`: run the control plane in the foreground until SIGINT/SIGTERM. */
import path from 'node:path';
import { ControlPlane, type ControlPlaneOptions } from '../../controlplane/control-plane.ts';
import { writeConfig } from '../config.ts';
import { missingServerNodeFlags } from '../node-flags.ts';
import type { Io } from './resources.ts';

export async function runServer(
  io: Io,
  opts: ControlPlaneOptions & { stopWorkloadsOnExit?: boolean },
): Promise<ControlPlane> {
  const dataDir = path.resolve(opts.dataDir ?? '.bulwark');
  const missing = missingServerNodeFlags(process.execArgv);
  if (missing.length > 0)
    io.err(
      `note: Node runs without ${missing.join(' ')} (bin/bulwark server and npm start pass it; see src/cli/node-flags.ts): the request-log receiver will pause for garbage collection more often`,
    );
  let token: string | undefined;
  const cp = await ControlPlane.create({
    ...opts,
    dataDir,
    onInitialToken: (t) => {
      token = t;
    },
  });
  if (token) {
    const cfgFile = path.join(dataDir, 'cli.json');
    writeConfig(cfgFile, { server: cp.url, token });
    io.err(
      [
        '',
        'First start: an admin API token was created. It is shown only this once and stored on the server',
        'only as a SHA-256 hash:',
        '',
        `    ${token}`,
        '',
        `The CLI config ${cfgFile} (mode 0600) holds it for this checkout.`,
        '',
      ].join('\n'),
    );
  }
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    io.err(
      `${sig}: shutting down${opts.stopWorkloadsOnExit ? ' (stopping instances and the gateway)' : ' (instances keep running)'}...`,
    );
    cp.close({ stopWorkloads: opts.stopWorkloadsOnExit ?? false }).then(
      () => process.exit(0),
      (err: unknown) => {
        io.err(`shutdown failed: ${String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  return cp;
}
