// Typed errors: every error the package throws is an `Error` subclass with a
// stable `name` and `code`. The wasm engine throws plain `Error`s carrying
// `name` ("FhirAsyncError" | "DownloadError" | "CallbackError"), the core's
// `code` and `details`; `fromCore` turns them into these classes, matching
// every code the core has (issue 11 §4: a new code fails test/codes.test.mjs).

export class FhirAsyncError extends Error {
  constructor(message, { code = 'error', details, detail, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.details = details ?? detail ?? null;
  }

  /** Deprecated alias of `details` (issue 11 §3), kept for one release. */
  get detail() {
    return this.details;
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
/**
 * A file changed on the server after some of its lines were handed out (K7):
 * its continuation was another version. The file fails rather than mix two versions.
 */
export const FileChangedError = sub('FileChangedError', 'file_changed', DownloadError);
/**
 * A file's link expired and the one manifest refresh failed (K8): the job kept
 * its result; `details.cause` says why the refresh failed. Download it later.
 */
export const RefreshFailedError = sub('RefreshFailedError', 'refresh_failed', DownloadError);
/**
 * A body was longer than its ceiling (K9: a status, manifest, result or token
 * answer): reading stopped there, so memory stays bounded by the ceiling.
 */
export const ResponseTooLargeError = sub('ResponseTooLargeError', 'response_too_large');
/**
 * A body passed its size limit (an attachment's `attachmentMaxSize`, protocol
 * M6): by its declared `size`, its `Content-Length` or while streaming.
 */
export const TooLargeError = sub('TooLargeError', 'too_large', DownloadError);
/** An attachment could not be used (protocol M5): see the subclasses. Its resource goes out unchanged (M9). */
export const AttachmentError = sub('AttachmentError', 'attachment', DownloadError);
/** The attachment URL answered an OperationOutcome: `message` has the server's words. */
export const AttachmentOutcomeError = sub('AttachmentOutcomeError', 'attachment_outcome', AttachmentError);
/** The attachment's bytes do not match its `hash`. */
export const HashMismatchError = sub('HashMismatchError', 'hash_mismatch', AttachmentError);
/** A JSON `Binary` answer without usable `data`. */
export const BadBinaryError = sub('BadBinaryError', 'bad_binary', AttachmentError);
/** A callback was refused (`bad_signature`, `malformed`). */
export const CallbackError = sub('CallbackError', 'callback');
/**
 * No token could be had from the authorization server (SMART Backend
 * Services): `details` carries the server's `error` / `errorDescription` and
 * `httpStatus`. Never the token or the assertion.
 */
export const AuthError = sub('AuthError', 'auth');
/**
 * The caller stopped the work (an `AbortSignal`, or the stream was closed):
 * the internal stop. Not the server cancelling the job, which is an outcome
 * with status `cancelled` (issue 11 §4).
 */
export const AbortError = sub('AbortError', 'aborted');

/** Only from `wait({ throwOnFailure: true })`: the server reported failure. */
export class JobFailedError extends FhirAsyncError {
  constructor(outcome) {
    super(outcome.message ?? `the job ended with status ${outcome.status}`, {
      code: 'job_failed',
      details: outcome,
    });
    this.outcome = outcome;
  }
}
JobFailedError.prototype.name = 'JobFailedError';

/** Every code the core has, by the class the engine gave it, and the class for it here. */
export const CORE_CODES = {
  FhirAsyncError: {
    usage: UsageError,
    protocol: ProtocolError,
    insecure_url: InsecureUrlError,
    deadline_exceeded: DeadlineExceededError,
    retries_exhausted: RetriesExhaustedError,
    unauthorized: UnauthorizedError,
    kickoff_indeterminate: KickoffIndeterminateError,
    response_too_large: ResponseTooLargeError,
    auth: AuthError,
  },
  DownloadError: {
    blocked: DownloadError,
    http: DownloadError,
    unauthorized: DownloadError,
    count_mismatch: DownloadError,
    size_mismatch: DownloadError,
    invalid_line: InvalidLineError,
    line_too_long: DownloadError,
    decode: DownloadError,
    retries_exhausted: DownloadError,
    redirect: DownloadError,
    file_changed: FileChangedError,
    refresh_failed: RefreshFailedError,
    too_large: TooLargeError,
    usage: UsageError,
  },
  AttachmentError: {
    attachment_outcome: AttachmentOutcomeError,
    hash_mismatch: HashMismatchError,
    bad_binary: BadBinaryError,
  },
  CallbackError: {
    bad_signature: CallbackError,
    malformed: CallbackError,
  },
};

/**
 * Maps an error thrown by the wasm engine to its class; anything else is
 * returned as is. A code this table does not know is a bug of this package
 * (the tests check the table against the core): it stays a base
 * `FhirAsyncError` with the core's code rather than posing as another class.
 */
export function fromCore(e) {
  if (e instanceof FhirAsyncError || !(e instanceof Error)) return e;
  const classes = Object.hasOwn(CORE_CODES, e.name) ? CORE_CODES[e.name] : null;
  if (!classes) return e;
  const cls = Object.hasOwn(classes, e.code) ? classes[e.code] : FhirAsyncError;
  return new cls(e.message, { code: e.code, details: e.details ?? null });
}

/**
 * The typed error of an attachment report's `error` (`{code, message}`, the
 * core's words): its own codes, else a download's.
 */
export function attachmentErrorOf(info) {
  const own = CORE_CODES.AttachmentError;
  const dl = CORE_CODES.DownloadError;
  const cls = Object.hasOwn(own, info.code) ? own[info.code] : Object.hasOwn(dl, info.code) ? dl[info.code] : DownloadError;
  return new cls(info.message, { code: info.code, details: info });
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
