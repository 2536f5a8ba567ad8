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
    // Browsers only expose a redirect as an opaque response: let them follow and
    // report the final URL (the engine checks it); elsewhere the engine follows.
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

/** Sends a small request and reads the whole body: `{status, headers, body, url}`. */
export async function exchange(fetchFn, request, token, signal) {
  const { promise, release } = open(fetchFn, request, token, signal);
  try {
    const res = await promise;
    const body = new Uint8Array(await res.arrayBuffer());
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
