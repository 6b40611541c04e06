/** The demo bank in integration tests that run it on a control-plane process. */
import type { InstanceStatus } from '../../src/runtime/driver.ts';
import { waitFor } from '../../src/util/time.ts';
import type { ControlPlaneProcess } from './control-plane-process.ts';

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
