import { describe, expect, it } from 'vitest';
import { isSecretEnvName, redactText, redactUrl, secretsOfEnv } from './secrets.ts';

describe('secretsOfEnv', () => {
  it('takes the values of secret-named variables and URL passwords, not the rest', () => {
    expect(
      secretsOfEnv({
        DB_PASSWORD: 'hunter22',
        apiKey: 'k-123456789',
        GITHUB_TOKEN: 'ghp_abcdef123',
        DATABASE_URL: 'postgres://app:s3cr3t-pw@db:5432/bank',
        PORT: '8080',
        GREETING: 'hello world',
        AUTH_ENABLED: 'true',
        SHORT_SECRET: 'abc',
      }).sort(),
    ).toEqual(['ghp_abcdef123', 'hunter22', 'k-123456789', 's3cr3t-pw']);
  });

  it('recognises names by word, in snake, kebab and camel case', () => {
    for (const n of [
      'PASSWORD',
      'db-pass',
      'stripeKey',
      'AWS_SECRET_ACCESS_KEY',
      'SENTRY_DSN',
      'session.cookie',
    ])
      expect(isSecretEnvName(n), n).toBe(true);
    for (const n of ['PORT', 'KEYBOARD_LAYOUT', 'PASSENGER_COUNT', 'TOKENIZER_MODE', 'HOME'])
      expect(isSecretEnvName(n), n).toBe(false);
  });
});

describe('redactText', () => {
  it('replaces known secrets in plain, JSON-escaped and percent-encoded form', () => {
    const s = 'p"w/&x=1';
    const text = `raw ${s} json ${JSON.stringify(s)} url ${encodeURIComponent(s)}`;
    const out = redactText(text, [s]);
    expect(out).toBe('raw <redacted> json "<redacted>" url <redacted>');
  });

  it('removes URL passwords, Bearer tokens, key=value credentials and JWTs of unknown origin', () => {
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl';
    const out = redactText(
      `postgres://u:p4ss@h/db Authorization: Bearer abc.def password=topsecret token: "t0k" ${jwt}`,
    );
    expect(out).toBe(
      'postgres://u:<redacted>@h/db Authorization: Bearer <redacted> password=<redacted> token: "<redacted>" <redacted>',
    );
  });

  it('leaves text without credentials as it is', () => {
    const t = 'GET /healthz -> 500 after 12 ms (http://127.0.0.1:8080/)';
    expect(redactText(t, ['1234'])).toBe(t);
    expect(redactUrl('postgres://bulwark@localhost/bulwark')).toBe('postgres://bulwark@localhost/bulwark');
    expect(redactUrl('postgres://bulwark:pw@localhost/bulwark')).toBe(
      'postgres://bulwark:<redacted>@localhost/bulwark',
    );
  });
});
