// Types of the `fhir-async` package: the real shapes the engine produces
// (camelCase JSON of the Rust core), written by hand.

// ---------- configuration ----------

export type ExportLevel = 'system' | 'patient' | 'group';
export type AsyncMode = 'bundle' | 'redirect';
export type HttpMethod = 'GET' | 'POST' | 'DELETE';

/** Timing and retry limits (all optional; the engine has defaults). */
export interface RetryPolicy {
  minWaitMs?: number;
  maxWaitMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  backoffFactorPercent?: number;
  jitterPercent?: number;
  seed?: number;
  maxRetries?: number;
  maxKickoffRetries?: number;
  maxDownloadRetries?: number;
  requestTimeoutMs?: number;
  /**
   * The ceiling of a status, manifest, result or token answer's body, bytes
   * (protocol K9; default 256 MiB): past it the job ends with `ResponseTooLargeError`.
   */
  maxResponseBytes?: number;
}

export interface PreferOptions {
  asyncMode?: AsyncMode | null;
  callbackUrl?: string | null;
  lenient?: boolean;
  separateExportStatus?: boolean;
}

export interface ExportRequest {
  level?: ExportLevel;
  groupId?: string;
  types?: string[];
  since?: string;
  until?: string;
  typeFilters?: string[];
  elements?: string[];
  patients?: string[];
  includeAssociatedData?: string[];
  organizeOutputBy?: string;
  post?: boolean;
  outputFormat?: string;
  allowPartialManifests?: boolean;
  igVersion?: 'stu2' | 'stu3' | 'stu4';
}

/** Options of `client.export()`: the `$export` parameters plus per-job settings. */
export interface ExportOptions extends ExportRequest {
  callbackUrl?: string;
  lenient?: boolean;
  separateExportStatus?: boolean;
  /** Overall deadline in ms from the kick-off. */
  timeoutMs?: number;
  /**
   * Aborts waiting for the kick-off to be accepted (also the wait after a 429):
   * the kick-off is not sent again and the promise rejects with `AbortError`.
   */
  signal?: AbortSignal;
  /**
   * Subscribed before the kick-off is sent, so the wait after a 429 is visible
   * (phase `kickingOff`, `nextPollAtMs` = the next attempt). Same as `job.onProgress`.
   */
  onProgress?: (progress: Progress) => void;
}

/** Options of `client.kickoff()`: any operation or interaction, run asynchronously. */
export interface KickoffOptions {
  method?: HttpMethod;
  /** Relative to the base URL: `$reindex`, `Patient?_count=10`, `Group/1/$export`. */
  path: string;
  /** A string is sent as is; an object is serialized as JSON. */
  body?: string | object | null;
  asyncMode?: AsyncMode;
  callbackUrl?: string;
  lenient?: boolean;
  timeoutMs?: number;
  /** As in `ExportOptions`. */
  signal?: AbortSignal;
  /** As in `ExportOptions`. */
  onProgress?: (progress: Progress) => void;
}

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /** The FHIR base URL; its origin receives the token. */
  baseUrl: string;
  /** A bearer token, or a function giving one (called again when the server answers 401). */
  token?: string | (() => string | Promise<string>);
  /** SMART Backend Services: `backendServices({ clientId, key, scope })` (not with `token`; not in browser page code). */
  auth?: BackendServicesAuth;
  /** Defaults to `globalThis.fetch`. */
  fetch?: FetchLike;
  retry?: RetryPolicy;
  /** Default deadline of every job, ms. */
  timeoutMs?: number;
  /** Other origins allowed to receive the token for file downloads. */
  allowedOrigins?: string[];
  /** Default `Prefer` options of every job. */
  prefer?: PreferOptions;
}

// ---------- engine shapes ----------

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
/** A FHIR resource (JSON object with a `resourceType`). */
export interface FhirResource {
  resourceType: string;
  id?: string;
  [key: string]: Json | undefined;
}

export interface ManifestFile {
  type?: string;
  url: string;
  count?: number;
  fileSize?: number;
  continuesInFile?: string;
}

export interface Manifest {
  transactionTime?: string;
  request?: string;
  requiresAccessToken: boolean;
  output: ManifestFile[];
  error: ManifestFile[];
  outcome?: ManifestFile[];
  deleted?: ManifestFile[];
  link?: { relation: string; url: string }[];
  extension?: Json;
  outputOrganizedBy?: string;
  message?: string;
}

export type OutcomeStatus = 'completed' | 'completedWithErrors' | 'failed' | 'cancelled';
export type Delivery = 'sync' | 'inline' | 'redirect' | 'none';

export type ResultBody =
  | { kind: 'manifest'; manifest: Manifest }
  | { kind: 'bundle'; bundle: FhirResource; entryStatus: number | null }
  | { kind: 'asyncJob'; job: FhirResource; jobStatus: string; manifest: Manifest | null }
  | { kind: 'operationOutcome'; outcome: FhirResource }
  | { kind: 'resource'; resource: FhirResource }
  | { kind: 'text'; text: string; contentType: string | null }
  | { kind: 'empty' };

/** How a job ended. A server-reported failure is an outcome (`status: 'failed'`), not an error. */
export interface Outcome {
  status: OutcomeStatus;
  delivery: Delivery;
  httpStatus: number | null;
  result: ResultBody;
  message: string | null;
  expires: string | null;
  expiresAtMs: number | null;
  resultUrl: string | null;
  /** The Bulk manifest of the result, or `null` (a non-enumerable getter: `client.resources(outcome.manifest)` works). */
  readonly manifest?: Manifest | null;
  /** Every warning of the job (a clamped Retry-After, unrequested types in the manifest, ...); absent when none. */
  warnings?: string[];
}

export type Phase = 'pending' | 'kickingOff' | 'polling' | 'fetchingResult' | 'cancelling' | 'done' | 'failed';

export interface Progress {
  phase: Phase;
  /** The server's `X-Progress` text, display only. */
  message: string | null;
  /** A percentage read from that text, 0–100. */
  percent: number | null;
  polls: number;
  nextPollAtMs: number | null;
  nextPollInMs: number | null;
  statusUrl: string | null;
  partialFiles: number;
  /** The latest warning of the job, for display. */
  warning?: string;
}

export type CancelResult =
  | { kind: 'cancelled'; httpStatus: number | null }
  | { kind: 'alreadyTerminal'; jobStatus: string | null; httpStatus: number }
  | { kind: 'notFound'; httpStatus: number }
  | { kind: 'rejected'; httpStatus: number; outcome: FhirResource | null };

export interface CleanupResult {
  httpStatus: number | null;
  ok: boolean;
}

export type FileKind = 'output' | 'error' | 'deleted';

export interface PlannedFile {
  kind: FileKind;
  index: number;
  resourceType: string | null;
  url: string;
  sendToken: boolean;
  expectedCount: number | null;
  fileName: string;
  blocked: string | null;
}

export interface FileReport {
  /** Without its query (K10: a signed URL's query is a credential). */
  url: string;
  kind: FileKind;
  resourceType: string | null;
  fileName: string;
  /** Lines that parse as JSON objects (what the count check counts); the others are in `invalidLines`. */
  resources: number;
  expected: number | null;
  bytes: number;
  invalidLines: number;
  firstInvalidLine: number | null;
  /** The first 100 lines that are not resources (1-based resource line numbers), each skipped. */
  invalid?: InvalidLine[];
  /** With `countCheck: 'lenient'`: the file's count differs from the manifest's (see `warnings`). */
  countMismatch?: { expected: number; actual: number };
  warnings?: string[];
  attempts: number;
  /**
   * Set when this file failed (count check in strict mode, HTTP error, retries,
   * blocked by the token rule, line too long, token refused): the other files
   * are unaffected. `resources` then says how many were delivered before.
   */
  error?: DownloadError;
}

export interface InvalidLine {
  line: number;
  message: string;
}

export interface CallbackPayload {
  status: 'completed' | 'failed' | 'cancelled';
  resultUrl: string | null;
  outcome: FhirResource | null;
}

export type CallbackEffect = { kind: 'woken' } | { kind: 'ignored'; reason: string };

export interface TokenPolicy {
  baseUrl: string;
  allowedOrigins: string[];
}

/** The saved state of a job (`job.toJSON()`); opaque, but JSON. */
export type SavedJob = { [key: string]: Json };

// ---------- the client ----------

export interface WaitOptions {
  signal?: AbortSignal;
  /** Throw `JobFailedError` for a failed or cancelled job instead of resolving with its outcome. */
  throwOnFailure?: boolean;
}

export interface ResourceOptions {
  /** Only files of this resource type. */
  type?: string;
  types?: string[];
  /** Which manifest lists, default `['output']`. */
  kinds?: FileKind[];
  signal?: AbortSignal;
  /**
   * What a line must be to count as a resource: `'json'` (default, every
   * format) a JSON object; `'structural'` a text line that looks like one
   * (`{`...`}`); `'none'` anything that parses (json/batches) or anything
   * (text). A line that is not UTF-8 is never a resource.
   */
  validation?: 'none' | 'structural' | 'json';
  /** Files downloaded at once per origin (default 4); the core halves it on 429/503 and grows it back. */
  maxPerOrigin?: number;
  /** @deprecated alias of `maxPerOrigin` (issue 11 §3). */
  concurrency?: number;
  /** Plan file names already complete: left out. */
  skipFiles?: string[];
  /**
   * Ask for gzip bodies (default true). Node's fetch decodes them itself, so a
   * broken gzip body starts over (its lines are not repeated); `false` asks for
   * identity bodies, which continue with a byte range (protocol K1).
   */
  gzip?: boolean;
  /**
   * Protocol K5: the job's saved state (`job.toJson()`) records each file's
   * progress as its resources are taken: a file once its last resource was
   * handed out (before `onFile`), a part-way identity file (`gzip: false`, a
   * server with ranges) at each part once the consumer asks for the next one,
   * so save between `format: 'batches'` batches or in `onFile`. The stream of a
   * job resumed from such a state leaves out the files recorded as done and
   * continues part-way ones after the resources already handed out; a file the
   * state does not record starts over (drop what you kept of it). Default false.
   */
  saveProgress?: boolean;
  /** When the links expire (default: the outcome's `expiresAtMs`); they are re-fetched before files start near it. */
  expiresAtMs?: number;
  /** The core's totals, after each file's result and each change of an origin's limit. */
  onProgress?: (progress: DownloadProgress & { limitChanges: LimitChange[] }) => void;
  /** Yield each resource type's files in manifest order (files of different types still interleave). Default false. */
  ordered?: boolean;
  /**
   * `'strict'` (default): an output file whose count of resources differs from
   * the manifest's fails (a report with `error`); `'lenient'`: kept, with
   * `countMismatch`. An error file (OperationOutcomes) is always kept, with a warning.
   */
  countCheck?: 'strict' | 'lenient';
  /**
   * A line that is not a resource: `'report'` (default) skips it and lists it in
   * its file's report; `'raise'` throws `InvalidLineError` from the iteration
   * (after the valid lines before it); a function gets each one's error and the stream goes on.
   */
  onInvalidLine?: 'report' | 'raise' | ((error: InvalidLineError) => void);
  /** Longest line accepted, bytes (default 64 MiB); a longer one fails its file without being buffered. */
  maxLine?: number;
  /** Called once per file, after its last resource was handed out (also for a failed file: see `error`). */
  onFile?: (report: FileReport) => void;
}

export interface StreamStats {
  bytes: number;
  resources: number;
  /** One report per finished file, success or failure. */
  files: FileReport[];
  /** Files that failed (their reports have `error`). */
  failed: number;
  /** Lines skipped because they are not resources. */
  invalidLines: number;
  /** Each origin's limit on requests in flight now (protocol K3). */
  originLimits: { origin: string; limit: number }[];
  /** Every change of those limits so far. */
  limitChanges: LimitChange[];
}

/**
 * Resources streamed from up to `concurrency` files at once; `stats` grows as
 * they arrive. A failed file never ends the iteration (see `FileReport.error`).
 */
export interface ResourceStream<T> extends AsyncIterableIterator<T> {
  readonly stats: StreamStats;
}

export interface JobStats {
  requests: number;
  polls: number;
  /** The worst delay between a poll's due time and its sending. */
  maxPollLatenessMs: number;
  /** Sum over all polls (divide by `polls` for the mean). */
  totalPollLatenessMs: number;
}

export declare class AsyncJob {
  private constructor();
  /** The status URL, once the kick-off was accepted. */
  readonly statusUrl: string | null;
  readonly stats: JobStats;
  /** The low-level engine job. */
  readonly engine: Job;
  onProgress(listener: (progress: Progress) => void): () => void;
  progress(): Progress;
  warnings(): string[];
  wait(options?: WaitOptions): Promise<Outcome>;
  cancel(options?: { signal?: AbortSignal }): Promise<CancelResult | null>;
  cleanup(options?: { signal?: AbortSignal }): Promise<CleanupResult | null>;
  /** Polls now: after a restart, or when a callback arrived (overrides Retry-After once). */
  pollNow(): void;
  /** @deprecated alias of `pollNow()` (issue 11 §3). */
  wake(): void;
  /** Verifies a callback POST for this job and wakes it. */
  handleCallback(
    body: string | Uint8Array | ArrayBuffer,
    signature: string | CallbackHeaders | null | undefined,
    secret: string | Uint8Array,
  ): CallbackEffect;
  /** The saved state as a string (no token); `client.resume(saved)`. */
  toJson(): string;
  /** The saved state as an object (what `JSON.stringify(job)` writes). */
  toJSON(): SavedJob;
  downloadPlan(): PlannedFile[];
  resources(options: ResourceOptions & { format: 'text' }): ResourceStream<string>;
  resources(options: ResourceOptions & { format: 'batches' }): ResourceStream<FhirResource[]>;
  resources(options?: ResourceOptions & { format?: 'json' }): ResourceStream<FhirResource>;
}

export declare class FhirAsyncClient {
  constructor(options: ClientOptions);
  readonly baseUrl: string;
  export(request?: ExportOptions): Promise<AsyncJob>;
  kickoff(request: KickoffOptions): Promise<AsyncJob>;
  resume(saved: SavedJob | string): AsyncJob;
  resources(result: Outcome | Manifest, options: ResourceOptions & { format: 'text' }): ResourceStream<string>;
  resources(result: Outcome | Manifest, options: ResourceOptions & { format: 'batches' }): ResourceStream<FhirResource[]>;
  resources(result: Outcome | Manifest, options?: ResourceOptions & { format?: 'json' }): ResourceStream<FhirResource>;
  /** Verifies a callback POST and wakes the live jobs it concerns. */
  handleCallback(
    body: string | Uint8Array | ArrayBuffer,
    signature: string | CallbackHeaders | null | undefined,
    secret: string | Uint8Array,
  ): { payload: CallbackPayload; woken: number };
}

export type CallbackHeaders =
  | Headers
  | { get(name: string): string | null }
  | Record<string, string | string[] | undefined>;

/** Verifies `X-Signature: sha256=<hex>` over the exact body; returns the payload or throws `CallbackError`. */
export declare function verifyCallback(
  body: string | Uint8Array | ArrayBuffer,
  signature: string | CallbackHeaders | null | undefined,
  secret: string | Uint8Array,
): CallbackPayload;
/** What `backendServices()` returns, for `ClientOptions.auth`. */
export interface BackendServicesAuth {
  readonly kind: 'backendServices';
}
/** SMART Backend Services, signed with WebCrypto (RS384 / ES384). Node and servers only: not in browser page code. */
export declare function backendServices(options: {
  clientId: string;
  /** A private JWK object (e.g. an entry of a private JWKS) or a CryptoKey that can sign. */
  key: JsonWebKey | CryptoKey;
  clientSecret?: undefined;
  /** Passed through: v1 `system/*.read` or v2 `system/*.rs`. */
  scope: string;
  /** Found by discovery (`.well-known/smart-configuration`) when absent. */
  tokenUrl?: string;
  /** The key id; default the JWK's `kid`. */
  kid?: string;
}): BackendServicesAuth;
/** SMART Backend Services for a symmetric client: `client_secret_basic` (the secret never in a repr, error or saved state). */
export declare function backendServices(options: {
  clientId: string;
  /** The client secret, sent as `Authorization: Basic` on the token request only. */
  clientSecret: string;
  key?: undefined;
  /** Passed through: v1 `system/*.read` or v2 `system/*.rs`. */
  scope: string;
  /** Found by discovery (`.well-known/smart-configuration`) when absent. */
  tokenUrl?: string;
}): BackendServicesAuth;
export declare function parseCallback(body: string | Uint8Array | ArrayBuffer): CallbackPayload;

// ---------- errors ----------

export type JobErrorCode =
  | 'usage'
  | 'protocol'
  | 'insecure_url'
  | 'deadline_exceeded'
  | 'retries_exhausted'
  | 'unauthorized'
  | 'kickoff_indeterminate'
  | 'response_too_large';
export type DownloadErrorCode =
  | 'blocked'
  | 'http'
  | 'count_mismatch'
  | 'invalid_line'
  | 'unauthorized'
  | 'line_too_long'
  | 'decode'
  | 'retries_exhausted'
  | 'redirect'
  | 'file_changed'
  | 'refresh_failed'
  | 'usage';

export declare class FhirAsyncError extends Error {
  constructor(message: string, options?: { code?: string; details?: Json; detail?: Json; cause?: unknown });
  readonly code: string;
  /** The engine's error object (its serde form), when there is one. */
  readonly details: Json;
  /** @deprecated alias of `details` (issue 11 §3). */
  readonly detail: Json;
}
export declare class UsageError extends FhirAsyncError {
  readonly code: 'usage';
}
export declare class ProtocolError extends FhirAsyncError {
  readonly code: 'protocol' | 'insecure_url';
}
export declare class InsecureUrlError extends ProtocolError {
  readonly code: 'insecure_url';
}
export declare class DeadlineExceededError extends FhirAsyncError {
  readonly code: 'deadline_exceeded';
}
export declare class RetriesExhaustedError extends FhirAsyncError {
  readonly code: 'retries_exhausted';
}
export declare class UnauthorizedError extends FhirAsyncError {
  readonly code: 'unauthorized';
}
export declare class KickoffIndeterminateError extends FhirAsyncError {
  readonly code: 'kickoff_indeterminate';
}
export declare class DownloadError extends FhirAsyncError {
  readonly code: DownloadErrorCode;
}
/** A line that is not a resource, with `onInvalidLine: 'raise'` (or given to an `onInvalidLine` function). */
export declare class InvalidLineError extends DownloadError {
  readonly code: 'invalid_line';
  readonly detail: { code: 'invalid_line'; url: string; line: number; message: string };
}
/** A file changed on the server after some of its lines were handed out (K7): the file fails, never mixing versions. */
export declare class FileChangedError extends DownloadError {
  readonly code: 'file_changed';
}
/** A file's link expired and the manifest refresh failed (K8): the job kept its result; `details.cause` says why. */
export declare class RefreshFailedError extends DownloadError {
  readonly code: 'refresh_failed';
}
/** A status, manifest, result or token answer longer than its ceiling (K9); reading stopped there. */
export declare class ResponseTooLargeError extends FhirAsyncError {
  readonly code: 'response_too_large';
}
export declare class CallbackError extends FhirAsyncError {
  readonly code: 'bad_signature' | 'malformed';
}
/** No token from the authorization server: `details` = `{ message, error, errorDescription, httpStatus }`. */
export declare class AuthError extends FhirAsyncError {
  readonly code: 'auth';
}
/** The internal stop (an AbortSignal, a closed stream); not a server's cancel (an outcome). */
export declare class AbortError extends FhirAsyncError {
  readonly code: 'aborted';
}
export declare class JobFailedError extends FhirAsyncError {
  readonly code: 'job_failed';
  readonly outcome: Outcome;
}
/** Maps an error thrown by the low-level engine to its class. */
export declare function fromCore(error: unknown): unknown;

// ---------- the low-level engine (no I/O) ----------

export interface EngineRequest {
  id: number;
  kind: 'kickoff' | 'status' | 'result' | 'manifestPage' | 'cancel' | 'cleanup' | 'file';
  method: HttpMethod;
  url: string;
  headers: [string, string][];
  body: string | null;
  /** Attach `Authorization: Bearer` iff true. */
  auth: boolean;
  timeoutMs: number;
  /** The most body bytes to read (K9); absent for a file (streamed). */
  maxBody?: number;
}

export type Action =
  | { type: 'send'; request: EngineRequest }
  | { type: 'wait'; untilMs: number; delayMs: number }
  | { type: 'refreshToken' }
  | { type: 'done'; outcome: Outcome };

export type DownloadAction =
  | { type: 'send'; request: EngineRequest }
  | { type: 'wait'; untilMs: number; delayMs: number }
  | { type: 'refreshToken' }
  | { type: 'refreshManifest' }
  | { type: 'done'; report: FileReport };

export interface JobConfig {
  baseUrl: string;
  operation: ({ type: 'export' } & ExportRequest) | { type: 'operation'; method: HttpMethod; path: string; body?: string | null };
  prefer?: PreferOptions;
  retry?: RetryPolicy;
  timeoutMs?: number | null;
  allowedOrigins?: string[];
}

/** The engine's job. Errors it throws are `Error`s with `name` "FhirAsyncError" and a `code`. */
export declare class Job {
  constructor(config: JobConfig);
  static fromJson(json: string): Job;
  toJson(): string;
  nextAction(nowMs: number): Action;
  /** `headers` is flat: `[name, value, name, value, ...]`. */
  handleResponse(id: number, status: number, headers: string[], body: Uint8Array, url: string | null | undefined, nowMs: number): void;
  handleTransportError(id: number, kind: 'connect' | 'afterSend', message: string, nowMs: number): void;
  /** After `refreshToken` when no new token can be had: the job ends `unauthorized` naming `reason`. */
  tokenUnavailable(reason: string): void;
  /** The answer to `id` was longer than its `maxBody` (K9): the binding stopped reading. */
  responseTooLarge(id: number, nowMs: number): void;
  cancel(nowMs: number): void;
  cleanup(): void;
  refreshManifest(nowMs: number): void;
  handleCallback(payload: CallbackPayload, nowMs: number): CallbackEffect;
  /** Brings the next poll forward to `nowMs` (overrides Retry-After once); whether anything changed. */
  pollNow(nowMs: number): boolean;
  progress(nowMs: number): Progress;
  downloadPlan(): PlannedFile[];
  cancelResult(): CancelResult | null;
  cleanupResult(): CleanupResult | null;
  outcome(): Outcome | null;
  error(): Error | null;
  warnings(): string[];
  preferenceApplied(): string[];
  config(): JobConfig;
  tokenPolicy(): TokenPolicy;
  readonly statusUrl: string | undefined;
  readonly isFinished: boolean;
  free(): void;
}

/** A step of the core's download coordinator. */
export type DownloadStep =
  | { type: 'send'; file: number; request: EngineRequest }
  | { type: 'refreshToken' }
  | { type: 'refreshManifest' }
  | { type: 'wait'; untilMs: number; delayMs: number }
  | { type: 'idle' }
  | { type: 'done' };

/** A change of an origin's limit on requests in flight (protocol K3). */
export interface LimitChange {
  origin: string;
  from: number;
  to: number;
  /** `throttled` (a 429 or 503) or `recovered` (a run of successes). */
  reason: 'throttled' | 'recovered' | string;
}

/** Totals of the core's download coordinator. */
export interface DownloadProgress {
  files: number;
  filesDone: number;
  filesFailed: number;
  filesActive: number;
  resources: number;
  bytes: number;
  expectedResources: number | null;
  originLimits: { origin: string; limit: number }[];
}

/**
 * The core's coordinator of a finished job's downloads (no I/O): which file
 * next, how many at once per origin, the shared token and manifest refresh,
 * each file's result. Errors have `name` "DownloadError" and the core's `code`.
 */
export declare class Downloads {
  constructor(
    job: Job,
    kinds: FileKind[],
    types: string[],
    maxPerOrigin: number,
    countCheck: 'strict' | 'lenient',
    maxLine: number,
    skipFiles: string[],
    expiresAtMs: number,
    gzip: boolean,
    savedProgress: boolean,
  );
  /** The core's record of a file now (K5), as a handle for `commit`; 0 when there is none. */
  snapshot(file: number): number;
  /** Records a snapshot in the job's saved state. */
  commit(job: Job, handle: number): void;
  readonly length: number;
  file(i: number): PlannedFile | null;
  next(nowMs: number): DownloadStep;
  handleHead(file: number, id: number, status: number, headers: string[], alreadyDecoded: boolean, nowMs: number): 'stream' | 'discard';
  /** The new resource lines joined with `\n`; then check `discarded`. */
  feed(file: number, id: number, chunk: Uint8Array, nowMs: number): string;
  /** Whether the last `feed` ended the request: stop reading the body. */
  readonly discarded: boolean;
  finish(file: number, id: number, nowMs: number): string;
  handleTransportError(file: number, id: number, message: string, nowMs: number): void;
  /** The start (at most 64 KiB) of the error response that failed the file. */
  errorBody(file: number, body: Uint8Array): void;
  reportInvalidLine(file: number, line: number, message: string): void;
  invalidLineError(file: number, line: number, message: string): Error;
  tokenRefreshed(): void;
  tokenUnavailable(reason: string): void;
  /** After `refreshManifest`: the job's fresh plan, or (its refresh failed, or `failure`) the waiting files fail (K8). */
  manifestRefreshed(job: Job, failure?: string | null): void;
  /** Files that got their result since the last call. */
  finished(): Uint32Array;
  result(file: number): { file: PlannedFile; report?: FileReport; error?: Error } | null;
  progress(): DownloadProgress;
  takeLimitChanges(): LimitChange[] | null;
  free(): void;
}

/** A step of the core's SMART Backend Services session. */
export type AuthStep =
  | { type: 'send'; request: EngineRequest }
  | { type: 'sign'; signingInput: string; alg: 'RS384' | 'ES384'; kid: string | null }
  | { type: 'wait'; untilMs: number; delayMs: number }
  | { type: 'ready' };

/** The core's SMART Backend Services token session (no I/O, no signing: JS signs). */
export declare class TokenSession {
  constructor(
    baseUrl: string,
    clientId: string,
    scope: string,
    /** `null` with a `clientSecret`. */
    alg: 'RS384' | 'ES384' | null,
    tokenUrl: string | null | undefined,
    kid: string | null | undefined,
    nonce: number,
    /** `client_secret_basic` instead of a signed assertion (no `sign` step). */
    clientSecret?: string | null,
  );
  next(nowMs: number): AuthStep;
  signed(signature: Uint8Array): void;
  handleResponse(id: number, status: number, headers: string[], body: Uint8Array, nowMs: number): void;
  handleTransportError(id: number, message: string, nowMs: number): void;
  token(nowMs: number): string | undefined;
  invalidate(): void;
  free(): void;
}

export declare function signCallback(body: Uint8Array, secret: Uint8Array): string;
