// The Node transport for the small exchanges (kick-off, polls, cancel):
// undici's `Agent.request`, the HTTP client Node's own fetch is built on,
// without fetch's web streams and Request / Response objects. It costs less
// CPU per request than both fetch and node:http, which is what keeps a
// thousand jobs' polls on time (BENCHMARKS.md, "1,000 concurrent jobs").
// Never follows redirects (the engine does). File downloads still use fetch.
import { Agent } from 'undici';
import { gunzipSync, inflateSync, brotliDecompressSync } from 'node:zlib';
import { userAgentHeader } from './http.js';

// Keep-alive with a bounded pool per origin: a thousand jobs share a few
// hundred connections instead of opening one per poll.
const agent = new Agent({ connections: 128, keepAliveTimeout: 10_000 });

function decode(body, encoding) {
  switch (encoding.toLowerCase()) {
    case 'gzip':
    case 'x-gzip':
      return gunzipSync(body);
    case 'deflate':
      return inflateSync(body);
    case 'br':
      return brotliDecompressSync(body);
    default:
      return body;
  }
}

/** `exchange` over undici: resolves `{status, headers (flat), body, url: null}`. */
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
  let body = Buffer.from(await res.body.arrayBuffer());
  const encoding = res.headers['content-encoding'];
  const decoded = typeof encoding === 'string' && encoding.toLowerCase() !== 'identity';
  if (decoded) body = decode(body, encoding); // the engine then must not see the encoding header
  const flat = [];
  for (const [name, value] of Object.entries(res.headers)) {
    if (decoded && name === 'content-encoding') continue;
    if (Array.isArray(value)) for (const v of value) flat.push(name, v);
    else if (value !== undefined) flat.push(name, value);
  }
  return { status: res.statusCode, headers: flat, body, url: null };
}
