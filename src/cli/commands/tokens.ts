/**
 * `bulwark tokens`: agent tokens, with an admin token.
 *   bulwark tokens create --scope agent --name node-a   prints the secret once (stdout: only the secret)
 *   bulwark tokens list
 *   bulwark tokens revoke ID [--reason TEXT]
 */
import type { ApiClient } from '../client.ts';
import { CliError, EXIT } from '../exit-codes.ts';
import { render, table, type OutputFormat } from '../output.ts';
import type { Io } from './resources.ts';

export interface TokenView {
  id: string;
  name: string;
  scope: string;
  createdAt: string;
  revokedAt?: string;
  revokedReason?: string;
}

export async function createAgentToken(
  api: ApiClient,
  name: string,
): Promise<TokenView & { secret: string }> {
  return api.request<TokenView & { secret: string }>('POST', '/api/v1/tokens', {
    json: { name, scope: 'agent' },
  });
}

export async function cmdTokens(
  api: ApiClient,
  io: Io,
  fmt: OutputFormat,
  sub: string | undefined,
  arg: string | undefined,
  f: { scope?: string | undefined; name?: string | undefined; reason?: string | undefined },
): Promise<void> {
  switch (sub) {
    case 'create': {
      if (!f.name)
        throw new CliError('tokens create needs --name NAME (e.g. the node that will use it)', EXIT.usage);
      const scope = f.scope ?? 'agent';
      if (scope !== 'agent') {
        throw new CliError(`--scope ${scope}: only 'agent' tokens are created here`, EXIT.usage);
      }
      const t = await createAgentToken(api, f.name);
      if (fmt !== 'table') {
        io.out(render(fmt, t, () => ''));
        return;
      }
      // The secret alone on stdout (scripts: TOKEN=$(bulwark tokens create ...)); the rest on stderr.
      io.err(`created ${t.scope} token '${t.name}' (${t.id}); the secret below is shown only this once`);
      io.out(t.secret);
      return;
    }
    case 'list': {
      const { items } = await api.request<{ items: TokenView[] }>('GET', '/api/v1/tokens');
      io.out(
        render(fmt, items, () =>
          table(
            ['ID', 'NAME', 'SCOPE', 'CREATED', 'REVOKED'],
            items.map((t) => [
              t.id,
              t.name,
              t.scope,
              t.createdAt,
              t.revokedAt ? `${t.revokedAt}${t.revokedReason ? ` (${t.revokedReason})` : ''}` : undefined,
            ]),
          ),
        ),
      );
      return;
    }
    case 'revoke': {
      if (!arg) throw new CliError('tokens revoke needs the token ID (see bulwark tokens list)', EXIT.usage);
      const t = await api.request<TokenView>('POST', `/api/v1/tokens/${encodeURIComponent(arg)}/revoke`, {
        json: f.reason !== undefined ? { reason: f.reason } : {},
      });
      io.out(render(fmt, t, () => `revoked token '${t.name}' (${t.id}) at ${t.revokedAt ?? '?'}`));
      return;
    }
    default:
      throw new CliError(`unknown tokens subcommand '${sub ?? ''}' (create, list or revoke)`, EXIT.usage);
  }
}
