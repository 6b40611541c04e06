/**
 * `npm start`: the whole product on one machine. Starts the control plane
 * with the embedded store, the local site with its HAProxy gateway, creates
 * the demo bank (examples/bank/bank.yaml) through the API like a user would
 * (only what is missing: see demo-apply.ts),
 * waits until it is ready (printing progress) and prints where to send
 * traffic. Ctrl-C stops the instances and the gateway too.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ApiClient } from '../cli/client.ts';
import { readManifestFiles } from '../cli/commands/apply.ts';
import type { Io } from '../cli/commands/resources.ts';
import { runServer } from '../cli/commands/server.ts';
import { localDemoConfigFile, writeConfig } from '../cli/config.ts';
import { CliError } from '../cli/exit-codes.ts';
import { hashToken, newTokenSecret, verifyToken } from '../controlplane/auth.ts';
import { ensureHaproxy } from '../dataplane/haproxy/process.ts';
import { applyDemo } from './demo-apply.ts';
import { processIo } from '../cli/terminal-io.ts';
import { redactUrl } from '../util/secrets.ts';

const io: Io = processIo();

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.BULWARK_PORT ?? '7070' },
      'gateway-port': { type: 'string', default: process.env.BULWARK_GATEWAY_PORT ?? '8080' },
      'data-dir': { type: 'string', default: process.env.BULWARK_DATA_DIR ?? '.bulwark' },
      // BULWARK_STORE_URL keeps a password out of the command line (ps shows it to every user).
      'store-url': {
        type: 'string',
        ...(process.env.BULWARK_STORE_URL ? { default: process.env.BULWARK_STORE_URL } : {}),
      },
      manifest: { type: 'string', default: 'examples/bank/bank.yaml' },
      unprivileged: { type: 'boolean', default: false },
      'exit-when-ready': { type: 'boolean', default: false },
    },
  });
  const dataDir = path.resolve(values['data-dir']);
  const port = Number(values.port);
  const gatewayPort = Number(values['gateway-port']);

  // A stop asked for while the control plane is still starting (SIGINT/SIGTERM, or npm
  // gone) is kept and carried out once it is up, with everything it started: the default
  // action would kill this process and leave HAProxy and the first instances running.
  let early: string | undefined;
  const up: { shutdown?: (why: string) => void } = {};
  const request = (why: string): void => {
    if (up.shutdown) return up.shutdown(why);
    if (early) return;
    early = why;
    io.err(`${why}: stopping once the control plane has finished starting (then all it started)...`);
  };
  const onInt = (): void => request('SIGINT');
  const onTerm = (): void => request('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  // npm killed outright (SIGKILL) cannot forward anything: its child is reparented. Stop too.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) request(`the parent process ${parent} exited`);
  }, 1000).unref();

  io.err('bulwark: checking HAProxy...');
  const haproxy = await ensureHaproxy({ autoInstall: process.getuid?.() === 0 });
  io.err(
    `  HAProxy ${haproxy.version} at ${haproxy.binary}${haproxy.installed ? ' (just installed with apt-get)' : ''}`,
  );

  const storeShown = values['store-url'] ? redactUrl(values['store-url']) : `${dataDir}/store`;
  io.err(`bulwark: starting the control plane (store: ${storeShown})...`);
  const cp = await runServer(io, {
    dataDir,
    port,
    gatewayPort,
    ...(values['store-url'] ? { storeUrl: values['store-url'] } : {}),
    ...(values.unprivileged ? { privileged: false } : {}),
    logFile: path.join(dataDir, 'control-plane.log'),
    stopWorkloadsOnExit: true,
  });
  // runServer has its own SIGINT/SIGTERM handlers now.
  process.off('SIGINT', onInt);
  process.off('SIGTERM', onTerm);
  up.shutdown = cp.shutdown;
  if (early) return cp.shutdown(early);

  // A checkout whose CLI config was lost gets a fresh token (the old ones stay valid).
  const cfgFile = path.join(dataDir, 'cli.json');
  let token: string | undefined;
  try {
    token = (JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as { token?: string }).token;
  } catch {
    token = undefined;
  }
  if (!token || !(await verifyToken(cp.store, token))) {
    token = newTokenSecret();
    await cp.store.addToken({
      id: randomUUID(),
      name: 'demo-cli',
      hash: hashToken(token),
      createdAt: new Date().toISOString(),
      scope: 'admin',
    });
    io.err(`bulwark: created a new CLI token (saved in ${cfgFile}, mode 0600)`);
  }
  writeConfig(cfgFile, { server: cp.url, token });
  // So `bulwark` finds this control plane from any directory, not only the checkout.
  const userCfg = localDemoConfigFile();
  try {
    writeConfig(userCfg, { server: cp.url, token });
  } catch (err) {
    io.err(
      `bulwark: could not record the control plane in ${userCfg} (${(err as Error).message}); outside this checkout pass --config ${cfgFile}`,
    );
  }

  const api = new ApiClient({ server: cp.url, token, source: cfgFile });
  // Only what is missing is created: an operator's scale or edit survives a restart of the demo.
  await applyDemo(api, io, values.manifest, readManifestFiles([values.manifest]), 180_000);

  const caps = cp.site.driver.capabilities();
  const gw = cp.site.dataplane.gatewayUrl;
  io.out(
    [
      '',
      '================ Bulwark is up ================',
      `Control plane API : ${cp.url}/api/v1  (OpenAPI: ${cp.url}/api/v1/openapi.json)`,
      `Web console       : ${cp.url}/console/  (sign in with the admin token)`,
      `Site "local"       : gateway ${gw}`,
      `Instance sandbox   : network namespaces ${caps.networkNamespaces.available ? 'on' : `off (${caps.networkNamespaces.reason})`}; cgroups ${caps.cgroups.available ? 'on' : `off (${caps.cgroups.reason})`}`,
      `Logs               : ${path.join(dataDir, 'control-plane.log')}`,
      '',
      'Send traffic (through the gateway, by service name):',
      `  curl -H 'Host: gateway.bank' ${gw}/api/accounts/acc-1`,
      `  curl -H 'Host: gateway.bank' -H 'Idempotency-Key: k1' -H 'content-type: application/json' \\`,
      `       -d '{"from":"acc-1","to":"acc-2","amountCents":1000}' ${gw}/api/payments`,
      'Load it:',
      `  npm run load -- --url ${gw} --host gateway.bank --rps 200 --duration 30`,
      'Look at it:',
      '  ./bin/bulwark get apps            ./bin/bulwark get instances',
      '  ./bin/bulwark describe app bank/payments',
      '  ./bin/bulwark scale bank/accounts --replicas 5 --wait',
      'Make it misbehave:',
      `  curl -H 'Host: api.payments.bank' -d '{"mode":"error"}' ${gw}/admin/fault`,
      '  ./bin/bulwark incidents          # isolated within a second, replaced, kept for diagnosis',
      '',
      'Ctrl-C stops the control plane, the instances and the gateway.',
    ].join('\n'),
  );
  if (values['exit-when-ready']) await cp.close({ stopWorkloads: true });
}

main().catch((err: unknown) => {
  io.err(
    `bulwark: ${err instanceof CliError ? err.message : err instanceof Error ? err.message : String(err)}`,
  );
  process.exit(err instanceof CliError ? err.exitCode : 1);
});
