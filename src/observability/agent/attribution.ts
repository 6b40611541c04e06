/**
 * Who is at each end of a flow. Instances are found by their address (each
 * has its own IP in network-namespace mode) and, for unprivileged instances
 * that share 127.0.0.1, by port (server side) or by the pid that called
 * connect() (client side). The site gateway is found by its bind addresses.
 *
 * Host-side clients of instances share the host's address: the gateway's
 * connections and the control plane's own probes are both counted under the
 * gateway node (probe connections last milliseconds, so they barely show in
 * the established count; request counts come from the gateway's log anyway).
 */
import os from 'node:os';

export interface InventoryInstance {
  id: string;
  project: string;
  app: string;
  ip: string;
  ports: Record<string, number>;
  pid?: number;
}

export interface Inventory {
  instances: InventoryInstance[];
  /** The site gateway's listening addresses; its node id is `gatewayNodeId`. */
  gatewayBinds: { address: string; port: number }[];
  gatewayNodeId: string;
  /** Addresses of this host (interfaces); loopback is always local. */
  hostIps?: string[];
}

export interface EndpointRef {
  kind: 'instance' | 'gateway' | 'external';
  /** Topology node id: `instance:<id>`, the gateway's id, or `external:<host[:port]>`. */
  nodeId: string;
  instanceId?: string;
}

export class EndpointResolver {
  readonly #byIp = new Map<string, InventoryInstance>();
  readonly #byIpPort = new Map<string, InventoryInstance>();
  readonly #byPid = new Map<number, InventoryInstance>();
  readonly #gateway = new Set<string>();
  readonly #gatewayPorts = new Set<number>();
  readonly #local = new Set<string>();
  readonly #gatewayNodeId: string;

  constructor(inv: Inventory) {
    this.#gatewayNodeId = inv.gatewayNodeId;
    const shared = new Set<string>();
    for (const i of inv.instances) {
      if (this.#byIp.has(i.ip)) shared.add(i.ip);
      this.#byIp.set(i.ip, i);
      for (const p of Object.values(i.ports)) this.#byIpPort.set(`${i.ip}:${p}`, i);
      if (i.pid) this.#byPid.set(i.pid, i);
      this.#local.add(i.ip);
    }
    // An address several instances share (127.0.0.1 without namespaces) names none of them.
    for (const ip of shared) this.#byIp.delete(ip);
    for (const b of inv.gatewayBinds) {
      this.#gateway.add(`${b.address}:${b.port}`);
      this.#gatewayPorts.add(b.port);
      this.#local.add(b.address);
    }
    for (const ip of inv.hostIps ?? localAddresses()) this.#local.add(ip);
  }

  isLocal(ip: string): boolean {
    return ip.startsWith('127.') || this.#local.has(ip);
  }

  /** True when ip:port is a known server endpoint (an instance port or a gateway bind). */
  isServer(ip: string, port: number): boolean {
    return this.#byIpPort.has(`${ip}:${port}`) || this.#isGateway(ip, port);
  }

  #isGateway(ip: string, port: number): boolean {
    return (
      this.#gateway.has(`${ip}:${port}`) ||
      (this.#gatewayPorts.has(port) && this.#gateway.has(`0.0.0.0:${port}`))
    );
  }

  server(ip: string, port: number): EndpointRef {
    const inst = this.#byIpPort.get(`${ip}:${port}`);
    if (inst) return { kind: 'instance', nodeId: `instance:${inst.id}`, instanceId: inst.id };
    if (this.#isGateway(ip, port)) return { kind: 'gateway', nodeId: this.#gatewayNodeId };
    return { kind: 'external', nodeId: `external:${ip}:${port}` };
  }

  client(ip: string, pids: readonly number[], server: EndpointRef): EndpointRef {
    const inst = this.#byIp.get(ip) ?? pids.map((p) => this.#byPid.get(p)).find((i) => i !== undefined);
    if (inst) return { kind: 'instance', nodeId: `instance:${inst.id}`, instanceId: inst.id };
    if (server.kind === 'instance' && this.isLocal(ip))
      return { kind: 'gateway', nodeId: this.#gatewayNodeId };
    return { kind: 'external', nodeId: `external:${ip}` };
  }
}

export function localAddresses(): string[] {
  return Object.values(os.networkInterfaces())
    .flat()
    .filter((a): a is os.NetworkInterfaceInfo => !!a && a.family === 'IPv4')
    .map((a) => a.address);
}
