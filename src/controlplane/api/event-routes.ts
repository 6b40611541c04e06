/**
 * `GET /api/v1/events`: the change stream as Server-Sent Events. Each event
 * carries the store's change seq as its SSE id, so a client that reconnects
 * with `Last-Event-ID` (browsers do this by themselves) or `?after=` misses
 * nothing the log still holds.
 */
import type { FastifyInstance } from 'fastify';
import type { ChangeEvent } from '../../store/store.ts';
import type { ApiDeps } from './deps.ts';
import { errorResponses } from './schemas.ts';

export interface EventRouteOptions {
  /** Comment line sent to keep proxies from closing an idle stream. @default 15000 */
  heartbeatMs?: number;
}

function frame(ev: ChangeEvent): string {
  return `id: ${ev.seq}\nevent: change\ndata: ${JSON.stringify(ev)}\n\n`;
}

export function registerEventRoutes(app: FastifyInstance, deps: ApiDeps, opts: EventRouteOptions = {}): void {
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  app.get<{ Querystring: { after?: number; kind?: string } }>('/api/v1/events', {
    schema: {
      tags: ['events'],
      summary:
        'Change stream (text/event-stream); each `change` event is a ChangeEvent JSON with its seq as id; ' +
        '`topology` events carry the live Topology (at most every 2 s, when it changed)',
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: {
          after: { type: 'integer', minimum: 0, description: 'Replay changes with seq > after first' },
          kind: { type: 'string', enum: ['Site', 'Project', 'App'] },
        },
      },
      response: {
        200: { description: 'text/event-stream of `event: change` frames', type: 'string' },
        ...errorResponses,
      },
    },
    handler: async (req, reply) => {
      const header = req.headers['last-event-id'];
      const fromHeader = typeof header === 'string' && /^\d+$/.test(header) ? Number(header) : undefined;
      let after = req.query.after ?? fromHeader ?? deps.feed.seq;
      const kind = req.query.kind;
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write(`retry: 1000\n: connected at seq ${after}\n\n`);
      const send = (ev: ChangeEvent): void => {
        if (ev.seq <= after) return;
        after = ev.seq;
        if (kind && ev.key.kind !== kind) return;
        res.write(frame(ev));
      };
      // Subscribe before replaying so nothing written in between is lost; `send` drops repeats by seq.
      const buffered: ChangeEvent[] = [];
      let replaying = true;
      const unsubscribe = deps.feed.subscribe((ev) => (replaying ? buffered.push(ev) : send(ev)));
      // Topology changes (at most every 2 s) ride the same stream, without an id: they are live
      // state, not log entries, so they never move a reconnecting client's Last-Event-ID.
      const unsubscribeTopology = deps.observability?.onTopology((t) => {
        res.write(`event: topology\ndata: ${JSON.stringify(t)}\n\n`);
      });
      const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), heartbeatMs);
      heartbeat.unref();
      const close = (): void => {
        clearInterval(heartbeat);
        unsubscribe();
        unsubscribeTopology?.();
      };
      req.raw.on('close', close);
      try {
        for (;;) {
          const batch = await deps.store.changesSince(after, 500);
          batch.forEach(send);
          if (batch.length < 500) break;
        }
      } finally {
        replaying = false;
        buffered.forEach(send);
      }
    },
  });
}
