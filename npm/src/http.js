// The only I/O of the package: send an engine `Request` with fetch and hand
// back what came back. No protocol decisions here.

import { userAgent } from '../wasm/fhir_async_wasm.js';

/** True in browsers (and browser-like workers), where fetch cannot expose redirects. */
export const IN_BROWSER =
  typeof globalThis.document !== 'undefined' ||
  (typeof globalThis.WorkerGlobalScope !== 'undefined' && typeof globalThis.process === 'undefined');

let agentName = null;
/**
 * The `User-Agent` of every request outside browsers (which refuse to let a
 * page set it): the engine's `fhir-async/<version> (node)` (issue 10 §2).
 */
export function userAgentHeader() {
  if (IN_BROWSER) return null;
  return (agentName ??= userAgent('node'));
}

/** Headers as the engine takes them: `[name, value, name, value, ...]`. */
export function flatHeaders(headers) {
  const out = [];
  headers.forEach((value, name) => {
    out.push(name, value);
  });
  return out;
}

// Errors that prove the request never left (the engine may then retry a kick-off).
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

/** `"connect"` when the failure proves the server never saw the request, else `"afterSend"`. */
export function transportKind(err) {
  for (let e = err, i = 0; e && i < 5; e = e.cause, i++) {
    if (CONNECT_CODES.has(e.code)) return 'connect';
  }
  return 'afterSend';
}

/**
 * Starts a request. `promise` resolves with the Response (headers read) or
 * rejects with the transport failure. `signal` aborts; `timeoutMs` bounds the
 * wait for the head (and, for `exchange`, the body); `release()` ends both.
 */
export function open(fetchFn, request, token, signal, { headOnly = false } = {}) {
  const headers = {};
  for (const [k, v] of request.headers) headers[k] = v;
  if (request.auth && token) headers.Authorization = `Bearer ${token}`;
  const ua = userAgentHeader();
  if (ua) headers['User-Agent'] = ua;
  const ac = new AbortController();
  const timer = setTimeout(
    () => ac.abort(new Error(`no response within ${request.timeoutMs} ms`)),
    request.timeoutMs,
  );
  const onAbort = () => ac.abort(signal.reason);
  if (signal) {
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  }
  const release = () => {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  };
  const init = {
    method: request.method,
    headers,
    // Browsers only expose a redirect as an opaque response: they follow it
    // themselves (README, "Browsers"); elsewhere the engine follows.
    redirect: IN_BROWSER ? 'follow' : 'manual',
    signal: ac.signal,
  };
  if (request.body != null) init.body = request.body;
  let promise = fetchFn(request.url, init);
  // A file body may take far longer than one request timeout: only the head is bounded.
  if (headOnly) promise = promise.finally(() => clearTimeout(timer));
  return { promise, release };
}

let platformExchange = null;
/** The Node entry point installs a cheaper transport for small exchanges (`node-http.js`). */
export function setPlatformExchange(fn) {
  platformExchange = fn;
}
/** The exchange to use: the platform's unless the caller brought its own fetch. */
export function exchangeFor(customFetch) {
  if (!customFetch && platformExchange) return (request, token, signal) => platformExchange(request, token, signal);
  const f = customFetch ?? globalThis.fetch.bind(globalThis);
  return (request, token, signal) => exchange(f, request, token, signal);
}

/**
 * The ceiling of `request`'s body: the engine's `maxBody` (K9; the
 * `retry.maxResponseBytes` of the job, 256 MiB by default).
 */
export const maxBodyOf = (request) => request.maxBody ?? Infinity;

/** `parts` (byte arrays, `n` bytes in all) as one. */
export function concat(parts, n) {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/**
 * A whole body of at most `limit` bytes, chunk by chunk (an async iterable
 * of byte arrays), or `null` once it is longer: reading stops there and
 * `stop()` drops the rest, so memory stays within the ceiling.
 */
export async function readBounded(chunks, limit, stop, length) {
  if (Number(length) > limit) {
    stop();
    return null;
  }
  const parts = [];
  let n = 0;
  for await (const c of chunks) {
    n += c.byteLength;
    if (n > limit) {
      stop();
      return null;
    }
    parts.push(c);
  }
  return concat(parts, n);
}

/** A web `ReadableStream` as an async iterable (older browsers cannot `for await` one). */
async function* chunksOf(body) {
  if (!body) return;
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.cancel().catch(() => {}); // a body left unread is dropped
  }
}

/**
 * Sends a small request and reads its body within the ceiling:
 * `{status, headers, body, url}`; `body` is `null` when the body was longer
 * than `request.maxBody`.
 */
export async function exchange(fetchFn, request, token, signal) {
  const { promise, release } = open(fetchFn, request, token, signal);
  try {
    const res = await promise;
    const body = await readBounded(chunksOf(res.body), maxBodyOf(request), () => res.body?.cancel().catch(() => {}), res.headers.get('content-length'));
    return {
      status: res.status,
      headers: flatHeaders(res.headers),
      body,
      url: res.redirected ? res.url : null,
    };
  } finally {
    release();
  }
}
