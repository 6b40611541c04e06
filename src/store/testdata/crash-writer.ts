/**
 * Child process for the PGlite crash-safety test: writes to the store at
 * argv[2] as fast as it can and prints "ack <i>" after each committed
 * operation, until the parent SIGKILLs it mid-write.
 */
import type { AppResource } from '../../model/types.ts';
import { openStore } from '../open.ts';

const dataDir = process.argv[2];
if (!dataDir) throw new Error('usage: crash-writer.ts <dataDir>');

const store = await openStore({ dataDir });
const app = (name: string, replicas: number): AppResource => ({
  apiVersion: 'bulwark.io/v1',
  kind: 'App',
  metadata: { name, project: 'crash' },
  spec: { workloads: [{ name: 'web', type: 'service', replicas, run: { command: ['sleep', '1'] } }] },
});
const key = (name: string) => ({ kind: 'App' as const, project: 'crash', name });

process.stdout.write('ready\n');
// Bounded so a parent that never kills us cannot leave us running forever.
for (let i = 0; i < 100_000; i++) {
  await store.apply(app(`a${i}`, 1));
  await store.updateStatus(key(`a${i}`), { conditions: [], observedGeneration: 1, workloads: [] });
  if (i % 3 === 0 && i > 0) await store.apply(app(`a${i - 1}`, i));
  if (i % 7 === 0 && i > 5) await store.delete(key(`a${i - 5}`));
  process.stdout.write(`ack ${i}\n`);
}
await store.close();
