// Typed errors: every error the package throws is an `Error` subclass with a
// stable `name` and `code`. The wasm engine throws plain `Error`s carrying
// `name` ("FhirAsyncError" | "DownloadError" | "CallbackError") and `code`;
// `fromCore` turns them into these classes.

export class FhirAsyncError extends Error {
  constructor(message, { code = 'error', detail = null, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.detail = detail;
  }
}
FhirAsyncError.prototype.name = 'FhirAsyncError';

function sub(name, defaultCode, base = FhirAsyncError) {
  const cls = class extends base {
    constructor(message, options = {}) {
      super(message, { code: defaultCode, ...options });
    }
  };
  Object.defineProperty(cls, 'name', { value: name });
  cls.prototype.name = name;
  return cls;
}

/** The API was used wrongly (bad configuration, wrong shape). */
export const UsageError = sub('UsageError', 'usage');
/** The server broke the protocol. */
export const ProtocolError = sub('ProtocolError', 'protocol');
/** A URL would leak the token or downgrade to http (a kind of protocol error). */
export const InsecureUrlError = sub('InsecureUrlError', 'insecure_url', ProtocolError);
/** The job's deadline (`timeoutMs`) passed. */
export const DeadlineExceededError = sub('DeadlineExceededError', 'deadline_exceeded');
/** Transient failures outlasted the retry budget. */
export const RetriesExhaustedError = sub('RetriesExhaustedError', 'retries_exhausted');
/** The server refused the token (after a refresh, or when none was possible: see `message`). */
export const UnauthorizedError = sub('UnauthorizedError', 'unauthorized');
/** The kick-off may have reached the server and is never replayed. */
export const KickoffIndeterminateError = sub('KickoffIndeterminateError', 'kickoff_indeterminate');
/** A file download failed for good; `code` is the engine's (`http`, `count_mismatch`, ...). */
export const DownloadError = sub('DownloadError', 'download');
/**
 * A line of an NDJSON file is not a FHIR resource (`detail`: `{url, line, message}`).
 * Thrown only with `onInvalidLine: 'raise'`; by default the line is skipped and
 * listed in its file's report (issue 10 §3).
 */
export const InvalidLineError = sub('InvalidLineError', 'invalid_line', DownloadError);
/** A callback was refused (`bad_signature`, `malformed`). */
export const CallbackError = sub('CallbackError', 'callback');
/** An `AbortSignal` fired. */
export const AbortError = sub('AbortError', 'aborted');

/** Only from `wait({ throwOnFailure: true })`: the server reported failure. */
export class JobFailedError extends FhirAsyncError {
  constructor(outcome) {
    super(outcome.message ?? `the job ended with status ${outcome.status}`, {
      code: 'job_failed',
      detail: outcome,
    });
    this.outcome = outcome;
  }
}
JobFailedError.prototype.name = 'JobFailedError';

const JOB_ERRORS = {
  usage: UsageError,
  protocol: ProtocolError,
  insecure_url: InsecureUrlError,
  deadline_exceeded: DeadlineExceededError,
  retries_exhausted: RetriesExhaustedError,
  unauthorized: UnauthorizedError,
  kickoff_indeterminate: KickoffIndeterminateError,
};

/** Maps an error thrown by the wasm engine to its class; anything else is returned as is. */
export function fromCore(e) {
  if (e instanceof FhirAsyncError || !(e instanceof Error)) return e;
  const opts = { code: e.code, detail: e.detail ?? null };
  switch (e.name) {
    case 'FhirAsyncError':
      return new (JOB_ERRORS[e.code] ?? FhirAsyncError)(e.message, opts);
    case 'DownloadError':
      return new (e.code === 'invalid_line' ? InvalidLineError : DownloadError)(e.message, opts);
    case 'CallbackError':
      return new CallbackError(e.message, opts);
    default:
      return e;
  }
}

/** Runs `fn`, rethrowing engine errors as typed ones. */
export function core(fn) {
  try {
    return fn();
  } catch (e) {
    throw fromCore(e);
  }
}

/** The AbortError for a signal (keeps the signal's reason as `cause`). */
export function abortError(signal) {
  return new AbortError('the operation was aborted', { cause: signal?.reason });
}

/** Races a promise against an AbortSignal (rejecting with AbortError). */
export function raceSignal(promise, signal) {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
