// Issue 23, "the same options in Node where they apply": how the client reaches servers.
// Node's fetch (undici) has no CA or proxy option of its own, so the client takes none:
// CAs come from NODE_EXTRA_CA_CERTS (Node's own), and a proxy is a `fetch` option the
// caller brings (undici's ProxyAgent, README "Proxies and private CAs"). These tests show
// that a custom `fetch` carries every request (kick-off, status, manifest, files,
// discovery, token) and that the README's ProxyAgent recipe exports through a proxy.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { fetch as undiciFetch, ProxyAgent } from 'undici';
import { FhirAsyncClient, backendServices } from 'fhir-async';
import { startServer } from './server.mjs';

const FAST = { minWaitMs: 20, initialBackoffMs: 20, maxBackoffMs: 200, jitterPercent: 0 };
const SECRET = 's3cret';
let srv;

before(async () => {
  srv = await startServer(['--job-ms', '200', '--retry-after', '0', '--patients', '7', '--client-secret', `client-s=${SECRET}`]);
});
after(async () => {
  await srv?.stop();
});

const auth = () => backendServices({ clientId: 'client-s', clientSecret: SECRET, scope: 'system/*.rs' });

/** Exports Patients and reads every resource; the outcome and the resource count. */
async function exportAll(client) {
  const job = await client.export({ types: ['Patient'] });
  const outcome = await job.wait();
  assert.equal(outcome.status, 'completed', JSON.stringify(outcome).slice(0, 300));
  let n = 0;
  for await (const r of client.resources(outcome)) if (r.resourceType === 'Patient') n++;
  return { job, outcome, n };
}

test('issue 23: a custom fetch carries every request: kick-off, status, manifest, files, discovery, token', async () => {
  await srv.reset();
  const seen = [];
  const recording = (url, init = {}) => {
    seen.push({ method: init.method ?? 'GET', url: String(url) });
    return fetch(url, init);
  };
  const client = new FhirAsyncClient({ baseUrl: srv.base('bulk'), auth: auth(), fetch: recording, retry: FAST, timeoutMs: 60_000 });
  const { job, outcome, n } = await exportAll(client);
  assert.equal(n, 7);
  const urls = seen.map((r) => r.url);
  assert.ok(urls.some((u) => u.includes('smart-configuration')), `discovery: ${urls}`);
  assert.ok(seen.some((r) => r.method === 'POST' && r.url.endsWith('/auth/token')), `token: ${urls}`);
  assert.ok(urls.some((u) => u.includes('$export')), `kick-off: ${urls}`);
  // The status URL is polled, and its last answer is the manifest.
  assert.ok(urls.filter((u) => u === job.statusUrl).length >= 1, `status/manifest: ${urls}`);
  for (const file of outcome.manifest.output) assert.ok(urls.includes(file.url), `file ${file.url}: ${urls}`);
  // Nothing went around it: the server answered exactly the requests the fetch sent.
  assert.equal((await srv.stats()).total, seen.length, urls.join('\n'));
});

/** A loopback HTTP proxy: `CONNECT 127.0.0.1:port` tunnels; counts the requests inside them. */
async function startProxy() {
  const sent = [];
  const sockets = new Set();
  const server = net.createServer((conn) => {
    sockets.add(conn);
    let head = Buffer.alloc(0);
    const onHead = (chunk) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      conn.off('data', onHead);
      const m = /^CONNECT (127\.0\.0\.1):(\d+) HTTP\/1\.[01]$/.exec(head.subarray(0, head.indexOf('\r\n')).toString('latin1'));
      if (!m) return conn.end('HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n');
      const stream = { bytes: [head.subarray(end + 4)] };
      sent.push(stream);
      const up = net.connect(Number(m[2]), m[1], () => {
        conn.write('HTTP/1.1 200 Connection established\r\n\r\n');
        if (stream.bytes[0].length) up.write(stream.bytes[0]);
        conn.on('data', (d) => {
          stream.bytes.push(d);
          up.write(d);
        });
        up.pipe(conn);
      });
      sockets.add(up);
      for (const [a, b] of [[conn, up], [up, conn]]) {
        a.on('error', () => b.destroy());
        a.on('close', () => b.destroy());
      }
    };
    conn.on('data', onHead);
    conn.on('error', () => {});
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    tunnels: () => sent.length,
    /** [method, path] of every request the tunnels carried. */
    requests() {
      const out = [];
      for (const s of sent) {
        const data = Buffer.concat(s.bytes);
        let pos = 0;
        for (let end; (end = data.indexOf('\r\n\r\n', pos)) >= 0; ) {
          const lines = data.subarray(pos, end).toString('latin1').split('\r\n');
          const [method, path] = lines[0].split(' ');
          out.push([method, path]);
          const cl = lines.find((l) => /^content-length:/i.test(l));
          pos = end + 4 + (cl ? Number(cl.split(':')[1]) : 0);
        }
      }
      return out;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

test("issue 23: the README's proxy recipe (undici's ProxyAgent through `fetch`) exports through a proxy", async () => {
  await srv.reset();
  const proxy = await startProxy();
  const dispatcher = new ProxyAgent(proxy.url);
  try {
    const client = new FhirAsyncClient({
      baseUrl: srv.base('bulk'),
      auth: auth(),
      fetch: (u, init) => undiciFetch(u, { ...init, dispatcher }),
      retry: FAST,
      timeoutMs: 60_000,
    });
    const { n } = await exportAll(client);
    assert.equal(n, 7);
    assert.ok(proxy.tunnels() >= 1, 'no CONNECT reached the proxy');
    const reqs = proxy.requests();
    assert.equal(reqs.length, (await srv.stats()).total, JSON.stringify(reqs));
    for (const part of ['smart-configuration', '/auth/token', '$export', '/Patient']) {
      assert.ok(reqs.some(([, p]) => p.includes(part)), `${part}: ${JSON.stringify(reqs)}`);
    }
  } finally {
    await dispatcher.close();
    await proxy.stop();
  }
});
