/** The demo bank in integration tests that run it on a control-plane process. */
import type { InstanceStatus } from '../../src/runtime/driver.ts';
import { waitFor } from '../../src/util/time.ts';
import type { ControlPlaneProcess } from './control-plane-process.ts';

export const BANK_APPS = ['gateway', 'accounts', 'payments', 'ledger'] as const;

/** Delete the bank's apps and wait (bounded) until their instances are gone; cleanup never throws. */
export async function removeBankDemo(cp: ControlPlaneProcess): Promise<void> {
  for (const app of BANK_APPS) {
    await cp.api('DELETE', `/api/v1/projects/bank/apps/${app}`).catch(() => undefined);
  }
  await waitFor(
    'instances gone',
    async () =>
      (await cp.api<{ items: InstanceStatus[] }>('GET', '/api/v1/instances')).body.items.length === 0,
    { timeoutMs: 30_000 },
  ).catch(() => undefined);
}

/** Wait until the bank's 8 instances (4 apps x 2) are ready. */
export async function waitBankReady(cp: ControlPlaneProcess): Promise<void> {
  await waitFor(
    '8 demo instances ready',
    async () =>
      (await cp.api<{ items: InstanceStatus[] }>('GET', '/api/v1/instances')).body.items.filter(
        (i) => i.ready,
      ).length === 8,
    { timeoutMs: 120_000, intervalMs: 500 },
  );
}
