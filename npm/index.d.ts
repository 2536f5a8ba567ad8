// Types of the `fhir-async` package. The shapes the engine hands over (the
// camelCase JSON of the Rust core) are generated from the Rust types: the block
// between the `generated` markers below (wasm/tests/types.rs writes and checks
// it). The rest (the client, its options, the errors, the engine's classes) is
// written by hand and uses those shapes.

// ---------- configuration ----------

/** Options of `client.export()`: the `$export` parameters plus per-job settings. */
export interface ExportOptions extends Partial<ExportRequest> {
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
  /** Timing and retry limits: each one left out is the engine's default. */
  retry?: Partial<RetryPolicy>;
  /** Default deadline of every job, ms. */
  timeoutMs?: number;
  /** Other origins allowed to receive the token for file downloads. */
  allowedOrigins?: string[];
  /** Default `Prefer` options of every job. */
  prefer?: Partial<PreferOptions>;
}

// ---------- engine shapes ----------

// ---------- generated from the Rust types (wasm/tests/types.rs): do not edit ----------

/**
 * Everything a job needs to know up front. Serializable, so bindings can
 * take it as a plain JS / Python object.
 */
export type JobConfig = {
  /**
   * The FHIR base URL (`https://host/fhir/R4`). Its origin receives the token.
   */
  baseUrl: string,
  /**
   * What to start.
   */
  operation: Operation,
  /**
   * Extra `Prefer` tokens.
   */
  prefer: PreferOptions,
  /**
   * Timing and retry limits.
   */
  retry: RetryPolicy,
  /**
   * Overall deadline in ms from the kick-off (protocol B8). `None`: no deadline.
   */
  timeoutMs: number | null,
  /**
   * Other origins allowed to receive the token for file downloads (I2).
   */
  allowedOrigins: Array<string>, };

/**
 * What the job starts.
 */
export type Operation = { "type": "export" } & ExportRequest | { "type": "operation" } & OperationRequest;

/**
 * A Bulk Data `$export` kick-off. Every IG parameter is here.
 */
export type ExportRequest = {
  /**
   * System, Patient or Group level.
   */
  level: ExportLevel,
  /**
   * The Group id for a group-level export.
   */
  groupId: string | null,
  /**
   * `_outputFormat` (must be one of the three NDJSON spellings).
   */
  outputFormat: string | null,
  /**
   * `_since` (FHIR instant).
   */
  since: string | null,
  /**
   * `_until` (FHIR instant; STU3+, protocol L5). A server may still send resources changed
   * later (referenced ones, untracked ones): the output is not bounded by it.
   */
  until: string | null,
  /**
   * `_type`: resource types.
   */
  types: Array<string>,
  /**
   * `_elements`.
   */
  elements: Array<string>,
  /**
   * `patient`: references such as `Patient/123` (POST only: switches to POST).
   */
  patients: Array<string>,
  /**
   * `includeAssociatedData` codes.
   */
  includeAssociatedData: Array<string>,
  /**
   * `_typeFilter`: one `Type?query` per value, sent as repeated values.
   */
  typeFilters: Array<string>,
  /**
   * `organizeOutputBy` (STU3+).
   */
  organizeOutputBy: string | null,
  /**
   * `allowPartialManifests` (STU3+).
   */
  allowPartialManifests: boolean | null,
  /**
   * `_minimumFileSize`: bytes, a positive integer (STU4 ballot, protocol L7).
   */
  minimumFileSize: number | null,
  /**
   * `_maximumFileSize`: bytes, a positive integer over `minimumFileSize` (STU4 ballot,
   * protocol L7). A server may still write larger files: they are never refused.
   */
  maximumFileSize: number | null,
  /**
   * Force POST with a `Parameters` body even without `patient`.
   */
  post: boolean,
  /**
   * Which IG version to speak (`auto`: what the server declares, protocol L2).
   */
  igVersion: IgVersion, };

/**
 * The level of an export.
 */
export type ExportLevel = "system" | "patient" | "group";

/**
 * The Bulk Data IG version the request targets (protocol A5).
 */
export type IgVersion = "stu2" | "stu3" | "stu4" | "auto";

/**
 * Any other operation or interaction sent with `Prefer: respond-async`
 * (`$reindex`, a search, a transaction, Medplum's `$expunge`, ...).
 */
export type OperationRequest = {
  /**
   * The method.
   */
  method: HttpMethod,
  /**
   * A path relative to the base (`$reindex`, `Patient?name=x`, `` for a
   * transaction) or an absolute URL on the same server.
   */
  path: string,
  /**
   * A FHIR JSON body.
   */
  body: string | null, };

/**
 * An HTTP method the engine may ask for.
 */
export type HttpMethod = "GET" | "POST" | "DELETE";

/**
 * Extra `Prefer` tokens.
 */
export type PreferOptions = {
  /**
   * `async-mode=bundle|redirect`.
   */
  asyncMode: AsyncMode | null,
  /**
   * `callback-url=...` (the job keeps polling anyway, protocol G1).
   */
  callbackUrl: string | null,
  /**
   * `handling=lenient` (protocol A6).
   */
  lenient: boolean,
  /**
   * `separate-export-status` (protocol A7, B5).
   */
  separateExportStatus: boolean, };

/**
 * `async-mode` from the unified pattern (seed 003).
 */
export type AsyncMode = "bundle" | "redirect";

/**
 * Timing and retry limits. Every field has a sensible default.
 */
export type RetryPolicy = {
  /**
   * The shortest wait between two polls, whatever the server says (ms).
   * Also the wait when `Retry-After` is in the past or zero.
   */
  minWaitMs: number,
  /**
   * The longest wait between two polls, whatever the server says (ms).
   */
  maxWaitMs: number,
  /**
   * First backoff delay when the server sends no `Retry-After` (ms).
   */
  initialBackoffMs: number,
  /**
   * Cap on the backoff delay (ms).
   */
  maxBackoffMs: number,
  /**
   * Backoff growth factor, in percent (200 = doubling).
   */
  backoffFactorPercent: number,
  /**
   * Jitter as a percentage of the delay (20 = ±20 %).
   */
  jitterPercent: number,
  /**
   * Seed for the jitter, so runs are reproducible.
   */
  seed: number,
  /**
   * Failed polls in a row (5xx, 429, transient OperationOutcome, resets)
   * before the job gives up.
   */
  maxRetries: number,
  /**
   * How many times a kick-off answered with 429 is retried (protocol A9).
   */
  maxKickoffRetries: number,
  /**
   * How many times a file download is retried after 5xx or a reset (protocol E6).
   */
  maxDownloadRetries: number,
  /**
   * Read timeout for each request (ms); must exceed a long-polling hold (G4).
   */
  requestTimeoutMs: number,
  /**
   * The ceiling on a status, manifest, result or token answer's body, in
   * bytes (protocol K9; default 256 MiB): each such [`crate::Request`]
   * carries it as `max_body`, and a longer body ends with
   * `response_too_large`. File bodies are streamed (their lines have
   * `DownloadOptions::max_line`); error bodies are read up to
   * [`crate::download::MAX_ERROR_BODY`].
   */
  maxResponseBytes: number, };

/**
 * The one next thing the caller must do.
 */
export type Action = { "type": "send",
  /**
   * The request.
   */
  request: EngineRequest, } | { "type": "wait",
  /**
   * When to call again (Unix ms).
   */
  untilMs: number,
  /**
   * `until_ms - now`, for timers.
   */
  delayMs: number, } | { "type": "refreshToken" } | { "type": "done",
  /**
   * How it ended.
   */
  outcome: Outcome, };

/**
 * A request the caller must send, exactly as described.
 *
 * The caller adds `Authorization: Bearer <token>` if and only if [`Request::auth`]
 * is true, and must not follow redirects itself unless it is a platform that
 * cannot do otherwise (browsers), in which case it reports the final URL in
 * [`Response::url`].
 */
export type EngineRequest = {
  /**
   * Identifies the request; hand it back with the response.
   */
  id: number,
  /**
   * What the request is for.
   */
  kind: RequestKind,
  /**
   * The HTTP method.
   */
  method: HttpMethod,
  /**
   * The absolute URL.
   */
  url: string,
  /**
   * Headers to send, in order. `Authorization` is never among them.
   */
  headers: Array<[string, string]>,
  /**
   * The body, if any (FHIR JSON).
   */
  body: string | null,
  /**
   * Whether to attach the bearer token.
   */
  auth: boolean,
  /**
   * How long to wait for the response before giving up, in milliseconds.
   * Larger than a long-polling server's hold time (protocol G4).
   */
  timeoutMs: number,
  /**
   * The most body bytes to read (protocol K9). A body longer than this is
   * not handed back: the binding stops reading (never buffering more than
   * the ceiling) and calls [`crate::Job::response_too_large`]. `None`: a
   * file body, streamed through [`crate::FileDownload::feed`].
   */
  maxBody?: number | null, };

/**
 * Why the engine wants a request sent. Bindings use it for logging and for
 * platform quirks (a browser can only follow redirects itself, for example).
 */
export type RequestKind = "capabilities" | "kickoff" | "status" | "result" | "manifestPage" | "cancel" | "cleanup" | "file" | "auth";

/**
 * How a job ended. Server-reported failure is an outcome, not an error.
 */
export type Outcome = {
  /**
   * Completed, completed with errors, failed or cancelled.
   */
  status: OutcomeStatus,
  /**
   * How the result arrived.
   */
  delivery: Delivery,
  /**
   * The HTTP status of the response that settled the job.
   */
  httpStatus: number | null,
  /**
   * The payload.
   */
  result: ResultBody,
  /**
   * A one-line human summary (the OperationOutcome text, for failures).
   */
  message: string | null,
  /**
   * The `Expires` header of the manifest response, as sent.
   */
  expires: string | null,
  /**
   * `Expires` as Unix ms, when it parses (protocol C1).
   */
  expiresAtMs: number | null,
  /**
   * The URL the result came from (status URL, or the redirect target).
   */
  resultUrl: string | null,
  /**
   * Everything worth telling a human that did not stop the job: a clamped
   * `Retry-After`, resource types the manifest lists that were not asked
   * for, a status URL on another origin, ... (the job's warnings when it ended).
   */
  warnings?: Array<string>, };

/**
 * The final state of a job.
 */
export type OutcomeStatus = "completed" | "completedWithErrors" | "failed" | "cancelled";

/**
 * How the result was delivered.
 */
export type Delivery = "sync" | "inline" | "redirect" | "none";

/**
 * The result payload.
 */
export type ResultBody = { "kind": "manifest",
  /**
   * The manifest.
   */
  manifest: Manifest, } | { "kind": "bundle",
  /**
   * The Bundle.
   */
  bundle: FhirResource,
  /**
   * `entry[0].response.status` as a number, when present.
   */
  entryStatus: number | null, } | { "kind": "asyncJob",
  /**
   * The AsyncJob resource.
   */
  job: FhirResource,
  /**
   * `AsyncJob.status`.
   */
  jobStatus: string,
  /**
   * A manifest built from `output` file parameters, if any.
   */
  manifest: Manifest | null, } | { "kind": "operationOutcome",
  /**
   * The OperationOutcome.
   */
  outcome: FhirResource, } | { "kind": "resource",
  /**
   * The resource.
   */
  resource: FhirResource, } | { "kind": "text",
  /**
   * The body, decoded as UTF-8 (lossy).
   */
  text: string,
  /**
   * Its `Content-Type`.
   */
  contentType: string | null, } | { "kind": "empty" };

/**
 * A completion manifest. Unknown keys are ignored; both the STU2/STU3 `error`
 * and the STU4 `outcome` arrays are read.
 */
export type Manifest = {
  /**
   * The instant the export reflects; the next incremental export's `_since` (D3).
   */
  transactionTime?: string | null,
  /**
   * The kick-off URL (required in STU2/STU3, gone in STU4).
   */
  request?: string | null,
  /**
   * Whether file downloads need the bearer token. Accepts `true`/`false` and
   * the strings `"true"`/`"false"` (divergence 10). When absent the engine
   * assumes `true`, which still never sends the token off the FHIR origin.
   */
  requiresAccessToken: boolean,
  /**
   * The data files (required: a body without `output` is not a manifest).
   */
  output: Array<ManifestFile>,
  /**
   * OperationOutcome files (STU2/STU3 name).
   */
  error: Array<ManifestFile>,
  /**
   * OperationOutcome files (STU4 name for `error`).
   */
  outcome?: Array<ManifestFile>,
  /**
   * Files of transaction Bundles of deletions (with `_since`).
   */
  deleted?: Array<ManifestFile>,
  /**
   * Paging links (STU3 `allowPartialManifests`).
   */
  link?: Array<ManifestLink>,
  /**
   * `extension`: an object in STU2/STU3, an array of Extensions in STU4. Kept as is.
   */
  extension?: Json,
  /**
   * STU3 `outputOrganizedBy`.
   */
  outputOrganizedBy?: string | null,
  /**
   * A non-standard `message` some servers add (HealthConnect, HAPI).
   */
  message?: string | null,
  /**
   * STU4 `manifestType` (L12): absent means a `BulkDataManifest`.
   */
  manifestType?: string | null,
  /**
   * A manifest-wide `outputFormat`, for files that do not give their own
   * (L10); absent means `application/fhir+ndjson`.
   */
  outputFormat?: string | null, };

/**
 * One file of a manifest.
 */
export type ManifestFile = {
  /**
   * The resource type in the file (absent when output is organized).
   */
  type?: string | null,
  /**
   * The file URL (absolute per the IG; relative values are resolved).
   */
  url: string,
  /**
   * The number of resources in the file, when the server says.
   */
  count?: number | null,
  /**
   * STU4 `fileSize` in bytes.
   */
  fileSize?: number | null,
  /**
   * STU3 `continuesInFile`.
   */
  continuesInFile?: string | null,
  /**
   * STU4 `outputFormat` of this file (L10, L13); absent: the manifest's,
   * else `application/fhir+ndjson`.
   */
  outputFormat?: string | null,
  /**
   * STU4 `countSeverity` of an `outcome` file (L11); entries that are not
   * `{code, count}` are left out.
   */
  countSeverity?: Array<CountSeverity>, };

/**
 * A manifest paging link.
 */
export type ManifestLink = {
  /**
   * `next` for the following page.
   */
  relation: string,
  /**
   * The page URL.
   */
  url: string, };

/**
 * One `countSeverity` entry of an `outcome` file (STU4 ballot, L11): how
 * many issues of one severity the file holds.
 */
export type CountSeverity = {
  /**
   * `fatal`, `error`, `warning`, `information` or `success`.
   */
  code: string,
  /**
   * How many.
   */
  count: number, };

/**
 * A snapshot for display.
 */
export type Progress = {
  /**
   * The phase.
   */
  phase: Phase,
  /**
   * The server's `X-Progress` text, as sent (trimmed, at most 200 chars).
   */
  message: string | null,
  /**
   * A percentage read from that text when it carries one (0–100).
   */
  percent: number | null,
  /**
   * Status polls sent so far.
   */
  polls: number,
  /**
   * When the next poll is due (Unix ms), while polling.
   */
  nextPollAtMs: number | null,
  /**
   * Milliseconds until the next poll, relative to the `now` asked with.
   */
  nextPollInMs: number | null,
  /**
   * The status URL, once known.
   */
  statusUrl: string | null,
  /**
   * Files already listed by partial manifests (protocol B7).
   */
  partialFiles: number,
  /**
   * The latest warning (a clamped `Retry-After`, ...), for display.
   */
  warning?: string | null, };

/**
 * Where a job is in its life.
 */
export type Phase = "pending" | "kickingOff" | "polling" | "fetchingResult" | "cancelling" | "done" | "failed";

/**
 * What a cancel request achieved.
 */
export type CancelResult = { "kind": "cancelled",
  /**
   * The HTTP status of the cancel response.
   */
  httpStatus: number | null, } | { "kind": "alreadyTerminal",
  /**
   * The job's status when the server says (`completed`, `error`, ...).
   */
  jobStatus: string | null,
  /**
   * The HTTP status of the cancel response.
   */
  httpStatus: number, } | { "kind": "notFound",
  /**
   * The HTTP status of the cancel response.
   */
  httpStatus: number, } | { "kind": "rejected",
  /**
   * The HTTP status.
   */
  httpStatus: number,
  /**
   * The OperationOutcome, if any.
   */
  outcome: FhirResource | null, };

/**
 * What a `cleanup()` DELETE achieved (protocol F3).
 */
export type CleanupResult = {
  /**
   * The HTTP status, or `None` after a transport failure.
   */
  httpStatus: number | null,
  /**
   * Whether the files are gone (2xx, or 404/410: already gone).
   */
  ok: boolean, };

/**
 * What a callback says.
 */
export type CallbackPayload = {
  /**
   * `completed`, `failed` or `cancelled`.
   */
  status: CallbackStatus,
  /**
   * Where the result can be fetched (trusted only on the status URL's origin).
   */
  resultUrl: string | null,
  /**
   * The OperationOutcome sent with a failure.
   */
  outcome: FhirResource | null, };

/**
 * The `status` of a callback.
 */
export type CallbackStatus = "completed" | "failed" | "cancelled";

/**
 * What a callback did to the job (protocol G3).
 */
export type CallbackEffect = { "kind": "woken" } | { "kind": "ignored",
  /**
   * Why.
   */
  reason: string, };

/**
 * The inputs of the token rule.
 */
export type TokenPolicy = {
  /**
   * The FHIR server's base URL: its origin receives the token.
   */
  baseUrl: string,
  /**
   * Other origins (`https://host:port`) allowed to receive the token when a
   * manifest says `requiresAccessToken: true`.
   */
  allowedOrigins: Array<string>, };

/**
 * What the engine decided about one file before anything is downloaded.
 */
export type PlannedFile = {
  /**
   * Which list the file is from.
   */
  kind: FileKind,
  /**
   * Position in that list (stable across manifest refreshes, protocol E4).
   */
  index: number,
  /**
   * The resource type, when the manifest says.
   */
  resourceType: string | null,
  /**
   * The absolute URL.
   */
  url: string,
  /**
   * Whether the bearer token goes with the request.
   */
  sendToken: boolean,
  /**
   * The line count the manifest promises.
   */
  expectedCount: number | null,
  /**
   * The `fileSize` the manifest gives: the decoded bytes the file must
   * have (L13), for NDJSON and opaque files alike.
   */
  expectedBytes?: number | null,
  /**
   * Set when the file is not NDJSON (its `outputFormat` is not an NDJSON
   * alias, e.g. Parquet, L13): its media type. Such a file is opaque bytes:
   * asked for with `Accept` = this, handed out as the body's bytes (no
   * lines, no count check) and checked against `expected_bytes` only.
   */
  opaqueFormat?: string | null,
  /**
   * A file name safe to use inside any target directory (no separators, no
   * `..`), unique within the plan: `{Type}.{index:03}.ndjson` style (an
   * opaque file keeps its format's extension: `Patient.003.parquet`).
   */
  fileName: string,
  /**
   * The most decoded bytes the file may have: a larger `Content-Length`,
   * or a body passing it while streaming, fails the file with
   * [`DownloadError::TooLarge`](crate::DownloadError::TooLarge) (attachments, protocol M6).
   */
  maxBytes?: number | null,
  /**
   * Set when the file must not be fetched at all, with the reason
   * (an `http:` URL under an `https:` base, or a token needed on an origin
   * that is not allowed).
   */
  blocked: string | null, };

/**
 * Which list of the manifest a file came from.
 */
export type FileKind = "output" | "error" | "deleted" | "attachment";

/**
 * The next thing the caller does (see the module docs).
 */
export type DownloadStep = { "type": "send",
  /**
   * Which file.
   */
  file: number,
  /**
   * The request.
   */
  request: EngineRequest, } | { "type": "refreshToken" } | { "type": "refreshManifest" } | { "type": "wait",
  /**
   * When to call [`Downloads::next`](super::Downloads::next) again.
   */
  untilMs: number,
  /**
   * `until_ms - now`.
   */
  delayMs: number, } | { "type": "idle" } | { "type": "done" };

/**
 * One file's result.
 */
export type FileResult = {
  /**
   * The file as planned (after a refresh, the fresh entry).
   */
  file: PlannedFile,
  /**
   * Its figures, when it completed.
   */
  report?: FileReport | null,
  /**
   * Why it failed, when it did. The other files are unaffected.
   */
  error?: DownloadError, };

/**
 * Figures for a finished file.
 */
export type FileReport = {
  /**
   * The URL that finally served the file.
   */
  url: string,
  /**
   * Which manifest list.
   */
  kind: FileKind,
  /**
   * The resource type.
   */
  resourceType: string | null,
  /**
   * The safe file name from the plan.
   */
  fileName: string,
  /**
   * Resources handed out: non-blank lines that passed validation (invalid
   * lines are handed out too, and counted in `invalid_lines` only).
   */
  resources: number,
  /**
   * The manifest's count, if any (already checked equal).
   */
  expected: number | null,
  /**
   * Decoded bytes of the whole file: the body that completed it, and,
   * when this process continued an earlier one's checkpoint (K5) with a
   * 206, the bytes before that checkpoint too (not only the resumed tail).
   */
  bytes: number,
  /**
   * Lines that failed validation (handed out anyway: nothing is lost).
   */
  invalidLines: number,
  /**
   * 1-based number of the first invalid line.
   */
  firstInvalidLine: number | null,
  /**
   * The first [`MAX_INVALID_REPORTED`] invalid lines, with what is wrong.
   */
  invalid?: Array<InvalidLine>,
  /**
   * Set when the file's count differs from the manifest's ([`CountCheck::Lenient`]).
   */
  countMismatch?: CountMismatchInfo | null,
  /**
   * Things worth telling a human about this file.
   */
  warnings?: Array<string>,
  /**
   * Requests sent, retries included.
   */
  attempts: number,
  /**
   * Broken bodies continued with a range request (206), not fetched again (K1).
   */
  rangeResumes: number,
  /**
   * Range requests answered with the whole file again (200, or another range).
   */
  rangeRestarts: number, };

/**
 * A line that is not a JSON resource (protocol E6: a per-line report, not a crash).
 */
export type InvalidLine = {
  /**
   * 1-based resource line number (blank lines not counted).
   */
  line: number,
  /**
   * What is wrong with it.
   */
  message: string, };

/**
 * The manifest's count against what the file held.
 */
export type CountMismatchInfo = {
  /**
   * `count` from the manifest.
   */
  expected: number,
  /**
   * Resources in the file.
   */
  actual: number, };

/**
 * What a count mismatch does to a file (protocol D2, issue 10: "one bad
 * file loses nothing else").
 */
export type CountCheck = "strict" | "lenient";

/**
 * How strictly lines are checked. A line is a resource only if it passes:
 * the report's `resources` and the manifest's count check count only those.
 */
export type Validation = "none" | "structural" | "json";

/**
 * What a line that is not a resource does to its file (issue 20: one rule,
 * in the core, for every binding).
 */
export type InvalidLines = "report" | "raise";

/**
 * Totals for a progress bar.
 */
export type DownloadProgress = {
  /**
   * Files selected.
   */
  files: number,
  /**
   * Files completed.
   */
  filesDone: number,
  /**
   * Files that failed.
   */
  filesFailed: number,
  /**
   * Files being downloaded now.
   */
  filesActive: number,
  /**
   * Resources handed out so far.
   */
  resources: number,
  /**
   * Decoded bytes so far (completed files and the final attempt of running ones).
   */
  bytes: number,
  /**
   * The sum of the manifest's counts, when every selected file has one.
   */
  expectedResources: number | null,
  /**
   * The per-origin limits now (they halve on 429/503 and grow back: K3).
   */
  originLimits: Array<OriginLimit>, };

/**
 * How many files run at once against one origin.
 */
export type OriginLimit = {
  /**
   * `scheme://host:port`.
   */
  origin: string,
  /**
   * Files at once now.
   */
  limit: number, };

/**
 * A change of an origin's limit, for logs and progress (K3).
 */
export type LimitChange = {
  /**
   * `scheme://host:port`.
   */
  origin: string,
  /**
   * The limit before.
   */
  from: number,
  /**
   * The limit after.
   */
  to: number,
  /**
   * Why: `throttled` (a 429 or 503) or `recovered` (a run of successes).
   */
  reason: string, };

/**
 * How attachments are handled (the same names in every binding).
 */
export type AttachmentMode = "off" | "inline" | "files";

/**
 * Which attachments are fetched and how (part of
 * [`DownloadOptions`](crate::DownloadOptions) as `attachments`).
 */
export type AttachmentOptions = {
  /**
   * Off (default), inline or files.
   */
  mode: AttachmentMode,
  /**
   * Media types to fetch, matched on the media type without parameters,
   * by prefix (`"text/"` matches `text/plain`), case-insensitively. Empty
   * (the default): every type. An attachment without `contentType` is
   * fetched only when this is empty (M2).
   */
  types: Array<string>,
  /**
   * The largest attachment taken, in bytes (default
   * [`DEFAULT_ATTACHMENT_MAX_SIZE`], 4 MiB): checked against the
   * Attachment's `size` (planned as blocked), the `Content-Length` and the
   * bytes while streaming (`too_large`), M6.
   */
  maxSize: number,
  /**
   * Also look in every other Attachment-shaped element (M1, opt-in): any
   * object with `url` and one of `contentType`, `size`, `hash`, `title`,
   * anywhere in the resource.
   */
  allElements: boolean, };

/**
 * One planned attachment's outcome (M8), for `attachments.json` and the
 * bindings' reports.
 */
export type AttachmentReport = {
  /**
   * The resolved URL, redacted (no query, K10).
   */
  url: string,
  /**
   * Where it was saved, `attachments/<name>` (files mode, once fetched).
   */
  fileName?: string,
  /**
   * The media type of the bytes (a JSON Binary's own `contentType`).
   */
  contentType?: string,
  /**
   * Decoded bytes.
   */
  size?: number,
  /**
   * Base64 SHA-1 of the bytes (as `Attachment.hash`).
   */
  sha1?: string,
  /**
   * Why it was not taken, when it failed.
   */
  error?: ErrorInfo, };

/**
 * A failure as a report carries it: the stable code and the message.
 */
export type ErrorInfo = {
  /**
   * The error's code (`too_large`, `attachment_outcome`, `hash_mismatch`,
   * `bad_binary`, or a download's own: `http`, `blocked`, ...).
   */
  code: string,
  /**
   * What happened, where (the URL redacted) and the server's own words.
   */
  message: string, };

/**
 * The ceilings and defaults above as one value (for a binding that exports
 * them: `Ceilings::default()` serialized to JSON, camelCase names).
 */
export type Ceilings = {
  /**
   * [`MAX_ERROR_BODY`].
   */
  maxErrorBody: number,
  /**
   * [`MAX_INVALID_REPORTED`].
   */
  maxInvalidReported: number,
  /**
   * [`DEFAULT_MAX_RESPONSE_BYTES`].
   */
  defaultMaxResponseBytes: number,
  /**
   * [`DEFAULT_MAX_LINE`].
   */
  defaultMaxLine: number,
  /**
   * [`DEFAULT_MAX_PER_ORIGIN`].
   */
  defaultMaxPerOrigin: number,
  /**
   * [`DEFAULT_MAX_TOTAL`].
   */
  defaultMaxTotal: number,
  /**
   * [`DEFAULT_EXPIRY_MARGIN_MS`].
   */
  defaultExpiryMarginMs: number,
  /**
   * [`DEFAULT_ATTACHMENT_MAX_SIZE`].
   */
  defaultAttachmentMaxSize: number, };

// ---------- end of the generated types ----------

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
/** A FHIR resource (JSON object with a `resourceType`). */
export interface FhirResource {
  resourceType: string;
  id?: string;
  [key: string]: Json | undefined;
}

















/**
 * The outcome of `job.wait()`: the engine's `Outcome`, linked to its job, with
 * `manifest` (a non-enumerable getter: the Bulk manifest of the result, or
 * `null`; `client.resources(outcome.manifest)` works too).
 */
export type JobOutcome = Outcome & { readonly manifest: Manifest | null };

/**
 * A file's report in a stream: the engine's `FileReport`, or, when the file
 * failed (count check in strict mode, HTTP error, retries, blocked by the token
 * rule, line too long, token refused, an invalid line with `onInvalidLine:
 * 'raise'`), what it delivered before with `error`: the other files are
 * unaffected.
 */
export type StreamFileReport = FileReport & { error?: DownloadError };

/** What `new Job(config)` takes: a `JobConfig` whose defaulted parts may be left out. */
export interface JobConfigInit {
  baseUrl: string;
  operation: ({ type: 'export' } & Partial<ExportRequest>) | ({ type: 'operation' } & Omit<OperationRequest, 'body'> & { body?: string | null });
  prefer?: Partial<PreferOptions>;
  retry?: Partial<RetryPolicy>;
  timeoutMs?: number | null;
  allowedOrigins?: string[];
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
  /**
   * Protocol L13: also take the files that are not NDJSON (the plan's
   * `opaqueFormat`, e.g. Parquet), each handed out as `Uint8Array` items: the
   * file's bytes in order, checked against the manifest's `fileSize` (not
   * counted in `stats.resources`). Default false: such files are left out.
   */
  opaqueFiles?: boolean;
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
  onFile?: (report: StreamFileReport) => void;
  /**
   * Protocol M (issue 24): the documents behind `DocumentReference.content[].attachment`,
   * `DiagnosticReport.presentedForm[]` and `Media.content` (those with `url` and no `data`).
   * `'off'` (the default when absent): lines as they are. `'inline'`: each fetched attachment
   * becomes `data`, `size`, `hash` (base64 SHA-1) and `contentType` in its resource, `url` kept.
   * `'files'` (Node only): each is written to `attachmentsDir/<fileName>` (temp + rename), the
   * resources unchanged. A resource with attachments is handed out once they are settled; one
   * that failed leaves its resource unchanged (M9) and is in `stats.attachments` with `error`.
   * Fetched through the core's download coordinator: once per URL, `maxPerOrigin` per origin,
   * the token only to the FHIR origin (or `allowedOrigins`). Not with `saveProgress` yet.
   */
  attachments?: AttachmentMode;
  /** Media types to fetch, prefix match without parameters (`'text/'`); default every type. */
  attachmentTypes?: string[];
  /** Largest attachment taken, bytes (default 4 MiB): by `size`, `Content-Length` and while streaming. */
  attachmentMaxSize?: number;
  /** Also every other Attachment-shaped element of a resource (default false). */
  attachmentsAllElements?: boolean;
  /** `'files'` mode: the folder the attachments are written to (created when missing). */
  attachmentsDir?: string;
}

/** An attachment's report in `stream.stats.attachments`, `error` typed. */
export type StreamAttachmentReport = Omit<AttachmentReport, 'error'> & { error?: DownloadError };

export interface StreamStats {
  bytes: number;
  resources: number;
  /** One report per finished file, success or failure. */
  files: StreamFileReport[];
  /** Files that failed (their reports have `error`). */
  failed: number;
  /** Lines skipped because they are not resources. */
  invalidLines: number;
  /** Each origin's limit on requests in flight now (protocol K3). */
  originLimits: { origin: string; limit: number }[];
  /** Every change of those limits so far. */
  limitChanges: LimitChange[];
  /** With `attachments`: one report per attachment planned so far (`[]` without). */
  attachments: StreamAttachmentReport[];
  /** Attachments that failed (their reports have `error`). */
  attachmentsFailed: number;
}

/**
 * Resources streamed from up to `concurrency` files at once; `stats` grows as
 * they arrive. A failed file never ends the iteration (see `StreamFileReport.error`).
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
  wait(options?: WaitOptions): Promise<JobOutcome>;
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
  | 'size_mismatch'
  | 'invalid_line'
  | 'unauthorized'
  | 'line_too_long'
  | 'decode'
  | 'retries_exhausted'
  | 'redirect'
  | 'file_changed'
  | 'refresh_failed'
  | 'too_large'
  | 'attachment_outcome'
  | 'hash_mismatch'
  | 'bad_binary'
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
/** A body over its size limit (an attachment's `attachmentMaxSize`, protocol M6). */
export declare class TooLargeError extends DownloadError {
  readonly code: 'too_large';
}
/** An attachment that could not be used (protocol M5); its resource goes out unchanged (M9). */
export declare class AttachmentError extends DownloadError {
  readonly code: 'attachment_outcome' | 'hash_mismatch' | 'bad_binary';
}
/** The attachment URL answered an OperationOutcome; `message` has the server's words. */
export declare class AttachmentOutcomeError extends AttachmentError {
  readonly code: 'attachment_outcome';
}
/** The bytes fetched do not match the Attachment's `hash`. */
export declare class HashMismatchError extends AttachmentError {
  readonly code: 'hash_mismatch';
}
/** A FHIR JSON `Binary` answer without usable `data`. */
export declare class BadBinaryError extends AttachmentError {
  readonly code: 'bad_binary';
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




/** The engine's job. Errors it throws are `Error`s with `name` "FhirAsyncError" and a `code`. */
export declare class Job {
  constructor(config: JobConfigInit);
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
    /** `undefined` (here and for `countCheck`, `invalidLines`, `gzip`): the core's default. */
    maxPerOrigin: number | undefined,
    countCheck: CountCheck | undefined,
    /** What a line reported with `reportInvalidLine` does to its file. */
    invalidLines: InvalidLines | undefined,
    maxLine: number,
    skipFiles: string[],
    expiresAtMs: number,
    gzip: boolean | undefined,
    savedProgress: boolean,
    /** The core's rule for a line (`undefined`: its default, `"json"`); a line that fails it crosses `feed` marked: a NUL, then the core's words. */
    validation?: Validation,
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
  /** Counts the line in the file's report; under `invalidLines: 'raise'` returns the file's `invalid_line` error, else `null`. */
  reportInvalidLine(file: number, line: number, message: string): Error | null;
  invalidLineError(file: number, line: number, message: string): Error;
  tokenRefreshed(): void;
  tokenUnavailable(reason: string): void;
  /** After `refreshManifest`: the job's fresh plan, or (its refresh failed, or `failure`) the waiting files fail (K8). */
  manifestRefreshed(job: Job, failure?: string | null): void;
  /** Files that got their result since the last call. */
  finished(): Uint32Array;
  /** `error` is a real `Error` (name `DownloadError`, the core's `code`). */
  result(file: number): FileResult | null;
  progress(): DownloadProgress;
  takeLimitChanges(): LimitChange[] | null;
  /** The bytes of an opaque file (an attachment, a Parquet file) the last `feed`/`finish` handed out. */
  takeBytes(): Uint8Array;
  free(): void;
}

/** The attachments of a stream of resources (protocol M): the core holds, plans, decodes and hydrates; JS fetches. */
export declare class Hydrator {
  /**
   * The job's token rule and the core's `AttachmentOptions` as arguments: `mode`, `types`
   * (`[]`: every type), `maxSize` bytes (0: the default, 4 MiB), `allElements`; `undefined`: the core's default.
   */
  constructor(job: Job, mode: AttachmentMode | undefined, types: string[], maxSize: number, allElements?: boolean);
  /** The mode the core read. */
  readonly mode: AttachmentMode;
  /** A line of a file: `'pass'` (hand it out now) or `'held'` (it comes back from `release`). */
  line(line: string): 'pass' | 'held';
  /** Attachment files planned since the last call (`index`: the attachment's id), taken, to look at. */
  takePending(): PlannedFile[];
  /**
   * Attachment files planned since the last call, taken, as a `Downloads` under the job's retry
   * policy (`maxPerOrigin`: `undefined` the core's default): each file as the core planned it
   * (token rule, `Accept`, size limit), its body as bytes (`takeBytes`). `undefined` when none is pending.
   */
  downloads(job: Job, maxPerOrigin?: number): Downloads | undefined;
  /** A fetched body: decoded (a JSON Binary), hash-checked; throws the typed error (recorded in its report). */
  fetched(id: number, body: Uint8Array, contentType: string | null | undefined): { contentType: string | null; bytes: Uint8Array; size: number; sha1: string };
  /** File `file` of `downloads` has its result: `true` when it failed (its attachment fails, M9), else hand its bytes to `fetched`. */
  failedIn(downloads: Downloads, file: number): boolean;
  /** Held lines now settled, joined with `\n`, in arrival order ('' when none). */
  release(): string;
  reports(): AttachmentReport[];
  failures(): number;
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
