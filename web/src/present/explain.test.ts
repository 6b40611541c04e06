import { describe, expect, it } from 'vitest';
import { formatDateTime } from '../i18n/format.ts';
import { translate } from '../i18n/translate.ts';
import { explainFailure, explainText, looksInternal } from './explain.ts';

const ctx = {
  t: (k: Parameters<typeof translate>[1], v?: Record<string, string | number>) => translate('en', k, v),
  fmtTime: (iso: string) => formatDateTime('en', iso, 'UTC'),
};

/** What no sentence the console shows may contain: the machinery's own words. */
const RAW =
  /start-failed:|ECONNREFUSED|ENOENT|TypeError|fetch failed|HTTP\d{3}\b|\d{4}-\d\d-\d\dT\d\d:|^\s*[{[]/;

describe('explainText (instance messages, exit reasons, condition messages)', () => {
  it('a command that does not exist: what happened, what to do, the original kept', () => {
    // As the local driver writes it (executable.ts + local-driver.ts) and the backoff suffix.
    const raw =
      "start-failed: executable 'no-such-server' not found in PATH (fix the workload's run.command); restarting in 1600 ms";
    const e = explainText(raw, ctx);
    expect(e.what).toBe(
      "Could not start: the command 'no-such-server' does not exist on this host. Restarting in 1.6 s.",
    );
    expect(e.todo).toMatch(/run\.command/);
    expect(e.original).toBe(raw);
  });

  it('a Degraded condition entry: the doubled reason prefix and the ISO restart time are not shown', () => {
    // app-status.ts: `${id} ${phase} (${reason}: ${message}), next restart at ${iso}`.
    const raw =
      "bank.web.api-0-ab12cd backoff (start-failed: start-failed: executable 'nope' not found in PATH (fix the workload's run.command)), next restart at 2026-12-08T00:25:23.123Z";
    const e = explainText(raw, ctx);
    expect(e.what).toContain('bank.web.api-0-ab12cd keeps failing');
    expect(e.what).toContain("the command 'nope' does not exist");
    expect(e.what).toContain('Next restart at Dec 8, 12:25:23 AM UTC.');
    expect(e.what).not.toMatch(RAW);
    expect(e.todo).toMatch(/run\.command/);
    expect(e.original).toBe(raw);
  });

  it('exits, OOM kills and liveness restarts say what happened in words', () => {
    expect(explainText('exited with code 3', ctx).what).toBe('The process exited with code 3.');
    expect(explainText('killed by SIGKILL', ctx).what).toBe('The process was killed by SIGKILL.');
    expect(explainText('OOM-killed: exceeded its memory limit of 134217728 bytes', ctx).what).toBe(
      'The process was killed for using more memory than its limit (128 MiB).',
    );
    const live = explainText('killed after the liveness probe failed: GET /healthz -> 500', ctx);
    expect(live.what).toBe('Restarted because its liveness probe failed (GET /healthz -> 500).');
    expect(live.todo).toMatch(/liveness probe/);
  });

  it('an errno inside a reason becomes words', () => {
    const e = explainText('start-failed: spawn /srv/app EACCES', ctx);
    expect(e.what).toBe('Could not start: permission denied.');
    expect(e.original).toBe('start-failed: spawn /srv/app EACCES');
  });

  it('a quarantine reason names the incident', () => {
    const e = explainText('inc-20261201-235650-72eec3: hang', ctx);
    expect(e.what).toBe('Kept out of traffic for diagnosis: incident inc-20261201-235650-72eec3 (hang).');
  });

  it('prose no rule knows stays as it is, with no technical details', () => {
    const text = 'out of traffic (server in maint): api.payments.bank/bank.payments.api-0-fb3491';
    expect(explainText(text, ctx)).toEqual({ what: text });
  });

  it('an unknown internal text is replaced, and kept under the details', () => {
    const raw = 'restart failed: TypeError: Cannot read properties of undefined (reading "pid")';
    const e = explainText(raw, ctx);
    expect(e.what).toBe('The restart failed: an internal error (see the technical details).');
    expect(e.original).toBe(raw);
    const dump = explainText('{"code":"EIO","errno":-5}', ctx);
    expect(dump.what).toBe('Something failed inside the platform.');
    expect(dump.original).toBe('{"code":"EIO","errno":-5}');
  });
});

describe('explainFailure (API errors)', () => {
  it('the control plane not answering is said in words, never as "fetch failed" or a code', () => {
    const e = explainFailure(
      { status: 0, code: 'Unreachable', message: 'TypeError: fetch failed', details: [] },
      ctx,
    );
    expect(e.what).toBe('The control plane did not answer.');
    expect(e.todo).toMatch(/running/);
    expect(e.original).toBe('Unreachable: TypeError: fetch failed');
  });

  it('a human message from the server is kept after the headline; its code goes to the details', () => {
    const e = explainFailure(
      { status: 404, code: 'NotFound', message: 'app bank/nope not found', details: [] },
      ctx,
    );
    expect(e.what).toBe('It does not exist (any more). App bank/nope not found.');
    expect(e.what).not.toContain('NotFound');
    expect(e.original).toBe('NotFound (HTTP 404): app bank/nope not found');
  });

  it('an internal error shows no server text in view', () => {
    const e = explainFailure(
      { status: 500, code: 'Internal', message: 'internal error; see the control plane log', details: [] },
      ctx,
    );
    expect(e.what).toBe('The control plane hit an internal error.');
    expect(e.todo).toMatch(/log/);
  });

  it('a validation failure with fields says to fix them', () => {
    const e = explainFailure(
      {
        status: 422,
        code: 'Invalid',
        message: '1 error(s)',
        details: [{ path: 'spec.workloads[0].replicas', message: 'must be >= 0' }],
      },
      ctx,
    );
    // The fields are listed one by one: the message summing them up is not repeated in the headline.
    expect(e.what).toBe('The request has errors.');
    expect(e.original).toBe('Invalid (HTTP 422): 1 error(s)');
    expect(e.todo).toBe('Fix each field listed below, then try again.');
  });

  it('unknown codes and 5xx without a body fall back to the status in words', () => {
    expect(
      explainFailure({ status: 502, code: 'HTTP502', message: 'Bad Gateway', details: [] }, ctx).what,
    ).toBe('The control plane failed (HTTP 502). Bad Gateway.');
    expect(explainFailure({ status: 418, code: 'Teapot', message: '', details: [] }, ctx).what).toBe(
      'The request failed (HTTP 418).',
    );
  });
});

describe('looksInternal', () => {
  it.each([
    'TypeError: Failed to fetch',
    'connect ECONNREFUSED 127.0.0.1:7070',
    'Error: boom\n    at Object.<anonymous> (file:///srv/x.js:1:1)',
    '{"error":{"code":"Internal"}}',
    'FST_ERR_CTP_INVALID_MEDIA_TYPE',
    'value is undefined',
  ])('flags %j', (s) => expect(looksInternal(s)).toBe(true));
  it.each(['app bank/nope not found', 'missing bearer token', '1 other ready instance(s) keep serving'])(
    'lets %j through',
    (s) => expect(looksInternal(s)).toBe(false),
  );
});
