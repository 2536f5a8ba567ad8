// Everything the package exports, whatever the platform (the entry points
// only differ in how they load the .wasm).

export { FhirAsyncClient, AsyncJob } from './client.js';
export { verifyCallback, parseCallback } from './callback.js';
export { backendServices } from './auth.js';
export {
  FhirAsyncError,
  UsageError,
  ProtocolError,
  InsecureUrlError,
  DeadlineExceededError,
  RetriesExhaustedError,
  UnauthorizedError,
  KickoffIndeterminateError,
  DownloadError,
  InvalidLineError,
  FileChangedError,
  RefreshFailedError,
  TooLargeError,
  AttachmentError,
  AttachmentOutcomeError,
  HashMismatchError,
  BadBinaryError,
  ResponseTooLargeError,
  CallbackError,
  AuthError,
  AbortError,
  JobFailedError,
  fromCore,
} from './errors.js';
// The low-level engine: the `Job`, `Downloads` and `TokenSession` state machines, no I/O.
export { Job, Downloads, Hydrator, TokenSession, signCallback } from '../wasm/fhir_async_wasm.js';
