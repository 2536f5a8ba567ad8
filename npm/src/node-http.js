// The Node transport for the small exchanges (kick-off, polls, cancel):
// undici's `Agent.request`, the HTTP client Node's own fetch is built on,
// without fetch's web streams and Request / Response objects. It costs less
// CPU per request than both fetch and node:http, which is what keeps a
// thousand jobs' polls on time (BENCHMARKS.md, "1,000 concurrent jobs").
// Never follows redirects (the engine does). File downloads still use fetch.
import { Agent } from 'undici';
import { gunzipSync, inflateSync, brotliDecompressSync } from 'node:zlib';
import { maxBodyOf, readBounded, userAgentHeader } from './http.js';

// Keep-alive with a bounded pool per origin: a thousand jobs share a few
// hundred connections instead of opening one per poll.
const agent = new Agent({ connections: 128, keepAliveTimeout: 10_000 });

/** The decoded body, at most `limit` bytes of it (`null` past that: K9). */
function decode(body, encoding, limit) {
  const f = { gzip: gunzipSync, 'x-gzip': gunzipSync, deflate: inflateSync, br: brotliDecompressSync }[encoding.toLowerCase()];
  if (!f) return body;
  try {
    return f(body, limit < 2 ** 31 ? { maxOutputLength: limit } : {});
  } catch (e) {
    if (e?.code === 'ERR_BUFFER_TOO_LARGE') return null;
    throw e;
  }
}

/**
 * `exchange` over undici: resolves `{status, headers (flat), body, url: null}`;
 * `body` is `null` when it was longer than the request's ceiling (K9).
 */
export async function nodeExchange(request, token, signal) {
  const url = new URL(request.url);
  const headers = [];
  for (const [k, v] of request.headers) headers.push(k, v);
  if (request.auth && token) headers.push('Authorization', `Bearer ${token}`);
  headers.push('User-Agent', userAgentHeader());
  const res = await agent.request({
    origin: url.origin,
    path: url.pathname + url.search,
    method: request.method,
    headers,
    body: request.body ?? undefined,
    signal,
    headersTimeout: request.timeoutMs,
    bodyTimeout: request.timeoutMs,
  });
  const limit = maxBodyOf(request);
  let body = await readBounded(res.body, limit, () => res.body.destroy(), res.headers['content-length']);
  const encoding = res.headers['content-encoding'];
  const decoded = typeof encoding === 'string' && encoding.toLowerCase() !== 'identity';
  if (decoded && body) body = decode(body, encoding, limit); // the engine then must not see the encoding header
  const flat = [];
  for (const [name, value] of Object.entries(res.headers)) {
    if (decoded && name === 'content-encoding') continue;
    if (Array.isArray(value)) for (const v of value) flat.push(name, v);
    else if (value !== undefined) flat.push(name, value);
  }
  return { status: res.statusCode, headers: flat, body, url: null };
}
