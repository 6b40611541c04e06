/**
 * Writes the manifest JSON Schema to `schemas/bulwark.schema.json` (committed,
 * so editors and CI can use it without running Bulwark).
 *
 * Usage: node src/model/publish-schema.ts [outFile]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderSchema } from './schema.ts';

export const SCHEMA_FILE = fileURLToPath(new URL('../../schemas/bulwark.schema.json', import.meta.url));

export async function publishSchema(outFile: string = SCHEMA_FILE): Promise<string> {
  await mkdir(path.dirname(outFile), { recursive: true });
  await writeFile(outFile, renderSchema());
  return outFile;
}

if (import.meta.main) {
  const out = await publishSchema(process.argv[2]);
  console.log(`wrote ${out}`);
}
