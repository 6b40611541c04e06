/** Thin HTTP client for the control plane API, mapping failures to CLI exit codes. */
import { CliError, EXIT, exitCodeForStatus } from './exit-codes.ts';
import type { CliConfig } from './config.ts';

export interface ApiErrorBody {
  error?: {
    code?: string;
    message?: string;
    details?: { path: string; message: string; fix?: string; line?: number }[];
  };
}

export class ApiClient {
  private readonly cfg: CliConfig;
  constructor(cfg: CliConfig) {
    this.cfg = cfg;
  }

  get server(): string {
    return this.cfg.server;
  }

  async request<T>(
    method: string,
    path: string,
    body?: { json?: unknown; yaml?: string },
    opts: { timeoutMs?: number } = {},
  ): Promise<T> {
    const headers: Record<string, string> = {};
    let payload: string | undefined;
    if (body?.yaml !== undefined) {
      headers['content-type'] = 'application/yaml';
      payload = body.yaml;
    } else if (body?.json !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body.json);
    }
    const res = await this.#fetch(method, path, headers, payload, opts.timeoutMs);
    const text = await res.text();
    if (!res.ok) this.#fail(res, text);
    try {
      return (text ? JSON.parse(text) : undefined) as T;
    } catch {
      return text as T;
    }
  }

  /** GET a binary body (e.g. an evidence bundle); API errors fail the same way as `request`. */
  async download(path: string, opts: { timeoutMs?: number } = {}): Promise<Buffer> {
    const res = await this.#fetch('GET', path, {}, undefined, opts.timeoutMs ?? 120_000);
    if (!res.ok) this.#fail(res, await res.text());
    return Buffer.from(await res.arrayBuffer());
  }

  async #fetch(
    method: string,
    path: string,
    headers: Record<string, string>,
    payload: string | undefined,
    timeoutMs = 30_000,
  ): Promise<Response> {
    if (this.cfg.token) headers.authorization = `Bearer ${this.cfg.token}`;
    try {
      return await fetch(this.cfg.server + path, {
        method,
        headers,
        ...(payload !== undefined ? { body: payload } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      throw new CliError(
        `cannot reach the control plane at ${this.cfg.server} (${cause}); is it running? start it with 'npm start' or set --server / BULWARK_SERVER`,
        EXIT.unreachable,
      );
    }
  }

  /** Turn an error answer into a CliError with the API's details and fixes, and the exit code of its status. */
  #fail(res: Response, text: string): never {
    let data: unknown = undefined;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      data = text;
    }
    const e = (data as ApiErrorBody | undefined)?.error;
    const lines = [`${res.status} ${e?.code ?? ''}: ${e?.message ?? text}`.trim()];
    for (const d of e?.details ?? []) {
      lines.push(
        `  ${d.path}${d.line ? ` (line ${d.line})` : ''}: ${d.message}${d.fix ? `\n    fix: ${d.fix}` : ''}`,
      );
    }
    if (res.status === 401 && !this.cfg.token)
      lines.push('  no token configured: pass --token or set BULWARK_TOKEN');
    throw new CliError(lines.join('\n'), exitCodeForStatus(res.status));
  }
}
