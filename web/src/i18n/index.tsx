/**
 * Message catalogues. Every visible string goes through `t(key, vars)`; the
 * English catalogue is the reference (its keys are the type), another locale
 * may leave keys out and falls back to English. Dates and numbers are
 * formatted with Intl in the chosen locale, times always with their zone
 * (format.ts).
 */
import { createContext, useContext, useMemo, useState, type ReactNode } from 'react';
import { formatClock, formatDateTime } from './format.ts';
import { translate, type Locale, type Translate } from './translate.ts';

export { translate, type Locale, type Translate };
export const LOCALES: { id: Locale; label: string }[] = [
  { id: 'en', label: 'English' },
  { id: 'zh-CN', label: '简体中文' },
];

const LOCALE_KEY = 'bulwark.locale';

interface I18n {
  locale: Locale;
  setLocale: (l: Locale) => void;
  t: Translate;
  /** Date, time and the time zone's name (`Dec 1, 11:56:50 PM UTC`). */
  fmtTime: (iso: string | undefined) => string;
  /** Time of day and the time zone's name (`11:56:50 PM UTC`). */
  fmtClock: (iso: string | undefined) => string;
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
    return {
      locale,
      setLocale: (l) => {
        localStorage.setItem(LOCALE_KEY, l);
        document.documentElement.lang = l;
        setLocaleState(l);
      },
      t: (key, vars) => translate(locale, key, vars),
      fmtTime: (iso) => formatDateTime(locale, iso),
      fmtClock: (iso) => formatClock(locale, iso),
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
