/** Demo accounts `acc-1` .. `acc-<BANK_ACCOUNTS>` each open with 1000.00 (in cents). */
export const OPENING_BALANCE_CENTS = 100_000;

export function accountCount(env = process.env): number {
  const n = Number(env.BANK_ACCOUNTS ?? 1000);
  return Number.isInteger(n) && n > 0 ? n : 1000;
}

export function isAccount(id: string, count = accountCount()): boolean {
  const m = /^acc-([1-9][0-9]*)$/.exec(id);
  return m !== null && Number(m[1]) <= count;
}
