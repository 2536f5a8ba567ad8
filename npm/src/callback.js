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

/** The signature itself (a string), or the `X-Signature` of a headers object (still accepted). */
const signatureOf = (sig) => (sig == null || typeof sig === 'string' ? (sig ?? undefined) : header(sig, 'x-signature'));

/**
 * Verifies a callback's signature `sha256=<hex>` (HMAC-SHA256 of the exact
 * body bytes; the `X-Signature` header) and returns its payload; throws
 * `CallbackError` (`bad_signature`, `malformed`). `signature`: the header's
 * value, or (still accepted) a `Headers`, Node's `req.headers` or a plain object.
 */
export function verifyCallback(body, signature, secret) {
  return core(() => coreVerify(bytes(body), signatureOf(signature), bytes(secret)));
}

/** Parses a callback payload without checking its signature. */
export function parseCallback(body) {
  return core(() => coreParse(bytes(body)));
}
