import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { planDemo, selectDocuments } from './demo-apply.ts';

const bank = readFileSync(new URL('../../examples/bank/bank.yaml', import.meta.url), 'utf8');

describe('the demo keeps operator intent', () => {
  it('creates what is missing and keeps what differs, with the difference', () => {
    const plan = planDemo({
      dryRun: true,
      results: [
        { kind: 'Project', name: 'bank', action: 'unchanged', changes: [] },
        {
          kind: 'App',
          project: 'bank',
          name: 'accounts',
          action: 'updated',
          generation: 3,
          changes: [{ op: 'replace', path: 'spec.workloads[0].replicas', from: 5, to: 2 }],
        },
        { kind: 'App', project: 'bank', name: 'ledger', action: 'created', changes: [] },
      ],
    });
    expect(plan.create.map((r) => r.name)).toEqual(['ledger']);
    expect(plan.kept.map((r) => r.name)).toEqual(['accounts']);
  });

  it('selects the documents of the resources to create from the manifest, by kind, project and name', () => {
    const names = parseAllDocuments(bank).map(
      (d) => d.toJS() as { kind: string; metadata: { name: string } },
    );
    const app = names.find((n) => n.kind === 'App')!;
    const yaml = selectDocuments(bank, new Set([`App/bank/${app.metadata.name}`]));
    const docs = parseAllDocuments(yaml).map((d) => d.toJS() as { kind: string; metadata: { name: string } });
    expect(docs).toHaveLength(1);
    expect(docs[0]).toMatchObject({ kind: 'App', metadata: { name: app.metadata.name } });
    expect(selectDocuments(bank, new Set())).toBe('');
  });
});
