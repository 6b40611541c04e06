/**
 * Message catalogues. Every visible string goes through `t(key, vars)`; the
 * English catalogue is the reference (its keys are the type), another locale
 * may leave keys out and falls back to English. Dates and numbers are
 * formatted with Intl in the chosen locale.
 */
import { createContext, useContext, useMemo, useState, type ReactNode } from 'react';
import { en, type MessageKey } from './en.ts';
import { zhCN } from './zh-CN.ts';

export type Locale = 'en' | 'zh-CN';
export const LOCALES: { id: Locale; label: string }[] = [
  { id: 'en', label: 'English' },
  { id: 'zh-CN', label: '简体中文' },
];

const catalogues: Record<Locale, Partial<Record<MessageKey, string>>> = { en, 'zh-CN': zhCN };
const LOCALE_KEY = 'bulwark.locale';

export type Translate = (key: MessageKey, vars?: Record<string, string | number>) => string;

export function translate(locale: Locale, key: MessageKey, vars?: Record<string, string | number>): string {
  const template = catalogues[locale][key] ?? en[key];
  if (!vars) return template;
  return template.replace(/\{(\w+)\}/g, (m, name: string) => (name in vars ? String(vars[name]) : m));
}

interface I18n {
  locale: Locale;
  setLocale: (l: Locale) => void;
  t: Translate;
  fmtTime: (iso: string | undefined) => string;
  fmtNumber: (n: number, digits?: number) => string;
}

const I18nContext = createContext<I18n | null>(null);

function initialLocale(): Locale {
  const saved = localStorage.getItem(LOCALE_KEY);
  if (saved === 'en' || saved === 'zh-CN') return saved;
  return navigator.language.toLowerCase().startsWith('zh') ? 'zh-CN' : 'en';
}

export function I18nProvider({ children }: { children: ReactNode }) {
  const [locale, setLocaleState] = useState<Locale>(initialLocale);
  const value = useMemo<I18n>(() => {
    const timeFmt = new Intl.DateTimeFormat(locale, {
      month: 'short',
      day: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    return {
      locale,
      setLocale: (l) => {
        localStorage.setItem(LOCALE_KEY, l);
        document.documentElement.lang = l;
        setLocaleState(l);
      },
      t: (key, vars) => translate(locale, key, vars),
      fmtTime: (iso) => (iso ? timeFmt.format(new Date(iso)) : '—'),
      fmtNumber: (n, digits = 1) =>
        new Intl.NumberFormat(locale, { maximumFractionDigits: digits }).format(n),
    };
  }, [locale]);
  return <I18nContext.Provider value={value}>{children}</I18nContext.Provider>;
}

export function useI18n(): I18n {
  const v = useContext(I18nContext);
  if (!v) throw new Error('useI18n outside I18nProvider');
  return v;
}
