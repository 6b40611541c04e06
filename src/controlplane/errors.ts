/**
 * One error shape for every API failure, so the CLI and the console can show
 * the field and the fix without parsing prose.
 */
export interface ErrorDetail {
  /** Dotted path of the offending field, e.g. `spec.workloads[1].replicas`. */
  path: string;
  message: string;
  fix?: string;
  /** 1-based line in the submitted YAML, when known. */
  line?: number;
}

export interface ErrorBody {
  error: { code: string; message: string; details?: ErrorDetail[] };
}

export class ApiError extends Error {
  readonly statusCode: number;
  readonly code: string;
  readonly details: ErrorDetail[] | undefined;
  constructor(statusCode: number, code: string, message: string, details?: ErrorDetail[]) {
    super(message);
    this.statusCode = statusCode;
    this.code = code;
    this.details = details;
  }

  toBody(): ErrorBody {
    return {
      error: { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) },
    };
  }
}

export const notFound = (what: string): ApiError => new ApiError(404, 'NotFound', `${what} not found`);
export const badRequest = (message: string, details?: ErrorDetail[]): ApiError =>
  new ApiError(400, 'BadRequest', message, details);
