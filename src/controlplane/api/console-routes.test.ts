import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerConsoleRoutes, resolveAsset } from './console-routes.ts';

let dir: string;
let app: FastifyInstance;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulwark-console-'));
  fs.mkdirSync(path.join(dir, 'assets'));
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><div id="root"></div>');
  fs.writeFileSync(path.join(dir, 'assets', 'index-abc123.js'), 'console.log(1)');
  fs.writeFileSync(path.join(dir, '.build-stamp'), 'x');
  app = Fastify();
  registerConsoleRoutes(app, { dir });
  await app.ready();
});
afterAll(async () => {
  await app.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('console routes', () => {
  it('302 from / to /console/', async () => {
    const r = await app.inject('/');
    expect(r.statusCode).toBe(302);
    expect(r.headers.location).toBe('/console/');
  });

  it('200 index.html with no-cache, an ETag and a CSP; 304 when the ETag matches', async () => {
    const r = await app.inject('/console/');
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toContain('text/html');
    expect(r.headers['cache-control']).toBe('no-cache');
    expect(r.headers['content-security-policy']).toContain("script-src 'self'");
    const again = await app.inject({
      url: '/console/',
      headers: { 'if-none-match': String(r.headers.etag) },
    });
    expect(again.statusCode).toBe(304);
  });

  it('200 hashed assets as immutable with their type', async () => {
    const r = await app.inject('/console/assets/index-abc123.js');
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toContain('text/javascript');
    expect(r.headers['cache-control']).toContain('immutable');
    expect(r.body).toBe('console.log(1)');
  });

  it('index.html for client-side routes (SPA fallback)', async () => {
    const r = await app.inject('/console/apps/bank/payments');
    expect(r.statusCode).toBe(200);
    expect(r.body).toContain('id="root"');
  });

  it('404 for a missing asset rather than HTML served as JavaScript', async () => {
    const r = await app.inject('/console/assets/index-old.js');
    expect(r.statusCode).toBe(404);
  });

  it('404 for dotfiles and path traversal', async () => {
    expect((await app.inject('/console/.build-stamp')).statusCode).toBe(404);
    expect((await app.inject('/console/..%2f..%2fetc%2fpasswd')).statusCode).toBe(404);
    expect(resolveAsset(dir, '../secret')).toBeUndefined();
    expect(resolveAsset(dir, 'assets/a.js')).toBe(path.join(dir, 'assets/a.js'));
  });

  it('503 with the build command when the console is not built', async () => {
    const bare = Fastify();
    registerConsoleRoutes(bare, { dir: path.join(dir, 'missing') });
    const r = await bare.inject('/console/');
    expect(r.statusCode).toBe(503);
    expect(r.body).toContain('npm run build:console');
    await bare.close();
  });
});
