// Node's own HTTP client for the small exchanges (kick-off, polls, cancel):
// several times cheaper per request than fetch (no web streams, no Request /
// Response objects), which is what lets one process keep a thousand jobs'
// polls on time. Never follows redirects (the engine does). File downloads
// still use fetch.
import http from 'node:http';
import https from 'node:https';
import { gunzipSync, inflateSync, brotliDecompressSync } from 'node:zlib';

// Keep-alive with a bounded pool: a thousand jobs then share a few hundred
// connections instead of opening (and, past maxFreeSockets, closing) one per
// poll; connection churn is what made polls late, not the polls themselves.
const AGENT = { keepAlive: true, maxSockets: 128, maxFreeSockets: 128 };
const agents = {
  'http:': new http.Agent(AGENT),
  'https:': new https.Agent(AGENT),
};

function decode(body, encoding) {
  switch ((encoding ?? '').toLowerCase()) {
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

/** `exchange` over node:http(s): resolves `{status, headers (flat), body, url: null}`. */
export function nodeExchange(request, token, signal) {
  return new Promise((resolve, reject) => {
    const url = new URL(request.url);
    const mod = url.protocol === 'https:' ? https : http;
    const headers = {};
    for (const [k, v] of request.headers) headers[k] = v;
    if (request.auth && token) headers.Authorization = `Bearer ${token}`;
    const req = mod.request(
      url,
      { method: request.method, headers, agent: agents[url.protocol], timeout: request.timeoutMs, signal },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          try {
            const raw = res.rawHeaders;
            const encoding = res.headers['content-encoding'];
            let flat = raw;
            let body = Buffer.concat(chunks);
            if (encoding && encoding.toLowerCase() !== 'identity') {
              // Decoded here, so the engine must not see the encoding header.
              body = decode(body, encoding);
              flat = [];
              for (let i = 0; i < raw.length; i += 2) {
                if (raw[i].toLowerCase() !== 'content-encoding') flat.push(raw[i], raw[i + 1]);
              }
            }
            resolve({ status: res.statusCode, headers: flat, body, url: null });
          } catch (e) {
            reject(e);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no response within ${request.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(request.body ?? undefined);
  });
}
