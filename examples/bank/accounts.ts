/**
 * accounts: the customer-facing view of accounts. Balances come from the
 * ledger; payments from an account are forwarded to the payments service
 * with the caller's Idempotency-Key.
 *
 *   GET  /accounts/:id          -> { id, balanceCents, currency }
 *   POST /accounts/:id/payments { to, amountCents } (Idempotency-Key) -> payments' answer
 */
import { HttpError, runMain, type Reply, type Route } from './lib/http.ts';
import { guarded, upstreamFromEnv, type Upstream, type UpstreamReply } from './lib/upstream.ts';

const relay = (r: UpstreamReply): Reply => {
  const replayed = r.headers['idempotent-replayed'];
  return {
    status: r.status,
    body: r.body,
    ...(typeof replayed === 'string' ? { headers: { 'idempotent-replayed': replayed } } : {}),
  };
};

export function accountsRoutes(up: { ledger: Upstream; payments: Upstream }): Route[] {
  return [
    {
      method: 'GET',
      path: '/accounts/:id',
      handler: ({ params, trace }) =>
        guarded(async () => {
          const id = encodeURIComponent(params.id ?? '');
          const r = await up.ledger.call('GET', `/balances/${id}`, { trace });
          if (r.status !== 200) return relay(r);
          const b = r.body as { balanceCents: number };
          return { status: 200, body: { id: params.id, balanceCents: b.balanceCents, currency: 'EUR' } };
        }),
    },
    {
      method: 'POST',
      path: '/accounts/:id/payments',
      handler: async (ctx) => {
        const key = ctx.req.headers['idempotency-key'];
        if (typeof key !== 'string' || !key) throw new HttpError(400, 'Idempotency-Key header is required');
        const body = (await ctx.json()) as Record<string, unknown>;
        return await guarded(async () =>
          relay(
            await up.payments.call('POST', '/payments', {
              trace: ctx.trace,
              headers: { 'idempotency-key': key },
              body: { from: ctx.params.id, to: body.to, amountCents: body.amountCents },
            }),
          ),
        );
      },
    },
  ];
}

if (import.meta.main) {
  const routes = accountsRoutes({
    ledger: upstreamFromEnv('LEDGER_SERVICE', 'api.ledger.bank'),
    payments: upstreamFromEnv('PAYMENTS_SERVICE', 'api.payments.bank'),
  });
  await runMain({ name: process.env.BULWARK_SERVICE || 'accounts', routes });
}
