/**
 * Which values are secrets, and how to keep them out of text that is logged
 * or stored as evidence.
 *
 * The model has no "secret" marker on env variables (a workload's `env` is a
 * plain string map), so secrets are recognised by name, the way operators
 * name them: a variable whose name has a word such as PASSWORD, SECRET,
 * TOKEN, KEY (API_KEY, STRIPE_KEY), CREDENTIALS, AUTH or DSN holds one, and
 * so does the password part of any URL with credentials (postgres://u:p@h),
 * whatever the variable is called.
 *
 * @example
 *   const secrets = secretsOfEnv({ DB_PASSWORD: 'hunter22', PORT: '8080' }); // ['hunter22']
 *   redactText('login with hunter22', secrets); // 'login with <redacted>'
 */

export const REDACTED = '<redacted>';

/** Words (split on `_`, `-`, `.`) of env names whose values are secrets. */
const SECRET_WORDS = new Set([
  'SECRET',
  'SECRETS',
  'TOKEN',
  'TOKENS',
  'PASSWORD',
  'PASSWD',
  'PASS',
  'PWD',
  'PASSPHRASE',
  'KEY',
  'APIKEY',
  'CREDENTIAL',
  'CREDENTIALS',
  'CREDS',
  'AUTH',
  'DSN',
  'COOKIE',
  'PRIVATE',
  'SIGNATURE',
]);

/**
 * Shorter values are not redacted: a 1-5 character value ("on", "1234") would
 * turn every occurrence of it in unrelated text into `<redacted>`.
 */
export const MIN_SECRET_LENGTH = 6;

/** Whether an env variable of this name holds a secret by convention (DB_PASSWORD, apiKey, GITHUB_TOKEN). */
export function isSecretEnvName(name: string): boolean {
  // camelCase to words too: apiKey -> API_KEY.
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toUpperCase()
    .split(/[_.-]+/);
  return words.some((w) => SECRET_WORDS.has(w));
}

/** Credentials in URLs: `scheme://user:password@host` (the password is group 2). */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@"'<>]*:)([^\s@/"'<>]+)@/gi;

/** The password of each URL with credentials in `text`. */
function urlPasswords(text: string): string[] {
  return [...text.matchAll(URL_USERINFO)].map((m) => m[2] ?? '');
}

const worthRedacting = (v: string): boolean =>
  v.length >= MIN_SECRET_LENGTH && !/^(?:\d+|true|false|yes|no|on|off|null)$/i.test(v);

/** The secret values of an environment: values of secret-named variables and URL passwords. */
export function secretsOfEnv(env: Readonly<Record<string, string>> | undefined): string[] {
  const out = new Set<string>();
  for (const [name, value] of Object.entries(env ?? {})) {
    if (isSecretEnvName(name) && worthRedacting(value)) out.add(value);
    for (const p of urlPasswords(value)) if (worthRedacting(p)) out.add(p);
  }
  return [...out];
}

/**
 * `text` with every known secret replaced (also in its JSON-escaped and
 * percent-encoded forms), and what looks like a credential whatever its
 * origin: URL passwords, `Bearer` tokens, `password=`/`token:` values, JWTs.
 */
export function redactText(text: string, secrets: Iterable<string> = []): string {
  let out = text;
  // Longest first: a secret that contains another is replaced whole.
  const known = [...new Set(secrets)].filter((s) => s.length >= MIN_SECRET_LENGTH);
  known.sort((a, b) => b.length - a.length);
  for (const s of known) {
    for (const form of new Set([s, JSON.stringify(s).slice(1, -1), encodeURIComponent(s)])) {
      if (out.includes(form)) out = out.split(form).join(REDACTED);
    }
  }
  return out
    .replace(URL_USERINFO, `$1${REDACTED}@`)
    .replace(/\b(bearer\s+)[^\s"',]+/gi, `$1${REDACTED}`)
    .replace(
      /\b((?:token|password|passwd|secret|api[_-]?key|client-key-data)["']?\s*[:=]\s*["']?)(?!<redacted>)[^\s"',}&]+/gi,
      `$1${REDACTED}`,
    )
    .replace(/eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g, REDACTED);
}

/** A URL fit to print: its password replaced (`postgres://app:<redacted>@db/bank`). */
export function redactUrl(url: string): string {
  return url.replace(URL_USERINFO, `$1${REDACTED}@`);
}
