/**
 * What the console says instead of internal error strings. API failures
 * (code, HTTP status, message) and the status texts the runtime writes
 * (instance messages, exit reasons, condition messages) go through a table
 * of known shapes and come out as what happened and what to do; the text as
 * it was sent is kept as `original`, shown under "Technical details". A text
 * no rule knows stays as it is when it reads as prose, and is replaced by a
 * generic sentence (with the original kept) when it looks internal: a stack,
 * a JSON dump, an errno code, "fetch failed".
 */
import type { MessageKey } from '../i18n/en.ts';
import { localizeTimes } from '../i18n/format.ts';
import type { Translate } from '../i18n/translate.ts';

export interface Explained {
  /** What happened, in the reader's words. */
  what: string;
  /** What to do about it, when there is something to do. */
  todo?: string;
  /** The text as the server (or the browser) gave it, when `what` says it differently. */
  original?: string;
}

export interface ExplainContext {
  t: Translate;
  /** Formats an ISO timestamp found inside a message (with its zone). */
  fmtTime: (iso: string) => string;
}

/** Strings that are the machinery's, not a sentence for a person. */
const INTERNAL: RegExp[] = [
  /\n\s+at \S/, // a stack
  /\bat (?:\S+ )?\((?:file|node|https?):/, // one stack frame
  /^\s*[[{]/, // a JSON dump
  /\b(?:Type|Syntax|Range|Reference|Abort|Fetch|Internal|Unknown)Error\b/,
  /\bfetch failed\b|\bFailed to fetch\b|\bNetworkError\b|\bLoad failed\b/i,
  /\bE(?:CONNREFUSED|CONNRESET|NOENT|ACCES|PERM|ADDRINUSE|ADDRNOTAVAIL|TIMEDOUT|PIPE|HOSTUNREACH|NETUNREACH|NOTFOUND|AI_AGAIN|EXIST|NOSPC|BUSY)\b/,
  /\bFST_ERR_\w+/,
  /\[object Object\]|\bundefined\b|\bnull\b|\bNaN\b/,
  /^HTTP\d{3}\b/,
  /^no route [A-Z]+ \//,
];

export function looksInternal(text: string): boolean {
  return INTERNAL.some((re) => re.test(text));
}

/** errno codes inside a reason, as words. */
const ERRNO: Record<string, MessageKey> = {
  ENOENT: 'why.enoent',
  EACCES: 'why.eacces',
  EPERM: 'why.eacces',
  ECONNREFUSED: 'why.econnrefused',
  ECONNRESET: 'why.econnreset',
  ETIMEDOUT: 'why.etimedout',
  EADDRINUSE: 'why.eaddrinuse',
  ENOSPC: 'why.enospc',
  EHOSTUNREACH: 'why.unreachable',
  ENETUNREACH: 'why.unreachable',
};

/** A nested reason (the part after "start-failed: ", inside parentheses): words, never machinery. */
function why(text: string, ctx: ExplainContext): string {
  const errno = /\b(E[A-Z]{3,})\b/.exec(text)?.[1];
  if (errno && ERRNO[errno]) return ctx.t(ERRNO[errno]);
  if (looksInternal(text)) return ctx.t('why.internal');
  return localizeTimes(text, ctx.fmtTime);
}

interface Rule {
  re: RegExp;
  what: MessageKey;
  todo?: MessageKey;
  vars?: (m: RegExpExecArray, ctx: ExplainContext) => Record<string, string>;
  /** What to do, when it depends on a nested text (a crash loop's exit). */
  todoOf?: (m: RegExpExecArray, ctx: ExplainContext) => string | undefined;
}

const mib = (bytes: string): string =>
  /^\d+$/.test(bytes) ? `${Math.round(Number(bytes) / 2 ** 20)} MiB` : bytes;
const seconds = (ms: string): string => `${(Number(ms) / 1000).toFixed(Number(ms) < 10_000 ? 1 : 0)} s`;

/** One exit or start failure, as the runtime words it (ExitInfo.message, possibly prefixed by its reason). */
const EXIT_RULES: Rule[] = [
  {
    re: /^(?:start-failed: )+executable '([^']+)' not found\b.*$/,
    what: 'explain.exeNotFound',
    todo: 'todo.fixCommand',
    vars: (m) => ({ cmd: m[1]! }),
  },
  {
    re: /^(?:start-failed: )+the shim process could not be started\b.*$/,
    what: 'explain.shimFailed',
    todo: 'todo.controlPlaneLog',
  },
  {
    re: /^(?:start-failed: )+(.*)$/,
    what: 'explain.startFailed',
    todo: 'todo.seeLog',
    vars: (m, ctx) => ({ why: why(m[1]!, ctx) }),
  },
  {
    re: /^(?:exited: )?exited with code (\d+)$/,
    what: 'explain.exited',
    todo: 'todo.seeLog',
    vars: (m) => ({ code: m[1]! }),
  },
  {
    re: /^(?:signaled: )?killed by (SIG\w+)$/,
    what: 'explain.signaled',
    todo: 'todo.seeLog',
    vars: (m) => ({ signal: m[1]! }),
  },
  {
    re: /^(?:oom-killed: )?OOM-killed: exceeded its memory limit of (\d+|unlimited) bytes$/,
    what: 'explain.oom',
    todo: 'todo.memory',
    vars: (m) => ({ limit: mib(m[1]!) }),
  },
  {
    re: /^(?:liveness-failed: )?(?:killed after the )?liveness probe failed[:;]? ?(.*)$/,
    what: 'explain.liveness',
    todo: 'todo.liveness',
    vars: (m, ctx) => ({ probe: m[1] ? why(m[1], ctx) : '—' }),
  },
];

/** Other parts of an instance's message (InstanceStatus.message joins them with "; "). */
const STATUS_RULES: Rule[] = [
  ...EXIT_RULES,
  { re: /^restarting in (\d+) ms$/, what: 'explain.restartingIn', vars: (m) => ({ in: seconds(m[1]!) }) },
  { re: /^not restarted while quarantined$/, what: 'explain.notRestartedQuarantined' },
  {
    re: /^quarantined: (inc-[\w-]+): (.+)$/,
    what: 'explain.quarantinedFor',
    vars: (m) => ({ incident: m[1]!, signature: m[2]! }),
  },
  {
    re: /^(inc-[\w-]+): ([\w.-]+)$/,
    what: 'explain.quarantinedFor',
    vars: (m) => ({ incident: m[1]!, signature: m[2]! }),
  },
  {
    re: /^restart failed: (.*)$/,
    what: 'explain.restartFailed',
    todo: 'todo.controlPlaneLog',
    vars: (m, ctx) => ({ why: why(m[1]!, ctx) }),
  },
  {
    re: /^could not persist instance record: (.*)$/,
    what: 'explain.persistFailed',
    todo: 'todo.disk',
    vars: (m, ctx) => ({ why: why(m[1]!, ctx) }),
  },
  {
    re: /^could not restore the (cpu|memory) limit: (.*)$/,
    what: 'explain.restoreLimit',
    todo: 'todo.controlPlaneLog',
    vars: (m, ctx) => ({ resource: m[1]!, why: why(m[2]!, ctx) }),
  },
  {
    re: /^([\w.-]+): (\d+)\/(\d+) ready$/,
    what: 'explain.replicasReady',
    vars: (m) => ({ workload: m[1]!, ready: m[2]!, want: m[3]! }),
  },
  { re: /^(\d+) log lines dropped\b.*$/, what: 'explain.logsDropped', vars: (m) => ({ n: m[1]! }) },
  {
    re: /^cannot start ([\w.-]+)\[(\d+)\]: (.*)$/,
    what: 'explain.cannotStart',
    todo: 'todo.controlPlaneLog',
    vars: (m, ctx) => ({ workload: m[1]!, ordinal: m[2]!, why: why(m[3]!, ctx) }),
  },
  // A Degraded condition's entry: "<instance> backoff (<exit>), next restart at <time>".
  {
    re: /^(\S+) (backoff|failed)(?: \((.*)\))?(?:, next restart at (\S+))?$/,
    what: 'explain.instanceLooping',
    vars: (m, ctx) => ({
      instance: m[1]!,
      state: ctx.t(m[2] === 'backoff' ? 'explain.state.backoff' : 'explain.state.failed'),
      exit: m[3] ? explainText(m[3], ctx).what : '',
      next: m[4] ? ctx.t('explain.nextRestart', { at: ctx.fmtTime(m[4]) }) : '',
    }),
    todoOf: (m, ctx) => (m[3] ? explainText(m[3], ctx).todo : undefined),
  },
  // Timeline details that carry an error of the machinery.
  {
    re: /^not in the data plane \((.*)\); (.*)$/,
    what: 'explain.notRouted',
    vars: (m, ctx) => ({ why: why(m[1]!, ctx), rest: m[2]! }),
  },
  {
    re: /^quarantine failed: (.*)$/,
    what: 'explain.quarantineFailed',
    todo: 'todo.controlPlaneLog',
    vars: (m, ctx) => ({ why: why(m[1]!, ctx) }),
  },
];

function apply(
  rules: Rule[],
  text: string,
  ctx: ExplainContext,
): { what: string; todo?: string } | undefined {
  for (const r of rules) {
    const m = r.re.exec(text);
    if (!m) continue;
    const vars = r.vars?.(m, ctx);
    const what = ctx
      .t(r.what, vars)
      .replace(/\s+([.,;])/g, '$1')
      .replace(/\s{2,}/g, ' ')
      .trim();
    const todo = r.todo ? ctx.t(r.todo) : r.todoOf?.(m, ctx);
    return { what, ...(todo ? { todo } : {}) };
  }
  return undefined;
}

/**
 * A status text (an instance's message, a last exit, a condition's message, a
 * timeline detail): each "; "-separated part through the table; parts no rule
 * knows stay as they are, unless they look internal.
 */
export function explainText(text: string, ctx: ExplainContext): Explained {
  const parts = text
    .split(/; (?![^()]*\))/)
    .map((p) => p.trim())
    .filter(Boolean);
  const whats: string[] = [];
  const todos: string[] = [];
  for (const p of parts) {
    const hit = apply(STATUS_RULES, p, ctx);
    if (hit) {
      whats.push(hit.what);
      if (hit.todo) todos.push(hit.todo);
    } else if (looksInternal(p)) {
      whats.push(ctx.t('explain.internal'));
      todos.push(ctx.t('todo.controlPlaneLog'));
    } else {
      whats.push(localizeTimes(p, ctx.fmtTime));
    }
  }
  // Sentences follow each other; fragments keep the "; " they were joined with.
  const what = whats.reduce(
    (acc, w) => (acc === '' ? w : `${acc}${/[.!?]$/.test(acc) ? ' ' : '; '}${w}`),
    '',
  );
  const todo = [...new Set(todos)].join(' ');
  return {
    what,
    ...(todo ? { todo } : {}),
    ...(what !== text ? { original: text } : {}),
  };
}

/** The console's view of an API failure (api/client.ts's ApiFailure). */
export interface FailureLike {
  status: number;
  code: string;
  message: string;
  details: { path: string; message: string; fix?: string }[];
}

const CODES: Record<string, { what: MessageKey; todo: MessageKey }> = {
  Unreachable: { what: 'error.unreachable', todo: 'todo.unreachable' },
  BadRequest: { what: 'error.badRequest', todo: 'todo.badRequest' },
  Invalid: { what: 'error.invalid', todo: 'todo.fixFields' },
  Unprocessable: { what: 'error.invalid', todo: 'todo.fixFields' },
  Unauthorized: { what: 'error.unauthorized', todo: 'todo.signIn' },
  Forbidden: { what: 'error.forbidden', todo: 'todo.otherToken' },
  NotFound: { what: 'error.notFound', todo: 'todo.notFound' },
  Conflict: { what: 'error.conflict', todo: 'todo.reload' },
  Unavailable: { what: 'error.unavailable', todo: 'todo.unavailable' },
  Internal: { what: 'error.internal', todo: 'todo.controlPlaneLog' },
  PayloadTooLarge: { what: 'error.tooLarge', todo: 'todo.smaller' },
  UnsupportedMediaType: { what: 'error.consoleRequest', todo: 'todo.reloadConsole' },
  UriTooLong: { what: 'error.consoleRequest', todo: 'todo.reloadConsole' },
  MethodNotAllowed: { what: 'error.consoleRequest', todo: 'todo.reloadConsole' },
  BadResponse: { what: 'error.badResponse', todo: 'todo.proxy' },
  Error: { what: 'error.console', todo: 'todo.reloadConsole' },
};

/**
 * An API failure as what happened (with the server's own sentence when it is
 * one) and what to do; the code, status and message as sent go to `original`.
 */
export function explainFailure(f: FailureLike, ctx: ExplainContext): Explained {
  const known =
    CODES[f.status === 0 && f.code === 'Unreachable' ? 'Unreachable' : f.code] ??
    (f.status >= 500
      ? { what: 'error.server' as const, todo: 'todo.controlPlaneLog' as const }
      : { what: 'error.other' as const, todo: 'todo.reload' as const });
  const headline = ctx.t(known.what, { status: f.status });
  // The server's message is kept in view when it reads as one sentence that adds something; with
  // details it only sums them up (the CLI's code frames included), and the details are listed.
  const said =
    f.message &&
    f.details.length === 0 &&
    !f.message.includes('\n') &&
    !looksInternal(f.message) &&
    f.code !== 'Internal' &&
    f.code !== 'Unreachable'
      ? explainText(f.message, ctx).what
      : '';
  const what =
    said && said !== headline ? `${headline} ${capitalise(said)}.`.replace(/\.\.$/, '.') : headline;
  const original = `${f.code}${f.status ? ` (HTTP ${f.status})` : ''}: ${f.message}`;
  return {
    what,
    todo: ctx.t(f.details.length > 0 && known.todo === 'todo.badRequest' ? 'todo.fixFields' : known.todo),
    original,
  };
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
