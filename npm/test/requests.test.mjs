// What goes on the wire and what a refusal says (issue 10 §2): the
// User-Agent, a 429 on the kick-off, a refused fixed token, a 410 after the
// manifest was re-fetched.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { FhirAsyncClient, AbortError, RetriesExhaustedError, UnauthorizedError, DownloadError } from 'fhir-async';
import { startServer, until } from './server.mjs';
import { fakeBulk, fakeServer, entries, manifestOf, json, outcome } from './fake.mjs';

const FAST = { minWaitMs: 20, initialBackoffMs: 20, maxBackoffMs: 200, jitterPercent: 0 };
const VERSION = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;
let srv;

before(async () => {
  srv = await startServer(['--patients', '5', '--job-ms', '100']);
});
after(async () => {
  await srv?.stop();
});

const client = (baseUrl, extra = {}) => new FhirAsyncClient({ baseUrl, retry: FAST, timeoutMs: 60_000, ...extra });
async function all(stream) {
  const out = [];
  for await (const r of stream) out.push(r);
  return out;
}

test('issue 10 §2: Node sends User-Agent fhir-async/<version> (node) on kick-off, polls, files and cancel', async () => {
  let polls = 0;
  const fake = await fakeBulk({
    manifest: (s) => manifestOf(entries(s, 'Patient', 2, 1)),
    status: (req, res) => {
      if (++polls > 1) return false;
      res.writeHead(202, { 'retry-after': '0' });
      res.end();
      return true;
    },
    file: (name, req, res) => {
      res.writeHead(200, { 'content-type': 'application/fhir+ndjson' });
      res.end(`{"resourceType":"Patient","id":"${name}"}\n`);
    },
  });
  try {
    const c = client(fake.base);
    const job = await c.export();
    await all(c.resources(await job.wait()));
    const again = await c.export();
    await again.cancel();
    const kinds = new Set(fake.requests.map((r) => `${r.method} ${r.path.split('/')[2].split('?')[0]}`));
    for (const k of ['GET $export', 'GET status', 'GET files', 'DELETE status']) assert.ok(kinds.has(k), `${k} in ${[...kinds]}`);
    for (const r of fake.requests) {
      assert.equal(r.headers['user-agent'], `fhir-async/${VERSION} (node)`, `${r.method} ${r.path}`);
    }
  } finally {
    await fake.close();
  }
});

test('issue 10 §2: export() waits out a 429 on the kick-off, visibly, and resolves once accepted', async () => {
  const c = client(srv.base('bulk', 'kick429=2;retry=0'), { retry: { ...FAST, maxKickoffRetries: 3 } });
  const seen = [];
  const job = await c.export({ types: ['Patient'], onProgress: (p) => seen.push(p) });
  assert.ok(job.statusUrl, 'the status URL is known when export() resolves');
  const waiting = seen.filter((p) => p.phase === 'kickingOff' && p.nextPollAtMs != null);
  assert.equal(waiting.length, 2, 'each 429 wait was reported with the next attempt time');
  assert.ok(waiting.every((p) => p.nextPollInMs >= 0 && p.nextPollInMs <= 1000));
  assert.equal((await job.wait()).status, 'completed');
});

test('issue 10 §2: a kick-off that stays 429 past maxKickoffRetries rejects with RetriesExhaustedError', async () => {
  const c = client(srv.base('bulk', 'kick429=5;retry=0'), { retry: { ...FAST, maxKickoffRetries: 1 } });
  const err = await c.export({ types: ['Patient'] }).catch((e) => e);
  assert.ok(err instanceof RetriesExhaustedError, String(err));
  assert.equal(err.code, 'retries_exhausted');
});

test('issue 10 §2: an AbortSignal ends the wait of a 429 kick-off; the kick-off is not sent again', async () => {
  const fake = await fakeServer((req, res) => json(res, 429, outcome('slow down', 'throttled'), { 'retry-after': '30' }));
  try {
    const c = client(fake.base);
    const ac = new AbortController();
    const started = Date.now();
    const err = await c
      .export({
        signal: ac.signal,
        onProgress: (p) => {
          if (p.phase === 'kickingOff' && p.nextPollInMs > 20_000) ac.abort();
        },
      })
      .catch((e) => e);
    assert.ok(err instanceof AbortError, String(err));
    assert.ok(Date.now() - started < 10_000, 'not after the 30 s Retry-After');
    await until(() => c._live.size === 0, { what: 'the job to end' });
    assert.equal(fake.requests.length, 1, 'one kick-off only');
  } finally {
    await fake.close();
  }
});

test('issue 10 §2: a refused fixed token is sent once; the error carries the server text', async () => {
  const refuse = (res) =>
    json(res, 401, outcome('Invalid token jwt malformed', 'login'), { 'www-authenticate': 'Bearer error="invalid_token"' });
  // On the kick-off.
  const kick = await fakeServer((req, res) => refuse(res));
  try {
    const err = await client(kick.base, { token: 'not-a-jwt' }).export().catch((e) => e);
    assert.ok(err instanceof UnauthorizedError, String(err));
    assert.match(err.message, /Invalid token jwt malformed/);
    assert.match(err.message, /fixed string/);
    assert.doesNotMatch(err.message, /after a token refresh/);
    assert.doesNotMatch(err.message, /not-a-jwt/, 'never the token');
    assert.equal(kick.requests.length, 1, 'the fixed token went out once');
    assert.equal(kick.requests[0].headers.authorization, 'Bearer not-a-jwt');
  } finally {
    await kick.close();
  }
  // On a file that requires the token.
  const fake = await fakeBulk({
    manifest: (s) => ({ ...manifestOf(entries(s, 'Patient', 2, 1)), requiresAccessToken: true }),
    file: (name, req, res) => {
      if (name.startsWith('Patient-0')) return refuse(res);
      res.writeHead(200, { 'content-type': 'application/fhir+ndjson' });
      res.end(`{"resourceType":"Patient","id":"${name}"}\n`);
    },
  });
  try {
    const c = client(fake.base, { token: 'not-a-jwt' });
    const stream = c.resources(await (await c.export()).wait());
    assert.equal((await all(stream)).length, 1, 'the other file arrived');
    const bad = stream.stats.files.find((f) => f.error);
    assert.ok(bad.error instanceof DownloadError, String(bad.error));
    assert.equal(bad.error.code, 'unauthorized');
    assert.match(bad.error.message, /Invalid token jwt malformed/);
    assert.match(bad.error.message, /fixed string/);
    assert.equal(fake.to('/fhir/files/Patient-0').length, 1, 'the fixed token went out once');
  } finally {
    await fake.close();
  }
});

test('issue 10 §2: a 410 after the manifest was re-fetched says so, with the server text', async () => {
  const fake = await fakeBulk({
    manifest: (s) => manifestOf(entries(s, 'Patient', 1, 1)),
    file: (name, req, res) => json(res, 410, outcome('Link expired at 12:00, ask again', 'expired')),
  });
  try {
    const c = client(fake.base);
    const job = await c.export();
    const stream = c.resources(await job.wait());
    await all(stream);
    const [report] = stream.stats.files;
    assert.equal(report.error.code, 'http');
    assert.equal(report.error.details.status, 410);
    assert.equal(report.error.details.manifestRefreshed, true);
    assert.match(report.error.message, /re-fetched/);
    assert.match(report.error.message, /Link expired at 12:00, ask again/);
    assert.equal(fake.to('/fhir/status').length, 2, 'the manifest was re-fetched once');
    assert.equal(fake.to('/fhir/files/').length, 2, 'the file was asked twice (old link, fresh link)');
  } finally {
    await fake.close();
  }
});
