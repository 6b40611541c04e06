/**
 * What a YAML syntax error means and where the mistake is. The yaml parser
 * reports where it gave up, which is often not the line to edit: an unclosed
 * quote is reported at the end of the text, a line indented too far at the
 * key above it. `yamlSyntaxHint` moves the position to the line to fix and
 * says how to fix it.
 */

export interface YamlSyntaxHint {
  /** 0-based offset of the mistake in the text (may differ from the parser's). */
  offset: number;
  fix: string;
}

interface Line {
  /** 1-based. */
  no: number;
  start: number;
  text: string;
}

function linesOf(text: string): Line[] {
  const out: Line[] = [];
  let start = 0;
  let no = 1;
  for (const t of text.split('\n')) {
    out.push({ no, start, text: t });
    start += t.length + 1;
    no++;
  }
  return out;
}

const blank = (l: Line): boolean => /^\s*(#.*)?$/.test(l.text);
const indentOf = (l: Line): number => /^ */.exec(l.text)![0].length;
/** Where the keys of a line start: after `- ` for a list item. */
const keyIndentOf = (l: Line): number => /^ *(- +)*/.exec(l.text)![0].length;

function lineAt(lines: Line[], offset: number): number {
  let i = 0;
  while (i + 1 < lines.length && lines[i + 1]!.start <= offset) i++;
  return i;
}

function prevContent(lines: Line[], i: number): Line | undefined {
  for (let j = i - 1; j >= 0; j--) if (!blank(lines[j]!)) return lines[j];
  return undefined;
}

function nextContent(lines: Line[], i: number): Line | undefined {
  for (let j = i + 1; j < lines.length; j++) if (!blank(lines[j]!)) return lines[j];
  return undefined;
}

/** A line that opens a quote it does not close (the unclosed quote's line). */
function unclosedQuoteLine(lines: Line[], upTo: number, quote: string): Line | undefined {
  for (let j = 0; j <= upTo && j < lines.length; j++) {
    const t = lines[j]!.text.replace(/\s#.*$/, '');
    const n = t.split(quote).length - 1 - (quote === "'" ? (t.match(/''/g)?.length ?? 0) * 2 : 0);
    if (n % 2 === 1) return lines[j];
  }
  return undefined;
}

/**
 * `code` and `message` are yaml's (YAMLError.code, the first line of its
 * message); `offset` is where yaml reported it.
 */
export function yamlSyntaxHint(
  text: string,
  code: string,
  message: string,
  offset: number,
): YamlSyntaxHint | undefined {
  const lines = linesOf(text);
  const i = lineAt(lines, offset);
  const line = lines[i];
  if (!line) return undefined;
  const at = (l: Line, col = indentOf(l)): number => l.start + col;

  if (code === 'TAB_AS_INDENT' || (/\t/.test(line.text) && /tab/i.test(message))) {
    return { offset: at(line, 0), fix: `indent line ${line.no} with spaces; YAML does not allow tabs there` };
  }
  const quote = /Missing closing (["'])/.exec(message)?.[1];
  if (quote) {
    const open = unclosedQuoteLine(lines, i, quote) ?? line;
    return {
      offset: at(open, Math.max(0, open.text.indexOf(quote))),
      fix: `close the ${quote === '"' ? 'double' : 'single'} quote opened on line ${open.no} (add ${quote} at the end of the value)`,
    };
  }
  if (/Sequence item without - indicator/.test(message)) {
    const prev = prevContent(lines, i);
    const want = prev ? keyIndentOf(prev) : 0;
    return {
      offset: at(line),
      fix: prev
        ? `line ${line.no} is indented ${indentOf(line)} spaces, the key above it (line ${prev.no}) ${want}: indent it to ${want} spaces, or start a new list item with '- '`
        : `start list items with '- '`,
    };
  }
  if (code === 'BLOCK_AS_IMPLICIT_KEY' || code === 'MULTILINE_IMPLICIT_KEY' || code === 'BAD_INDENT') {
    const next = nextContent(lines, i);
    // `name: a` followed by a line indented deeper: that line is the mistake.
    if (/^\s*(- +)?[^\s#:][^:#]*:\s+\S/.test(line.text) && next && indentOf(next) > keyIndentOf(line)) {
      return {
        offset: at(next),
        fix: `line ${next.no} is indented ${indentOf(next)} spaces, deeper than the key '${line.text.trim().split(':')[0]}' above it (${keyIndentOf(line)}): indent it to ${keyIndentOf(line)} spaces if it is a sibling, or remove the value on line ${line.no} if it is a child`,
      };
    }
    // `name a`: a key without its colon.
    if (/^\s*(- +)?[A-Za-z_][\w.-]*\s+[^:#\s][^:]*$/.test(line.text)) {
      const key = line.text.trim().replace(/^- +/, '').split(/\s+/)[0];
      return { offset: at(line), fix: `put ': ' after the key '${key}' on line ${line.no}` };
    }
    if (/flow (map|sequence)/i.test(message)) {
      return {
        offset: at(line),
        fix: `close the ${/map/i.test(message) ? "'{' with '}'" : "'[' with ']'"} on the line where it opens, or write the value as an indented block`,
      };
    }
  }
  if (code === 'DUPLICATE_KEY') return undefined;
  return {
    offset,
    fix: `check line ${line.no} and the line above it: indent with spaces, put ': ' after each key, close every quote and bracket`,
  };
}
