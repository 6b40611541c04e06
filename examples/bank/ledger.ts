/**
 * ledger: the append-only book of money movements and the source of truth for
 * balances. Entries carry ids; appending an id twice is a no-op, which makes
 * retries of a payment safe.
 *
 *   POST /entries  { entries: [{ id, account, amountCents, paymentId }] } -> 201 { appended, entries }
 *                  a debit that would make a balance negative -> 422 (nothing is written)
 *   GET  /balances/:account -> { account, balanceCents }
 *   GET  /entries?account=acc-1&limit=50 -> { entries }
 */
import path from 'node:path';
import { HttpError, runMain, type Route } from './lib/http.ts';
import { Journal, Mutex, dataDir } from './lib/journal.ts';
import { OPENING_BALANCE_CENTS, isAccount } from './lib/accounts-seed.ts';

export interface Entry {
  id: string;
  account: string;
  amountCents: number;
  paymentId: string;
  at: string;
}

export class Ledger {
  readonly #journal: Journal<Entry>;
  readonly #mutex = new Mutex();
  readonly #byId = new Map<string, Entry>();
  readonly #balances = new Map<string, number>();
  readonly #recent: Entry[] = [];

  constructor(file: string) {
    this.#journal = new Journal<Entry>(file);
  }

  /** Fold in lines other replicas wrote; duplicates (from racing replicas) count once. */
  async #catchUp(): Promise<void> {
    for (const e of await this.#journal.readNew()) this.#index(e);
  }

  #index(e: Entry): void {
    if (this.#byId.has(e.id)) return;
    this.#byId.set(e.id, e);
    this.#balances.set(e.account, this.balanceOf(e.account) + e.amountCents);
    this.#recent.push(e);
    if (this.#recent.length > 10_000) this.#recent.shift();
  }

  balanceOf(account: string): number {
    return this.#balances.get(account) ?? OPENING_BALANCE_CENTS;
  }

  async balance(account: string): Promise<number> {
    await this.#mutex.run(() => this.#catchUp());
    return this.balanceOf(account);
  }

  async append(entries: Omit<Entry, 'at'>[]): Promise<{ appended: number; entries: Entry[] }> {
    return await this.#mutex.run(async () => {
      await this.#catchUp();
      const fresh = entries.filter((e) => !this.#byId.has(e.id));
      const after = new Map<string, number>();
      for (const e of fresh)
        after.set(e.account, (after.get(e.account) ?? this.balanceOf(e.account)) + e.amountCents);
      for (const [account, cents] of after) {
        if (cents < 0) throw new HttpError(422, `insufficient funds on ${account}`);
      }
      const at = new Date().toISOString();
      const written = fresh.map((e) => ({ ...e, at }));
      await this.#journal.append(written);
      for (const e of written) this.#index(e);
      return { appended: written.length, entries: entries.map((e) => this.#byId.get(e.id)!) };
    });
  }

  async entries(account: string | null, limit: number): Promise<Entry[]> {
    await this.#mutex.run(() => this.#catchUp());
    const list = account ? this.#recent.filter((e) => e.account === account) : this.#recent;
    return list.slice(-limit);
  }
}

function parseEntries(body: unknown): Omit<Entry, 'at'>[] {
  const list = (body as { entries?: unknown } | null)?.entries;
  if (!Array.isArray(list) || list.length === 0)
    throw new HttpError(400, 'body must be { entries: [...] } with at least one entry');
  return list.map((e: unknown, i) => {
    const o = (e ?? {}) as Record<string, unknown>;
    if (typeof o.id !== 'string' || !o.id)
      throw new HttpError(400, `entries[${i}].id must be a non-empty string`);
    if (typeof o.account !== 'string' || !isAccount(o.account))
      throw new HttpError(404, `entries[${i}].account: unknown account ${String(o.account)}`);
    if (!Number.isSafeInteger(o.amountCents) || o.amountCents === 0)
      throw new HttpError(400, `entries[${i}].amountCents must be a non-zero integer`);
    if (typeof o.paymentId !== 'string') throw new HttpError(400, `entries[${i}].paymentId must be a string`);
    return { id: o.id, account: o.account, amountCents: o.amountCents as number, paymentId: o.paymentId };
  });
}

export function ledgerRoutes(ledger: Ledger): Route[] {
  return [
    {
      method: 'POST',
      path: '/entries',
      handler: async (ctx) => ({ status: 201, body: await ledger.append(parseEntries(await ctx.json())) }),
    },
    {
      method: 'GET',
      path: '/balances/:account',
      handler: async ({ params }) => {
        const account = params.account ?? '';
        if (!isAccount(account)) throw new HttpError(404, `unknown account ${account}`);
        return { status: 200, body: { account, balanceCents: await ledger.balance(account) } };
      },
    },
    {
      method: 'GET',
      path: '/entries',
      handler: async ({ url }) => {
        const limit = Math.min(Math.max(Number(url.searchParams.get('limit') ?? 50) || 50, 1), 1000);
        return {
          status: 200,
          body: { entries: await ledger.entries(url.searchParams.get('account'), limit) },
        };
      },
    },
  ];
}

if (import.meta.main) {
  const ledger = new Ledger(path.join(dataDir(), 'ledger.jsonl'));
  await runMain({ name: process.env.BULWARK_SERVICE || 'ledger', routes: ledgerRoutes(ledger) });
}
