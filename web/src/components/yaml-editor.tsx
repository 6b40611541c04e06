/**
 * A YAML text editor with line numbers and in-place error marks: the lines
 * the API named in its error details are highlighted behind the text and in
 * the gutter, and `focusLine` puts the caret there.
 */
import { forwardRef, useImperativeHandle, useRef, useState } from 'react';
import type { ErrorDetail } from '../api/types.ts';

export interface YamlEditorHandle {
  focusLine: (line: number) => void;
}

interface Props {
  value: string;
  onChange: (v: string) => void;
  errors: ErrorDetail[];
  label: string;
}

export const YamlEditor = forwardRef<YamlEditorHandle, Props>(function YamlEditor(
  { value, onChange, errors, label },
  ref,
) {
  const area = useRef<HTMLTextAreaElement>(null);
  const gutter = useRef<HTMLDivElement>(null);
  const backdrop = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const lines = value.split('\n');
  const bad = new Map<number, string>();
  for (const e of errors)
    if (e.line) bad.set(e.line, `${bad.has(e.line) ? `${bad.get(e.line)}\n` : ''}${e.path}: ${e.message}`);

  useImperativeHandle(ref, () => ({
    focusLine: (line: number) => {
      const el = area.current;
      if (!el) return;
      const start = lines.slice(0, line - 1).reduce((s, l) => s + l.length + 1, 0);
      const end = start + (lines[line - 1]?.length ?? 0);
      el.focus();
      el.setSelectionRange(start, end);
      const lh = parseFloat(getComputedStyle(el).lineHeight) || 20;
      el.scrollTop = Math.max(0, (line - 4) * lh);
    },
  }));

  return (
    <div className="editor">
      <div className="editor-gutter" ref={gutter} aria-hidden="true">
        <div style={{ transform: `translateY(${-scrollTop}px)` }}>
          {lines.map((_, i) => (
            <div
              key={i}
              className={bad.has(i + 1) ? 'gl gl-bad' : 'gl'}
              title={bad.get(i + 1)}
              data-line={i + 1}
            >
              {i + 1}
            </div>
          ))}
        </div>
      </div>
      <div className="editor-body">
        <div className="editor-backdrop" ref={backdrop} aria-hidden="true">
          <div style={{ transform: `translateY(${-scrollTop}px)` }}>
            {lines.map((l, i) => (
              <div key={i} className={bad.has(i + 1) ? 'bl bl-bad' : 'bl'}>
                {l || ' '}
              </div>
            ))}
          </div>
        </div>
        <textarea
          ref={area}
          className="editor-text"
          value={value}
          spellCheck={false}
          wrap="off"
          aria-label={label}
          aria-invalid={errors.length > 0}
          onChange={(e) => onChange(e.target.value)}
          onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}
          onKeyDown={(e) => {
            // Tab indents (two spaces) instead of leaving the editor; Escape then Tab leaves it.
            if (e.key === 'Tab' && !e.shiftKey && !e.currentTarget.dataset.escaped) {
              e.preventDefault();
              const el = e.currentTarget;
              const s = el.selectionStart;
              const next = `${value.slice(0, s)}  ${value.slice(el.selectionEnd)}`;
              onChange(next);
              requestAnimationFrame(() => el.setSelectionRange(s + 2, s + 2));
            } else if (e.key === 'Escape') {
              e.currentTarget.dataset.escaped = '1';
            } else {
              delete e.currentTarget.dataset.escaped;
            }
          }}
        />
      </div>
    </div>
  );
});
