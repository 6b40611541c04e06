/**
 * A Server-Sent Events reader over fetch(). The browser's EventSource cannot
 * send an Authorization header, and the alternatives (a token in the URL, an
 * ambient cookie) leak the credential into logs and history or open the API
 * to cross-site requests. fetch() streams the same text/event-stream with the
 * bearer header, so /api/v1/events needs no second way to authenticate.
 *
 * It reconnects by itself with backoff and resumes with Last-Event-ID, like
 * EventSource does, and treats a silent stream (no heartbeat) as dead.
 */

export type StreamState = 'connecting' | 'live' | 'reconnecting' | 'unauthorized' | 'stopped';

export interface StreamHandlers {
  onEvent: (event: string, data: string, id: string | undefined) => void;
  onState: (state: StreamState, detail?: string) => void;
  /** Called on each successful (re)connect, so readers can refetch what they may have missed. */
  onConnected: (reconnect: boolean) => void;
}

export interface StreamOptions {
  url: string;
  token: () => string | null;
  /** A stream silent for this long is considered dead (the server sends heartbeats every 15 s). @default 40000 */
  idleTimeoutMs?: number;
  /** @default 500 */
  minBackoffMs?: number;
  /** @default 8000 */
  maxBackoffMs?: number;
}

export class EventStream {
  private readonly o: Required<StreamOptions>;
  private readonly h: StreamHandlers;
  private abort: AbortController | undefined;
  private stopped = false;
  private lastId: string | undefined;
  private connectedOnce = false;

  constructor(opts: StreamOptions, handlers: StreamHandlers) {
    this.o = { idleTimeoutMs: 40_000, minBackoffMs: 500, maxBackoffMs: 8_000, ...opts };
    this.h = handlers;
  }

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
    this.h.onState('stopped');
  }

  private async loop(): Promise<void> {
    let backoff = this.o.minBackoffMs;
    while (!this.stopped) {
      this.h.onState(this.connectedOnce ? 'reconnecting' : 'connecting');
      const outcome = await this.connectOnce();
      if (this.stopped) return;
      if (outcome === 'unauthorized') {
        this.h.onState('unauthorized');
        return;
      }
      if (outcome === 'streamed') backoff = this.o.minBackoffMs;
      this.h.onState('reconnecting', outcome === 'failed' ? 'control plane unreachable' : 'stream ended');
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(this.o.maxBackoffMs, backoff * 2);
    }
  }

  /** One connection; resolves when it ends. 'streamed' = it was up for a while. */
  private async connectOnce(): Promise<'streamed' | 'failed' | 'unauthorized'> {
    const ctl = new AbortController();
    this.abort = ctl;
    const token = this.o.token();
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (token) headers.authorization = `Bearer ${token}`;
    if (this.lastId !== undefined) headers['last-event-id'] = this.lastId;
    let idle: ReturnType<typeof setTimeout> | undefined;
    let live = false;
    const arm = (): void => {
      clearTimeout(idle);
      idle = setTimeout(() => ctl.abort(), this.o.idleTimeoutMs);
    };
    try {
      arm();
      const res = await fetch(this.o.url, { headers, signal: ctl.signal, cache: 'no-store' });
      if (res.status === 401) return 'unauthorized';
      if (!res.ok || !res.body) return 'failed';
      live = true;
      this.h.onState('live');
      this.h.onConnected(this.connectedOnce);
      this.connectedOnce = true;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      let event = 'message';
      let data: string[] = [];
      let id: string | undefined;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        arm();
        buf += value;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, '');
          buf = buf.slice(nl + 1);
          if (line === '') {
            if (data.length > 0) {
              if (id !== undefined) this.lastId = id;
              this.h.onEvent(event, data.join('\n'), id);
            }
            event = 'message';
            data = [];
            id = undefined;
            continue;
          }
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') event = val;
          else if (field === 'data') data.push(val);
          else if (field === 'id') id = val;
        }
      }
      return 'streamed';
    } catch {
      return live ? 'streamed' : 'failed';
    } finally {
      clearTimeout(idle);
    }
  }
}
