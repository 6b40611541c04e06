import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { bulwarkSchema } from './schema.ts';
import { SCHEMA_FILE, publishSchema } from './publish-schema.ts';

describe('published schema', () => {
  it('schemas/bulwark.schema.json equals the generated schema (run: node src/model/publish-schema.ts)', () => {
    // Compared as JSON so formatting by prettier does not matter.
    expect(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8'))).toEqual(JSON.parse(JSON.stringify(bulwarkSchema)));
  });

  it('publishSchema writes the file', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'schema-'));
    try {
      const out = await publishSchema(path.join(dir, 'x', 'schema.json'));
      expect(JSON.parse(readFileSync(out, 'utf8')).$id).toBe(bulwarkSchema.$id);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('works in a plain ajv without Bulwark keywords and still rejects planned fields', () => {
    const ajv = new Ajv({ allErrors: true, strict: false });
    const validate = ajv.compile(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')));
    const app = {
      apiVersion: 'bulwark.io/v1',
      kind: 'App',
      metadata: { name: 'a', project: 'p' },
      spec: { workloads: [{ name: 'w', type: 'service', run: { command: ['x'] } }] },
    };
    expect(validate(app)).toBe(true);
    expect(validate({ ...app, spec: { ...app.spec, rollout: {} } })).toBe(false);
    expect(validate({ ...app, kind: 'Site' })).toBe(false);
  });

  it('closes every object schema against unknown fields', () => {
    const open: string[] = [];
    const visit = (node: unknown, at: string): void => {
      if (node === null || typeof node !== 'object') return;
      const n = node as Record<string, unknown>;
      if (n.type === 'object' && n.properties && n.additionalProperties !== false) open.push(at);
      for (const [k, v] of Object.entries(n)) visit(v, `${at}/${k}`);
    };
    visit(bulwarkSchema.definitions, '#/definitions');
    expect(open).toEqual([]);
  });
});
