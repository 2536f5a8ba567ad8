// A scripted FHIR server on 127.0.0.1 port 0, for behaviours the reference
// server does not produce (hostile bodies, refused tokens, a 429 that never
// ends). Records every request; `route(req, res, body)` answers.
import { createServer } from 'node:http';

export async function fakeServer(route) {
  const requests = [];
  const server = createServer((req, res) => {
    const parts = [];
    req.on('data', (c) => parts.push(c));
    req.on('end', () => {
      const rec = { method: req.method, path: req.url, headers: req.headers };
      requests.push(rec);
      Promise.resolve(route(req, res, Buffer.concat(parts), rec)).catch((e) => {
        if (!res.headersSent) res.writeHead(500);
        res.end(String(e));
      });
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    base: `${origin}/fhir`,
    requests,
    /** Requests whose path starts with `prefix`. */
    to(prefix) {
      return requests.filter((r) => r.path.startsWith(prefix));
    },
    async close() {
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export const json = (res, status, body, headers = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};

export const outcome = (text, code = 'processing') => ({
  resourceType: 'OperationOutcome',
  issue: [{ severity: 'error', code, diagnostics: text }],
});

/**
 * A bulk export server: kick-off at `/fhir/$export` (202), status at
 * `/fhir/status` (200 with `manifest()`), files under `/fhir/files/` served by
 * `file(name, req, res)`. `kickoff(req, res)` may answer instead (return true).
 */
export async function fakeBulk({ manifest, file, kickoff, status }) {
  let srv;
  srv = await fakeServer((req, res, body, rec) => {
    if (req.url.startsWith('/fhir/$export')) {
      if (kickoff?.(req, res)) return;
      res.writeHead(202, { 'content-location': `${srv.base}/status` });
      return res.end();
    }
    if (req.url.startsWith('/fhir/status')) {
      if (req.method === 'DELETE') {
        res.writeHead(202);
        return res.end();
      }
      if (status?.(req, res)) return;
      return json(res, 200, manifest(srv));
    }
    if (req.url.startsWith('/fhir/files/')) return file(req.url.slice('/fhir/files/'.length), req, res, rec);
    res.writeHead(404);
    res.end();
  });
  return srv;
}

/** A manifest entry list: `n` files `name(i)` of `type` with `count` resources each. */
export function entries(srv, type, n, count) {
  return Array.from({ length: n }, (_, i) => ({ type, url: `${srv.base}/files/${type}-${i}.ndjson`, count }));
}

export const manifestOf = (output, error = []) => ({
  transactionTime: '2026-01-01T00:00:00Z',
  request: 'x',
  requiresAccessToken: false,
  output,
  error,
});
