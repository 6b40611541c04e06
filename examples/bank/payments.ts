/**
 * payments: moves money between accounts, exactly once per `Idempotency-Key`.
 *
 *   POST /payments  Idempotency-Key: <key>  { from, to, amountCents }
 *     201 { id, from, to, amountCents, status: 'completed' }   (a replay answers the same, with Idempotent-Replayed: true)
 *     409 while the same key is being processed; 422 if the key was used for a different request
 *
 * The key is claimed with an exclusive file create (O_EXCL) in the shared data
 * directory, so two replicas of payments on this machine cannot both process
 * it. The payment id is derived from the key and the ledger entry ids from the
 * payment id, so even a retry after a crash mid-way cannot charge twice: the
 * ledger ignores an entry id it already has.
 */
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { HttpError, runMain, type Reply, type Route } from './lib/http.ts';
import { dataDir } from './lib/journal.ts';
import { UpstreamError, upstreamFromEnv, type Upstream } from './lib/upstream.ts';
import type { TraceContext } from './lib/trace.ts';

interface PaymentRequest {
  from: string;
  to: string;
  amountCents: number;
}

type KeyRecord =
  | { state: 'pending'; requestHash: string; startedAt: number }
  | { state: 'completed'; requestHash: string; reply: Reply };

export interface PaymentsOptions {
  dir: string;
  ledger: Upstream;
  /** A pending claim older than this is taken over (its owner died). @default 10000 */
  staleClaimMs?: number;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

export function parsePayment(body: unknown): PaymentRequest {
  const o = (body ?? {}) as Record<string, unknown>;
  if (typeof o.from !== 'string' || !o.from)
    throw new HttpError(400, 'from must be an account id, e.g. acc-1');
  if (typeof o.to !== 'string' || !o.to) throw new HttpError(400, 'to must be an account id, e.g. acc-2');
  if (o.from === o.to) throw new HttpError(400, 'from and to must differ');
  if (!Number.isSafeInteger(o.amountCents) || (o.amountCents as number) <= 0) {
    throw new HttpError(400, 'amountCents must be a positive integer (cents)');
  }
  return { from: o.from, to: o.to, amountCents: o.amountCents as number };
}

export class Payments {
  readonly #dir: string;
  readonly #ledger: Upstream;
  readonly #staleClaimMs: number;

  constructor(o: PaymentsOptions) {
    this.#dir = o.dir;
    this.#ledger = o.ledger;
    this.#staleClaimMs = o.staleClaimMs ?? 10_000;
    mkdirSync(this.#dir, { recursive: true });
  }

  async pay(key: string, p: PaymentRequest, trace: TraceContext): Promise<Reply> {
    const keyHash = sha256(key);
    const file = path.join(this.#dir, `${keyHash}.json`);
    const requestHash = sha256(JSON.stringify([p.from, p.to, p.amountCents]));
    const claim: KeyRecord = { state: 'pending', requestHash, startedAt: Date.now() };
    try {
      await writeFile(file, JSON.stringify(claim), { flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const seen = await this.#read(file);
      if (seen && seen.requestHash !== requestHash) {
        throw new HttpError(422, 'Idempotency-Key was already used for a different payment');
      }
      if (seen?.state === 'completed') {
        return { ...seen.reply, headers: { ...seen.reply.headers, 'idempotent-replayed': 'true' } };
      }
      // Pending (or being written): wait for its owner unless the owner evidently died.
      if (!seen || Date.now() - seen.startedAt < this.#staleClaimMs) {
        return {
          status: 409,
          body: { error: 'a payment with this Idempotency-Key is in progress' },
          headers: { 'retry-after': '1' },
        };
      }
      await this.#write(file, claim);
    }
    const id = `pay_${keyHash.slice(0, 24)}`;
    let reply: Reply;
    try {
      const res = await this.#ledger.call('POST', '/entries', {
        trace,
        body: {
          entries: [
            { id: `${id}:debit`, account: p.from, amountCents: -p.amountCents, paymentId: id },
            { id: `${id}:credit`, account: p.to, amountCents: p.amountCents, paymentId: id },
          ],
        },
      });
      if (res.status === 201) {
        reply = { status: 201, body: { id, ...p, status: 'completed' } };
      } else if (res.status === 404 || res.status === 422 || res.status === 400) {
        // A definite answer: remember it, a retry with this key gets the same.
        const error = (res.body as { error?: string } | undefined)?.error ?? `ledger answered ${res.status}`;
        reply = { status: res.status, body: { id, ...p, status: 'rejected', error } };
      } else {
        throw new UpstreamError(502, `ledger answered ${res.status}`);
      }
    } catch (err) {
      // No definite outcome: release the key so the client can retry; entry ids keep the retry safe.
      await unlink(file).catch(() => undefined);
      if (err instanceof UpstreamError) throw new HttpError(err.status, err.message);
      throw err;
    }
    await this.#write(file, { state: 'completed', requestHash, reply });
    return reply;
  }

  async #read(file: string): Promise<KeyRecord | undefined> {
    try {
      return JSON.parse(await readFile(file, 'utf8')) as KeyRecord;
    } catch {
      return undefined; // just created by another replica and not yet written
    }
  }

  /** Replace atomically, so a reader never sees half a record. */
  async #write(file: string, rec: KeyRecord): Promise<void> {
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(rec));
    await rename(tmp, file);
  }
}

export function paymentsRoutes(payments: Payments): Route[] {
  return [
    {
      method: 'POST',
      path: '/payments',
      handler: async (ctx) => {
        const key = ctx.req.headers['idempotency-key'];
        if (typeof key !== 'string' || key.length === 0 || key.length > 255) {
          throw new HttpError(400, 'Idempotency-Key header is required (1..255 characters, e.g. a UUID)');
        }
        return await payments.pay(key, parsePayment(await ctx.json()), ctx.trace);
      },
    },
  ];
}

if (import.meta.main) {
  const payments = new Payments({
    dir: path.join(dataDir(), 'payments'),
    ledger: upstreamFromEnv('LEDGER_SERVICE', 'api.ledger.bank'),
  });
  await runMain({ name: process.env.BULWARK_SERVICE || 'payments', routes: paymentsRoutes(payments) });
}
