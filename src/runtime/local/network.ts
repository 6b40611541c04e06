/**
 * Per-instance network namespaces on a host bridge: each instance gets its
 * own netns, a veth pair whose host end is enslaved to the bridge, an address
 * from the bridge subnet and a default route via the bridge address (the
 * gateway, `.1`), where it reaches host services. Uses iproute2 only.
 */
import { existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Capability } from '../driver.ts';
import { execFileSync } from 'node:child_process';
import { run } from './exec.ts';

/** Kill what still runs in a namespace and delete it (synchronously: called while leasing). */
function removeNetnsNow(netns: string): void {
  try {
    const pids = execFileSync('ip', ['netns', 'pids', netns], { encoding: 'utf8', timeout: 5000 });
    for (const pid of pids.split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    execFileSync('ip', ['netns', 'del', netns], { stdio: 'ignore', timeout: 5000 });
  } catch {
    // no such namespace any more
  }
}

export interface NetworkOptions {
  /** @default "bulwark0" */
  bridge?: string;
  /** IPv4 CIDR, prefix 8..30. @default "10.213.0.0/16" */
  subnet?: string;
  /**
   * Identity of the owning driver (its state directory). Several control planes may share
   * one bridge on a host; addresses are leased host-wide under `leaseDir` in its name, and
   * netns names carry `scope`, so they never take each other's addresses or namespaces.
   */
  owner?: string;
  /** Short tag unique to the owner, part of every netns name. @default "" */
  scope?: string;
  /** @default "/run/bulwark/leases/<bridge>" */
  leaseDir?: string;
  /**
   * Make every instance's bridge port an isolated port (`bridge link set ... isolated on`):
   * the bridge forwards nothing between two isolated ports, so instances reach each other
   * only through the host side (the gateway on `.1`). @default false
   */
  isolatePorts?: boolean;
  /**
   * Let unprivileged uids bind any port inside the instance's netns (it is the instance's
   * own namespace: a sandboxed instance runs as an unprivileged uid). @default false
   */
  unprivilegedPorts?: boolean;
}

export interface InstanceNet {
  netns: string;
  vethHost: string;
  ip: string;
}

function ipToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`invalid IPv4 address '${ip}'`);
  }
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export class BridgeNetwork {
  readonly bridge: string;
  readonly prefix: number;
  readonly gateway: string;
  private readonly base: number;
  private readonly size: number;
  private readonly owner: string;
  private readonly scope: string;
  private readonly leaseDir: string;
  private readonly isolatePorts: boolean;
  private readonly unprivilegedPorts: boolean;
  private cursor = 2;

  constructor(opts: NetworkOptions = {}) {
    this.bridge = opts.bridge ?? 'bulwark0';
    this.isolatePorts = opts.isolatePorts ?? false;
    this.unprivilegedPorts = opts.unprivilegedPorts ?? false;
    const subnet = opts.subnet ?? '10.213.0.0/16';
    const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(subnet);
    const prefix = m ? Number(m[2]) : NaN;
    if (!m || !(prefix >= 8 && prefix <= 30)) {
      throw new Error(
        `network.subnet '${subnet}' must be an IPv4 CIDR with prefix 8..30, e.g. 10.213.0.0/16`,
      );
    }
    if (this.bridge.length > 15)
      throw new Error(`network.bridge '${this.bridge}' is longer than 15 characters`);
    this.prefix = prefix;
    this.size = 2 ** (32 - prefix);
    this.base = (ipToInt(m[1]!) & ~(this.size - 1)) >>> 0;
    this.gateway = intToIp(this.base + 1);
    this.owner = opts.owner ?? `pid:${process.pid}`;
    this.scope = opts.scope ?? '';
    this.leaseDir = opts.leaseDir ?? path.join('/run/bulwark/leases', this.bridge);
  }

  detect(): Capability {
    if (process.getuid?.() !== 0) {
      return {
        available: false,
        reason: 'not running as root: run the control plane as root to get network namespaces',
      };
    }
    if (!existsSync('/usr/sbin/ip') && !existsSync('/sbin/ip') && !existsSync('/usr/bin/ip')) {
      return { available: false, reason: "iproute2 ('ip') not installed: apt-get install iproute2" };
    }
    if (!existsSync('/usr/bin/nsenter') && !existsSync('/bin/nsenter')) {
      return { available: false, reason: "'nsenter' not installed: apt-get install util-linux" };
    }
    return { available: true };
  }

  /** Create the bridge with the gateway address if missing (shared by all instances, kept on close). */
  async ensureBridge(): Promise<void> {
    const exists = await run('ip', ['link', 'show', this.bridge]).then(
      () => true,
      () => false,
    );
    if (!exists) {
      await run('ip', ['link', 'add', this.bridge, 'type', 'bridge']).catch((err: Error) => {
        if (!/File exists/.test(err.message)) throw err;
      });
    }
    const addrs = await run('ip', ['-o', '-4', 'addr', 'show', 'dev', this.bridge]);
    if (!addrs.includes(` ${this.gateway}/`)) {
      await run('ip', ['addr', 'add', `${this.gateway}/${this.prefix}`, 'dev', this.bridge]);
    }
    await run('ip', ['link', 'set', this.bridge, 'up']);
  }

  /**
   * Lease the next free address (round robin from .2) that is neither in `used` (this driver's records) nor
   * leased by another live owner on this host. A lease file is created with O_EXCL, so two
   * drivers racing for the same address cannot both win; a lease whose owner directory is
   * gone (a deleted data dir) is taken over.
   */
  allocate(used: Iterable<string>): string {
    const taken = new Set(used);
    mkdirSync(this.leaseDir, { recursive: true });
    // Round robin from the last address handed out: a just-released address is reused last,
    // so peers' caches (ARP, connection pools) have time to forget its previous owner.
    const span = this.size - 3;
    for (let i = 0; i < span; i++) {
      const off = 2 + ((this.cursor - 2 + i) % span);
      const ip = intToIp(this.base + off);
      if (!taken.has(ip) && this.tryLease(ip)) {
        this.cursor = off + 1 >= this.size - 1 ? 2 : off + 1;
        return ip;
      }
    }
    throw new Error(`no free address left in ${intToIp(this.base)}/${this.prefix}`);
  }

  /** Record that an adopted instance holds `ip` (leases live in /run and vanish on reboot). */
  claim(ip: string, netns?: string): void {
    mkdirSync(this.leaseDir, { recursive: true });
    writeFileSync(path.join(this.leaseDir, ip), netns ? `${this.owner}\n${netns}` : this.owner);
  }

  /** Give `ip` back, if this owner holds it. */
  release(ip: string): void {
    const file = path.join(this.leaseDir, ip);
    try {
      if (this.readLease(ip)?.owner === this.owner) unlinkSync(file);
    } catch {
      // Not leased (already released, or leases were wiped by a reboot).
    }
  }

  private tryLease(ip: string): boolean {
    const file = path.join(this.leaseDir, ip);
    try {
      writeFileSync(file, this.owner, { flag: 'wx' });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const lease = this.readLease(ip);
    if (!lease) return false;
    // Our own leftover (a crash between leasing and persisting the record) is ours to reuse.
    if (lease.owner === this.owner) return true;
    if (lease.owner.startsWith('/') && !existsSync(lease.owner)) {
      // The owner's data dir is gone, but its namespace may still hold the address on the
      // bridge (its control plane was killed): remove it, or two hosts answer for one IP.
      if (lease.netns) removeNetnsNow(lease.netns);
      writeFileSync(file, this.owner);
      return true;
    }
    return false;
  }

  private readLease(ip: string): { owner: string; netns?: string } | undefined {
    try {
      const [owner = '', netns] = readFileSync(path.join(this.leaseDir, ip), 'utf8').split('\n');
      return { owner, ...(netns ? { netns } : {}) };
    } catch {
      return undefined;
    }
  }

  /** Network namespace name of an instance (`ip netns identify` shows it). */
  netnsFor(id: string): string {
    return `bw${this.scope}-${id}`;
  }

  /**
   * Interface names come from the whole address (leased host-wide), not its offset in the
   * subnet: drivers on other bridges and subnets (tests, a second control plane) would
   * otherwise pick the same names and tear down each other's veths. 3 + 8 chars fits IFNAMSIZ.
   */
  namesFor(id: string, ip: string): { netns: string; vethHost: string; vethPeer: string } {
    const hex = (ipToInt(ip) >>> 0).toString(16).padStart(8, '0');
    return { netns: this.netnsFor(id), vethHost: `bwh${hex}`, vethPeer: `bwp${hex}` };
  }

  /** Build the instance's netns from scratch (any leftover of the same name is replaced). */
  async setup(id: string, ip: string): Promise<InstanceNet> {
    const { netns, vethHost, vethPeer } = this.namesFor(id, ip);
    await this.teardown({ netns, vethHost, ip });
    await run('ip', ['netns', 'add', netns]);
    try {
      await run('ip', ['link', 'add', vethHost, 'type', 'veth', 'peer', 'name', vethPeer]);
      await run('ip', ['link', 'set', vethPeer, 'netns', netns]);
      await run('ip', ['link', 'set', vethHost, 'master', this.bridge, 'up']);
      if (this.isolatePorts) await run('bridge', ['link', 'set', 'dev', vethHost, 'isolated', 'on']);
      await run('ip', ['-n', netns, 'link', 'set', vethPeer, 'name', 'eth0']);
      await run('ip', ['-n', netns, 'addr', 'add', `${ip}/${this.prefix}`, 'dev', 'eth0']);
      await run('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
      await run('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
      await run('ip', ['-n', netns, 'route', 'add', 'default', 'via', this.gateway]);
      if (this.unprivilegedPorts)
        await run('ip', ['netns', 'exec', netns, 'sysctl', '-qw', 'net.ipv4.ip_unprivileged_port_start=0']);
      // The address may have belonged to an instance removed moments ago: the host's ARP entry
      // still names the old veth's MAC and stays "reachable" for up to ~45 s, during which
      // nothing reaches the new instance. Forget it so the next packet asks again.
      await this.forgetNeighbour(ip);
      this.claim(ip, netns);
    } catch (err) {
      await this.teardown({ netns, vethHost, ip });
      throw err;
    }
    return { netns, vethHost, ip };
  }

  /** Remove the veth pair and the netns; missing pieces are fine (idempotent). */
  async teardown(net: InstanceNet): Promise<void> {
    // Deleting the netns also deletes the veth end inside it, and with it the pair.
    if (net.vethHost) await run('ip', ['link', 'del', net.vethHost]).catch(() => {});
    await run('ip', ['netns', 'del', net.netns]).catch(() => {});
    if (net.ip) await this.forgetNeighbour(net.ip);
  }

  private async forgetNeighbour(ip: string): Promise<void> {
    await run('ip', ['neigh', 'del', ip, 'dev', this.bridge]).catch(() => {});
  }

  netnsPath(netns: string): string {
    return `/run/netns/${netns}`;
  }
}
