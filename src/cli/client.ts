/** Thin HTTP client for the control plane API, mapping failures to CLI exit codes. */
import { CliError, EXIT, exitCodeForStatus, type ApiErrorDetail } from './exit-codes.ts';
import type { CliConfig } from './config.ts';
import { httpRequest, TlsTrustError, type HttpAnswer } from './transport.ts';

export interface ApiErrorBody {
  error?: {
    code?: string;
    message?: string;
    details?: ApiErrorDetail[];
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

  /** How this client trusts an https:// server (a manifest passes the same trust on to agents). */
  get trust(): CliConfig['trust'] {
    return this.cfg.trust;
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
    const text = res.body.toString('utf8');
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
    if (!res.ok) this.#fail(res, res.body.toString('utf8'));
    return res.body;
  }

  async #fetch(
    method: string,
    path: string,
    headers: Record<string, string>,
    payload: string | undefined,
    timeoutMs = 30_000,
  ): Promise<HttpAnswer> {
    if (this.cfg.token) headers.authorization = `Bearer ${this.cfg.token}`;
    try {
      return await httpRequest({
        method,
        url: this.cfg.server + path,
        headers,
        body: payload,
        timeoutMs,
        trust: this.cfg.trust,
      });
    } catch (err) {
      // Not an outage: retrying will not help and the message says what to configure.
      if (err instanceof TlsTrustError) throw new CliError(err.message, EXIT.unauthorized);
      const cause =
        (err as Error).name === 'AbortError'
          ? `no answer within ${timeoutMs / 1000} s`
          : ((err as { code?: string }).code ?? (err as Error).name);
      throw new CliError(
        `cannot reach the control plane at ${this.cfg.server} (${cause}); is it running? start it with 'npm start' or set --server / BULWARK_SERVER`,
        EXIT.unreachable,
      );
    }
  }

  /** Turn an error answer into a CliError with the API's details and fixes, and the exit code of its status. */
  #fail(res: HttpAnswer, text: string): never {
    let data: unknown = undefined;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      data = text;
    }
    const e = (data as ApiErrorBody | undefined)?.error;
    const details = e?.details ?? [];
    // With details the message's own list repeats them: its first line is the summary.
    const summary =
      (details.length > 0 ? (e?.message ?? '').split('\n')[0]!.replace(/:$/, '') : undefined) ?? '';
    const lines = [
      `${res.status} ${e?.code ?? ''}: ${details.length > 0 ? summary : (e?.message ?? text)}`.trim(),
    ];
    for (const d of details) {
      lines.push(
        `  ${d.path}${d.line ? ` (line ${d.line})` : ''}: ${d.message}${d.fix ? `\n    fix: ${d.fix}` : ''}`,
      );
    }
    if (res.status === 401 && !this.cfg.token)
      lines.push('  no token configured: pass --token or set BULWARK_TOKEN');
    throw new CliError(lines.join('\n'), exitCodeForStatus(res.status), {
      status: res.status,
      ...(e?.code ? { code: e.code } : {}),
      summary,
      details,
    });
  }
}
