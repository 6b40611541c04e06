/**
 * An explained message (present/explain.ts): what happened, what to do, and
 * the text as it was sent under "Technical details", so nothing the server
 * said is lost while none of it is shown as the message itself.
 */
import type { Explained } from '../present/explain.ts';
import { explainText } from '../present/explain.ts';
import { useI18n } from '../i18n/index.tsx';

export function Explanation({
  e,
  className,
  inline = false,
}: {
  e: Explained;
  className?: string;
  /** One line (tables, lists): the advice and the original fold into the details element. */
  inline?: boolean;
}) {
  const { t } = useI18n();
  const tech = e.original ? (
    <details className="tech">
      <summary>{t('explain.technical')}</summary>
      {inline && e.todo && <p className="todo">{e.todo}</p>}
      <code className="original">{e.original}</code>
    </details>
  ) : inline && e.todo ? (
    <details className="tech">
      <summary>{t('explain.whatToDo')}</summary>
      <p className="todo">{e.todo}</p>
    </details>
  ) : null;
  return (
    <span className={`explained ${className ?? ''}`} data-testid="explained">
      <span className="what">{e.what}</span>
      {!inline && e.todo && <span className="todo"> {e.todo}</span>}
      {tech}
    </span>
  );
}

/** A status text from the API (an instance message, a condition, a reason) through the translation table. */
export function StatusText({ text, className }: { text: string; className?: string }) {
  const { t, fmtTime } = useI18n();
  return <Explanation e={explainText(text, { t, fmtTime })} inline {...(className ? { className } : {})} />;
}

/** A timestamp with its zone, and the exact ISO time as its tooltip. */
export function Time({ iso, clock = false }: { iso: string | undefined; clock?: boolean }) {
  const { fmtTime, fmtClock } = useI18n();
  if (!iso) return <>—</>;
  return (
    <time dateTime={iso} title={iso}>
      {clock ? fmtClock(iso) : fmtTime(iso)}
    </time>
  );
}
