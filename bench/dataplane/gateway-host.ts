/**
 * One Bulwark gateway (HaproxyDataPlane: HAProxy plus its request-log
 * receiver) in a process of its own, driven by bench/dataplane/run.ts over
 * IPC. The receiver then runs with the Node flags that process gets, as the
 * control plane's does with `bulwark server` (SERVER_NODE_FLAGS), and two
 * gateways with different flags can be measured in the same rounds; its CPU
 * is this process's, read from /proc by the parent.
 *
 * Messages: {start: GatewayHostStart} -> {started: {gatewayUrl, workerPid}};
 * {status: true} -> {status: GatewayHostStatus}; {close: true} -> exits.
 */
import type { ServerSpec } from '../../src/dataplane/dataplane.ts';
import {
  HaproxyDataPlane,
  type HaproxyDataPlaneOptions,
} from '../../src/dataplane/haproxy/haproxy-dataplane.ts';

export interface GatewayHostStart {
  name: string;
  options: HaproxyDataPlaneOptions;
  servers: ServerSpec[];
}

export interface GatewayHostStatus {
  workerPid: number | undefined;
  requestLogs: number;
  frames: number;
  transport: string | undefined;
  /** Sampled delivery delays (1 in 64 records), ms: HAProxy end of request -> listener. */
  delays: number[];
}

const send = (m: unknown): void => {
  process.send?.(m);
};

let dp: HaproxyDataPlane | undefined;
let logs = 0;
const delays: number[] = [];

process.on('message', (m: { start?: GatewayHostStart; status?: true; close?: true }) => {
  void (async () => {
    if (m.start) {
      const { name, options, servers } = m.start;
      const g = await HaproxyDataPlane.create(options);
      dp = g;
      await g.sync({ backends: [{ name: 'web.bench.acme', aliases: [], servers: [] }] });
      const added = await g.sync({ backends: [{ name: 'web.bench.acme', aliases: [], servers }] });
      if (added.reloaded) throw new Error(`${name}: adding servers must not reload`);
      // Sampled 1 in 64 so measuring the delay costs the receiver nothing visible.
      g.onRequest((log) => {
        if ((++logs & 63) === 0) delays.push(Date.now() - Date.parse(log.at) - Math.max(0, log.totalMs));
      });
      send({ started: { gatewayUrl: g.gatewayUrl, workerPid: g.status().process.workerPid } });
    } else if (m.status && dp) {
      const st = dp.status();
      const status: GatewayHostStatus = {
        workerPid: st.process.workerPid,
        requestLogs: st.requestLogs,
        frames: st.syslog?.frames ?? 0,
        transport: st.syslog?.transport,
        delays,
      };
      send({ status });
    } else if (m.close) {
      await dp?.close();
      process.exit(0);
    }
  })().catch((err: unknown) => {
    send({ error: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  });
});
process.on('disconnect', () => {
  void (dp?.close() ?? Promise.resolve()).finally(() => process.exit(0));
});
