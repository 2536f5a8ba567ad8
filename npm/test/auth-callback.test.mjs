// Tokens (where they may go, refresh on 401) and callbacks (verify, wake early).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import {
  FhirAsyncClient,
  verifyCallback,
  CallbackError,
  DownloadError,
  UnauthorizedError,
} from 'fhir-async';
import { startServer } from './server.mjs';

const FAST = { minWaitMs: 20, initialBackoffMs: 20, maxBackoffMs: 200, jitterPercent: 0 };
const SECRET = 'fhir-async-demo-secret';
let srv;
before(async () => {
  srv = await startServer(['--patients', '10', '--job-ms', '200', '--token', 'T']);
});
after(async () => {
  await srv?.stop();
});

async function drain(stream) {
  const ids = new Set();
  for await (const r of stream) ids.add(`${r.resourceType}/${r.id}`);
  return ids;
}

test('the token goes to the FHIR origin and never to the storage origin', async () => {
  await srv.reset();
  // Bulk on the main origin: files need the token and get it.
  const c = new FhirAsyncClient({ baseUrl: srv.base('bulk', 'retry=0'), token: 'T', retry: FAST });
  const o = await (await c.export()).wait();
  assert.equal(o.status, 'completed');
  const ids = await drain(c.resources(o));
  assert.ok(ids.size > 0);
  // Medplum: Binary outputs relative to the FHIR base, sent with the token (issue 10 §1).
  const m = new FhirAsyncClient({ baseUrl: srv.base('medplum', 'retry=0'), token: 'T', retry: FAST });
  const mo = await (await m.export()).wait();
  assert.equal((await drain(m.resources(mo))).size, ids.size);
  // Bulk with files on storage and requiresAccessToken: refused rather than leaked
  // (each file is a per-file report, issue 10 §4).
  const s = new FhirAsyncClient({ baseUrl: srv.base('bulk', 'retry=0;storage'), token: 'T', retry: FAST });
  const so = await (await s.export()).wait();
  const blocked = s.resources(so);
  assert.equal((await drain(blocked)).size, 0);
  assert.ok(blocked.stats.files.length > 0);
  for (const f of blocked.stats.files) {
    assert.ok(f.error instanceof DownloadError, String(f.error));
    assert.equal(f.error.code, 'blocked');
  }
  const stats = await srv.stats();
  assert.equal(stats.storage_requests_with_authorization, 0);
  // Only an explicit allowedOrigins entry lets the token go there (and presigned
  // storage, like S3, refuses a request that carries both).
  const a = new FhirAsyncClient({ baseUrl: srv.base('bulk', 'retry=0;storage'), token: 'T', retry: FAST, allowedOrigins: [srv.storage] });
  const ao = await (await a.export()).wait();
  const refused = a.resources(ao);
  await drain(refused);
  const aerr = refused.stats.files[0].error;
  assert.ok(aerr instanceof DownloadError && aerr.code === 'http', String(aerr));
  assert.ok((await srv.stats()).storage_requests_with_authorization > 0);
});

test('a token function is asked again after a 401, once', async () => {
  const given = [];
  const c = new FhirAsyncClient({
    baseUrl: srv.base('bulk', 'retry=0'),
    token: async () => {
      given.push(given.length === 0 ? 'stale' : 'T');
      return given.at(-1);
    },
    retry: FAST,
  });
  const o = await (await c.export()).wait();
  assert.equal(o.status, 'completed');
  assert.deepEqual(given, ['stale', 'T']);
  const bad = new FhirAsyncClient({ baseUrl: srv.base('bulk', 'retry=0'), token: 'wrong', retry: FAST });
  const e = await bad.export().then((j) => j.wait()).catch((x) => x);
  assert.ok(e instanceof UnauthorizedError, String(e));
  assert.equal(e.code, 'unauthorized');
});

test('a signed callback wakes the job long before its next poll', async () => {
  let client;
  const received = [];
  const receiver = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      try {
        received.push(client.handleCallback(body, req.headers, SECRET));
        res.writeHead(204).end();
      } catch (e) {
        received.push(e);
        res.writeHead(400).end();
      }
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  const cb = `http://127.0.0.1:${receiver.address().port}/cb`;
  try {
    // Retry-After: 30 s; only the callback can finish this within the test.
    client = new FhirAsyncClient({ baseUrl: srv.base('aidbox', 'retry=30;ms=300'), token: 'T', retry: FAST });
    const job = await client.kickoff({ method: 'GET', path: 'Patient?_count=2', callbackUrl: cb });
    const started = Date.now();
    const outcome = await job.wait({ signal: AbortSignal.timeout(10_000) });
    assert.equal(outcome.status, 'completed');
    assert.ok(Date.now() - started < 10_000);
    assert.equal(received.length, 1);
    assert.equal(received[0].payload.status, 'completed');
    assert.equal(received[0].woken, 1);
  } finally {
    await new Promise((r) => receiver.close(r));
  }
});

test('verifyCallback refuses a bad signature and accepts a good one', () => {
  const body = JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'status', valueCode: 'completed' }] });
  const e = (() => {
    try {
      verifyCallback(body, { 'x-signature': 'sha256=00' }, SECRET);
    } catch (x) {
      return x;
    }
  })();
  assert.ok(e instanceof CallbackError);
  assert.equal(e.code, 'bad_signature');
  assert.equal(e.name, 'CallbackError');
  const e2 = (() => {
    try {
      verifyCallback(body, {}, SECRET);
    } catch (x) {
      return x;
    }
  })();
  assert.equal(e2.code, 'bad_signature');
});
