/**
 * gateway: the bank's edge API.
 *
 *   GET  /api/accounts/:id                                   -> accounts
 *   POST /api/payments { from, to, amountCents } (Idempotency-Key) -> accounts -> payments -> ledger
 */
import { HttpError, runMain, type Route } from './lib/http.ts';
import { guarded, upstreamFromEnv, type Upstream } from './lib/upstream.ts';

export function gatewayRoutes(accounts: Upstream): Route[] {
  return [
    {
      method: 'GET',
      path: '/api/accounts/:id',
      handler: ({ params, trace }) =>
        guarded(async () => {
          const r = await accounts.call('GET', `/accounts/${encodeURIComponent(params.id ?? '')}`, { trace });
          return { status: r.status, body: r.body };
        }),
    },
    {
      method: 'POST',
      path: '/api/payments',
      handler: async (ctx) => {
        const key = ctx.req.headers['idempotency-key'];
        if (typeof key !== 'string' || !key) {
          throw new HttpError(
            400,
            'Idempotency-Key header is required: send a fresh UUID per payment and reuse it on retry',
          );
        }
        const body = (await ctx.json()) as Record<string, unknown>;
        if (typeof body.from !== 'string' || !body.from)
          throw new HttpError(400, 'from must be an account id, e.g. acc-1');
        return await guarded(async () => {
          const r = await accounts.call(
            'POST',
            `/accounts/${encodeURIComponent(body.from as string)}/payments`,
            {
              trace: ctx.trace,
              headers: { 'idempotency-key': key },
              body: { to: body.to, amountCents: body.amountCents },
            },
          );
          const replayed = r.headers['idempotent-replayed'];
          return {
            status: r.status,
            body: r.body,
            ...(typeof replayed === 'string' ? { headers: { 'idempotent-replayed': replayed } } : {}),
          };
        });
      },
    },
  ];
}

if (import.meta.main) {
  const accounts = upstreamFromEnv('ACCOUNTS_SERVICE', 'api.accounts.bank');
  await runMain({ name: process.env.BULWARK_SERVICE || 'gateway', routes: gatewayRoutes(accounts) });
}
