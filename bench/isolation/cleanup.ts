/**
 * Everything the benchmark starts registers its stop function here, so the
 * normal end, an error and Ctrl-C all stop the same set of processes
 * (newest first: instances before the proxies and control plane they need).
 */
const stack: { what: string; fn: () => Promise<void> | void }[] = [];
let running: Promise<void> | undefined;

/** Register a stop function; the returned function runs it now (once) and unregisters it. */
export function onCleanup(what: string, fn: () => Promise<void> | void): () => Promise<void> {
  const entry = { what, fn };
  stack.push(entry);
  return async () => {
    const i = stack.indexOf(entry);
    if (i < 0) return;
    stack.splice(i, 1);
    await fn();
  };
}

export function cleanupAll(): Promise<void> {
  running ??= (async () => {
    while (stack.length > 0) {
      const c = stack.pop();
      if (!c) break;
      try {
        await c.fn();
      } catch (err) {
        process.stderr.write(`cleanup of ${c.what} failed: ${(err as Error).message}\n`);
      }
    }
  })();
  return running;
}

/** Ctrl-C / SIGTERM: stop everything, then exit with the conventional code. */
export function installSignalHandlers(): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\n${sig}: stopping every process the benchmark started...\n`);
      void cleanupAll().then(() => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
}
