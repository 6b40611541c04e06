/**
 * Request outcomes from the data plane's per-request log: one RequestSignal
 * per logged request, attributed to the server (instance) that answered.
 *
 * HAProxy logs only the final attempt of a request it retried on another
 * server; the failed earlier attempts come from `ServerStatsSource`.
 */
import type { DataPlane } from '../../dataplane/dataplane.ts';
import { fromRequestLog } from '../signals/request.ts';
import { BaseSource } from './base.ts';
import type { SourceOptions } from './types.ts';

export interface RequestLogSourceOptions extends SourceOptions {
  dataPlane: Pick<DataPlane, 'onRequest'>;
}

export class RequestLogSource extends BaseSource {
  readonly name = 'request-log';
  private readonly dataPlane: Pick<DataPlane, 'onRequest'>;
  private unsubscribe: (() => void) | undefined;

  constructor(opts: RequestLogSourceOptions) {
    super(opts);
    this.dataPlane = opts.dataPlane;
  }

  protected onStart(): void {
    this.unsubscribe = this.dataPlane.onRequest((log) => {
      try {
        const r = fromRequestLog(log);
        if (r && this.view?.get(r.instanceId)) this.emit(r.instanceId, r.signal);
      } catch (err) {
        this.fail(err);
      }
    });
  }

  protected held(): number {
    return 0;
  }

  async stop(): Promise<void> {
    this.running = false;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }
}
