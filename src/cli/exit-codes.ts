/** Meaningful exit codes so scripts can tell a typo from an outage. */
export const EXIT = {
  ok: 0,
  error: 1,
  usage: 2,
  notFound: 3,
  invalid: 4,
  conflict: 5,
  unauthorized: 6,
  unreachable: 7,
  timeout: 8,
} as const;

/** One problem the API reported with its answer (e.g. a manifest error and its line in the request body). */
export interface ApiErrorDetail {
  path: string;
  message: string;
  fix?: string;
  line?: number;
}

export class CliError extends Error {
  readonly exitCode: number;
  /** The API's error answer this came from, so a command can restate it in its own terms (file names). */
  readonly api: { status: number; code?: string; summary: string; details: ApiErrorDetail[] } | undefined;
  constructor(message: string, exitCode: number = EXIT.error, api?: CliError['api']) {
    super(message);
    this.exitCode = exitCode;
    this.api = api;
  }
}

export function exitCodeForStatus(status: number): number {
  if (status === 401 || status === 403) return EXIT.unauthorized;
  if (status === 404) return EXIT.notFound;
  if (status === 409) return EXIT.conflict;
  if (status === 400 || status === 422) return EXIT.invalid;
  return EXIT.error;
}
