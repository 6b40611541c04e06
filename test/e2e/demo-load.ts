/**
 * Steady traffic through the site gateway along the demo's call chain
 * (gateway -> accounts -> ledger, and payments via POST), so the topology has
 * edges with rates to show. Failures are counted, not thrown: faults are
 * injected on purpose while it runs.
 */
import { sleep } from '../../src/util/time.ts';
import { httpRequest } from '../support/http.ts';

export class DemoLoad {
  ok = 0;
  failed = 0;
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(gatewayUrl: string, ratePerSec = 12, workers = 3) {
    const gap = (1000 / ratePerSec) * workers;
    let n = 0;
    const worker = async (w: number): Promise<void> => {
      while (!this.stopped) {
        const t0 = Date.now();
        const i = n++;
        try {
          const r =
            i % 4 === 3
              ? await httpRequest(`${gatewayUrl}/api/payments`, {
                  method: 'POST',
                  headers: {
                    host: 'gateway.bank',
                    'content-type': 'application/json',
                    'idempotency-key': `e2e-${w}-${i}-${t0}`,
                  },
                  body: JSON.stringify({ from: 'acc-1', to: 'acc-2', amountCents: 1 }),
                  timeoutMs: 10_000,
                })
              : await httpRequest(`${gatewayUrl}/api/accounts/acc-${1 + (i % 5)}`, {
                  headers: { host: 'gateway.bank' },
                  timeoutMs: 10_000,
                });
          if (r.status < 400) this.ok++;
          else this.failed++;
        } catch {
          this.failed++;
        }
        await sleep(Math.max(0, gap - (Date.now() - t0)));
      }
    };
    this.done = Promise.all(Array.from({ length: workers }, (_, w) => worker(w))).then(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}
