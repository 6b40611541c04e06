import { describe, expect, it } from 'vitest';
import { en } from './en.ts';
import { zhCN } from './zh-CN.ts';

const placeholders = (s: string): string[] => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!).sort();

describe('zh-CN', () => {
  it('translates every English key', () => {
    expect(Object.keys(en).filter((k) => !(k in zhCN))).toEqual([]);
  });

  it('keeps every placeholder of the English text', () => {
    const off = Object.entries(zhCN).filter(
      ([k, v]) => placeholders(v!).join() !== placeholders(en[k as keyof typeof en]).join(),
    );
    expect(off.map(([k]) => k)).toEqual([]);
  });
});
