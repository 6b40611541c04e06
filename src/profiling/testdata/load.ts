/**
 * Load fixture: keeps CONCURRENCY requests in flight against URL for
 * DURATION_MS and prints {"ok":n,"failed":n,"errors":[...]} on stdout. A
 * separate process so it can run inside a network namespace with the server.
 */
const url = process.env.URL ?? '';
const durationMs = Number(process.env.DURATION_MS ?? 1000);
const concurrency = Number(process.env.CONCURRENCY ?? 4);
const until = Date.now() + durationMs;
let ok = 0;
let failed = 0;
const errors: string[] = [];

async function worker(): Promise<void> {
  while (Date.now() < until) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.text();
      if (res.status === 200) ok++;
      else {
        failed++;
        errors.push(`status ${res.status}`);
      }
    } catch (err) {
      failed++;
      if (errors.length < 5) errors.push(String(err));
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, worker));
process.stdout.write(`${JSON.stringify({ ok, failed, errors })}\n`);
