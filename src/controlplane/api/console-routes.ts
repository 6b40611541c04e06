/**
 * The web console: the built single-page app (web/dist, built from web/ by
 * `npm run build:console`) served under /console/, with `/` redirecting
 * there. Any /console/ path that is not a file gets index.html so client-side
 * routes survive a reload. Hashed assets are immutable for a year;
 * index.html is revalidated every time (ETag), so a new build is picked up at
 * once. The pages need no token to load: everything they show comes from
 * /api/v1 with the bearer token the user signs in with.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';

export const CONSOLE_PREFIX = '/console/';
export const DEFAULT_CONSOLE_DIR = path.resolve(import.meta.dirname, '../../../web/dist');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

// Scripts only from this origin; the API is same-origin too. Inline styles are
// allowed because React sets element styles (tooltip position) at run time.
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

export interface ConsoleRouteOptions {
  /** Directory of the built console. @default web/dist of this checkout */
  dir?: string;
}

function securityHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY');
}

/** Resolve a request path inside `dir`, or undefined for traversal attempts and dotfiles. */
export function resolveAsset(dir: string, rel: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rel);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0') || decoded.split('/').some((s) => s.startsWith('.'))) return undefined;
  const full = path.resolve(dir, `./${decoded}`);
  if (full !== dir && !full.startsWith(dir + path.sep)) return undefined;
  return full;
}

export function registerConsoleRoutes(app: FastifyInstance, opts: ConsoleRouteOptions = {}): void {
  const dir = path.resolve(opts.dir ?? DEFAULT_CONSOLE_DIR);
  // Public by declaration (the pages hold no data; the API calls they make carry the user's token),
  // and left out of the OpenAPI document.
  const hidden = { schema: { hide: true }, config: { auth: 'public' } } as const;

  app.get('/', hidden, async (_req, reply) => reply.redirect(CONSOLE_PREFIX, 302));
  app.get('/console', hidden, async (_req, reply) => reply.redirect(CONSOLE_PREFIX, 301));

  const sendIndex = (reply: FastifyReply, ifNoneMatch: string | undefined): FastifyReply => {
    const file = path.join(dir, 'index.html');
    let html: Buffer;
    try {
      html = fs.readFileSync(file);
    } catch {
      return securityHeaders(reply)
        .status(503)
        .type('text/html; charset=utf-8')
        .header('cache-control', 'no-store')
        .send(
          '<!doctype html><title>Bulwark console not built</title><h1>The console is not built</h1>' +
            '<p>Run <code>npm run build:console</code> (or <code>npm start</code>, which builds it when its sources changed), then reload.</p>',
        );
    }
    const etag = `"${createHash('sha1').update(html).digest('base64url').slice(0, 16)}"`;
    securityHeaders(reply).header('cache-control', 'no-cache').header('etag', etag);
    if (ifNoneMatch === etag) return reply.status(304).send();
    return reply.type(TYPES['.html']!).send(html);
  };

  app.get<{ Params: { '*': string } }>(`${CONSOLE_PREFIX}*`, hidden, async (req, reply) => {
    const rel = req.params['*'] ?? '';
    const inm = req.headers['if-none-match'];
    const ifNoneMatch = typeof inm === 'string' ? inm : undefined;
    if (rel === '' || rel === 'index.html') return sendIndex(reply, ifNoneMatch);
    const file = resolveAsset(dir, rel);
    if (!file)
      return reply.status(404).send({ error: { code: 'NotFound', message: 'no such console file' } });
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(file);
    } catch {
      stat = undefined;
    }
    if (stat?.isFile()) {
      const ext = path.extname(file);
      // Vite names built assets by content hash: a changed file gets a new name.
      const immutable = rel.startsWith('assets/');
      securityHeaders(reply)
        .type(TYPES[ext] ?? 'application/octet-stream')
        .header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
        .header('content-length', stat.size);
      return reply.send(fs.createReadStream(file));
    }
    // A missing asset is a 404 (a stale page asking for an old hash must not get HTML as JavaScript);
    // anything else is a client-side route.
    if (path.extname(rel) !== '') {
      return reply.status(404).send({ error: { code: 'NotFound', message: `no console file ${rel}` } });
    }
    return sendIndex(reply, ifNoneMatch);
  });
}
