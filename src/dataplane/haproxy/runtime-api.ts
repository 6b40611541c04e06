/**
 * Client for HAProxy's stats socket (runtime API).
 *
 * One command per connection, on purpose: a unix-socket connect costs tens of
 * microseconds, far below the ~1 ms a state change takes, and a fresh
 * connection always reaches the CURRENT worker. A persistent `prompt`
 * connection would stay attached to the old worker after a seamless reload
 * (the old worker keeps serving its open CLI sessions until it exits), so
 * commands would silently change a process that no longer takes traffic.
 * Commands are still serialised through a queue so a diff applies in order.
 */
import net from 'node:net';

export interface RuntimeApiOptions {
  socketPath: string;
  /** Per-command timeout. @default 5000 */
  timeoutMs?: number;
}

export interface ServerStateRow {
  backend: string;
  server: string;
  address: string;
  port: number;
  /** 0 stopped, 1 starting, 2 running, 3 stopping. */
  opState: number;
  /** Bit field: 0x01/0x20 forced maint, 0x08 forced drain, ... */
  adminState: number;
  userWeight: number;
}

export type StatRow = Record<string, string>;

export class RuntimeApiError extends Error {
  readonly command: string;
  readonly answer: string;
  constructor(command: string, answer: string) {
    super(`HAProxy runtime API refused '${command}': ${answer.trim() || '(empty answer)'}`);
    this.command = command;
    this.answer = answer;
  }
}

/**
 * What a successful answer looks like: `empty` for the set/enable/disable
 * family (HAProxy prints nothing on success, a sentence on failure), a regexp
 * for commands that confirm, `any` for show commands.
 */
export type Expect = 'empty' | 'any' | RegExp;

export class RuntimeApi {
  readonly socketPath: string;
  private readonly timeoutMs: number;
  private queue: Promise<unknown> = Promise.resolve();
  private commandsSent = 0;

  constructor(opts: RuntimeApiOptions) {
    this.socketPath = opts.socketPath;
    this.timeoutMs = opts.timeoutMs ?? 5000;
  }

  status(): { socketPath: string; commandsSent: number } {
    return { socketPath: this.socketPath, commandsSent: this.commandsSent };
  }

  /** Send one command, resolve with the raw answer (no error interpretation). */
  raw(command: string): Promise<string> {
    if (/[\n;]/.test(command))
      throw new Error(`runtime API command must be one line without ';': ${command}`);
    const run = (): Promise<string> => this.send(command);
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Send one command and throw RuntimeApiError when the answer is not the expected one. */
  async exec(command: string, expect: Expect = 'any'): Promise<string> {
    const answer = await this.raw(command);
    const ok =
      expect === 'any'
        ? !/^(Unknown command|Permission denied)/.test(answer)
        : expect === 'empty'
          ? answer.trim() === ''
          : expect.test(answer);
    if (!ok) throw new RuntimeApiError(command, answer);
    return answer;
  }

  private send(command: string): Promise<string> {
    this.commandsSent++;
    return new Promise((resolve, reject) => {
      const sock = net.connect(this.socketPath);
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`HAProxy runtime API timed out after ${this.timeoutMs} ms on '${command}'`));
      }, this.timeoutMs);
      sock.on('connect', () => sock.end(command + '\n'));
      sock.on('data', (d: Buffer) => chunks.push(d));
      sock.on('error', (err) => {
        clearTimeout(timer);
        reject(new Error(`HAProxy runtime API at ${this.socketPath} unreachable: ${err.message}`));
      });
      sock.on('close', () => {
        clearTimeout(timer);
        resolve(Buffer.concat(chunks).toString('utf8'));
      });
    });
  }

  async addServer(
    backend: string,
    server: string,
    address: string,
    port: number,
    options: string,
  ): Promise<void> {
    const a = address.includes(':') ? `[${address}]` : address;
    await this.exec(`add server ${backend}/${server} ${a}:${port} ${options}`, /New server registered/);
  }

  /** The server must be in maintenance and have no connection left. */
  async delServer(backend: string, server: string): Promise<void> {
    await this.exec(`del server ${backend}/${server}`, /Server deleted/);
  }

  async enableServer(backend: string, server: string): Promise<void> {
    await this.exec(`enable server ${backend}/${server}`, 'empty');
  }

  async disableServer(backend: string, server: string): Promise<void> {
    await this.exec(`disable server ${backend}/${server}`, 'empty');
  }

  async enableHealth(backend: string, server: string): Promise<void> {
    await this.exec(`enable health ${backend}/${server}`, 'empty');
  }

  async setServerState(backend: string, server: string, state: 'ready' | 'drain' | 'maint'): Promise<void> {
    await this.exec(`set server ${backend}/${server} state ${state}`, 'empty');
  }

  async setServerWeight(backend: string, server: string, weight: number): Promise<void> {
    await this.exec(`set server ${backend}/${server} weight ${weight}`, 'empty');
  }

  async setServerAddr(backend: string, server: string, address: string, port: number): Promise<void> {
    await this.exec(
      `set server ${backend}/${server} addr ${address} port ${port}`,
      /changed|no need to change/i,
    );
  }

  /** Terminate in-flight sessions on a server (used before deleting a stuck one). */
  async shutdownSessions(backend: string, server: string): Promise<void> {
    await this.exec(`shutdown sessions server ${backend}/${server}`);
  }

  async showInfo(): Promise<Record<string, string>> {
    const out = await this.exec('show info');
    const info: Record<string, string> = {};
    for (const line of out.split('\n')) {
      const i = line.indexOf(':');
      if (i > 0) info[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    return info;
  }

  /** `show stat` as rows; `serversOnly` asks HAProxy for server rows only (no FRONTEND/BACKEND). */
  async showStat(opts: { serversOnly?: boolean } = {}): Promise<StatRow[]> {
    return parseStatCsv(await this.exec(opts.serversOnly ? 'show stat -1 4 -1' : 'show stat'));
  }

  async showServersState(backend?: string): Promise<ServerStateRow[]> {
    return parseServersState(
      await this.exec(backend ? `show servers state ${backend}` : 'show servers state'),
    );
  }
}

/** Parse `show stat` CSV (header line starts with `# `). */
export function parseStatCsv(text: string): StatRow[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = lines.shift();
  if (!header?.startsWith('# ')) throw new Error(`unexpected 'show stat' answer: ${text.slice(0, 200)}`);
  const cols = header.slice(2).split(',');
  return lines.map((line) => {
    const vals = line.split(',');
    const row: StatRow = {};
    cols.forEach((c, i) => {
      if (c) row[c] = vals[i] ?? '';
    });
    return row;
  });
}

/** Parse `show servers state` (version line, then `# be_id be_name ...` header, then rows). */
export function parseServersState(text: string): ServerStateRow[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const headerIdx = lines.findIndex((l) => l.startsWith('# '));
  if (headerIdx < 0) throw new Error(`unexpected 'show servers state' answer: ${text.slice(0, 200)}`);
  const cols = (lines[headerIdx] ?? '').slice(2).split(' ');
  const at = (name: string): number => cols.indexOf(name);
  return lines.slice(headerIdx + 1).map((line) => {
    const v = line.split(' ');
    const get = (name: string): string => v[at(name)] ?? '';
    return {
      backend: get('be_name'),
      server: get('srv_name'),
      address: get('srv_addr'),
      port: Number(get('srv_port')),
      opState: Number(get('srv_op_state')),
      adminState: Number(get('srv_admin_state')),
      userWeight: Number(get('srv_uweight')),
    };
  });
}

/** Map HAProxy admin-state bits to the Bulwark state (maint wins over drain). */
export function adminStateToServerState(adminState: number): 'ready' | 'drain' | 'maint' {
  // SRV_ADMF_FMAINT 0x01, SRV_ADMF_IMAINT 0x02, SRV_ADMF_CMAINT 0x04 (config 'disabled'),
  // SRV_ADMF_FDRAIN 0x08, SRV_ADMF_IDRAIN 0x10, SRV_ADMF_RMAINT 0x20 (DNS), SRV_ADMF_HMAINT 0x40.
  // HAProxy's own SRV_ADMF_MAINT mask is 0x23: CMAINT only records that the server was
  // declared `disabled` and stays set after it is enabled (observed: admin=4 while serving).
  if (adminState & 0x23) return 'maint';
  if (adminState & (0x08 | 0x10)) return 'drain';
  return 'ready';
}
