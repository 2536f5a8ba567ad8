// Callback receiver helpers (the unified pattern's signed POSTs).

import { verifyCallback as coreVerify, parseCallback as coreParse } from '../wasm/fhir_async_wasm.js';
import { core } from './errors.js';

const encoder = new TextEncoder();

function bytes(body) {
  if (typeof body === 'string') return encoder.encode(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError('body must be a string, Uint8Array or ArrayBuffer');
}

function header(headers, name) {
  if (!headers) return undefined;
  if (typeof headers.get === 'function') return headers.get(name) ?? undefined;
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === name) return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}

/**
 * Verifies a callback's `X-Signature: sha256=<hex>` (HMAC-SHA256 of the exact
 * body bytes) and returns its payload; throws `CallbackError` (`bad_signature`,
 * `malformed`). `headers`: a `Headers`, Node's `req.headers` or a plain object.
 */
export function verifyCallback(body, headers, secret) {
  return core(() => coreVerify(bytes(body), header(headers, 'x-signature'), bytes(secret)));
}

/** Parses a callback payload without checking its signature. */
export function parseCallback(body) {
  return core(() => coreParse(bytes(body)));
}
