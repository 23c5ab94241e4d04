// HTTP errors in the OpenAI error shape: {"error": {"message", "type", "param", "code"}}. `param` names the field at
// fault (e.g. "input[2].content[0].image_url.url") so that a client can tell which of its inputs was refused.

export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'overloaded_error'
  | 'timeout_error'
  | 'server_error';

export interface ErrorBody {
  error: { message: string; type: ErrorType; param: string | null; code: string | null };
}

const TYPE_OF_STATUS: Record<number, ErrorType> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'invalid_request_error',
  415: 'invalid_request_error',
  429: 'rate_limit_error',
  503: 'overloaded_error',
};

export class HttpError extends Error {
  override name = 'HttpError';
  readonly type: ErrorType;

  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Record<string, string> = {},
    type?: ErrorType,
  ) {
    super(message);
    this.type = type ?? TYPE_OF_STATUS[status] ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
  }

  body(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400 with the field named in the message and in `param`. */
export function badField(param: string, message: string, code = 'invalid_value'): HttpError {
  return new HttpError(400, `${param}: ${message}`, param, code);
}

/** 413 for a field over a size limit. */
export function tooLarge(param: string, message: string, code = 'too_large'): HttpError {
  return new HttpError(413, `${param}: ${message}`, param, code);
}

/** A short, safe description of a JSON value's type for error messages. */
export function describeJson(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return v.length === 0 ? 'an empty string' : 'a string';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}
