// issue 12 in JS: SMART Backend Services on the core's TokenSession, signed
// with WebCrypto (or a client secret, client_secret_basic), against the
// reference server's token endpoint (protocol J1–J6).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createPrivateKey } from 'node:crypto';
import { inspect } from 'node:util';
import { FhirAsyncClient, backendServices, AuthError, FhirAsyncError } from 'fhir-async';
import { startServer } from './server.mjs';

const fixtures = new URL('../../tests/server/tests/fixtures/', import.meta.url);
const keys = JSON.parse(readFileSync(new URL('jwks-private.json', fixtures), 'utf8')).keys;
const jwk = (kid) => keys.find((k) => k.kid === kid);
const FAST = { minWaitMs: 20, initialBackoffMs: 20, maxBackoffMs: 200, jitterPercent: 0 };
// A secret Basic must carry form-urlencoded (RFC 6749 §2.3.1).
const SECRET = 's3cr:t/+é';
let srv;

before(async () => {
  // Tokens live 2 s; a job runs 5 s: an export outlives three tokens.
  srv = await startServer([
    '--jwks',
    new URL('jwks.json', fixtures).pathname,
    '--client-secret',
    `client-s=${SECRET}`,
    '--token-ttl',
    '2',
    '--job-ms',
    '5000',
  ]);
});
after(async () => {
  await srv?.stop();
});

for (const kid of ['test-rs384', 'test-es384']) {
  test(`issue 12 (J1–J5): an export outlives three short-lived tokens, ${kid.slice(5).toUpperCase()} signed with WebCrypto`, async () => {
    const before = (await srv.stats()).tokens.issued;
    const auth = backendServices({ clientId: 'client-1', key: jwk(kid), scope: 'system/*.rs' });
    const client = new FhirAsyncClient({ baseUrl: srv.base('bulk'), auth, retry: FAST, timeoutMs: 60_000 });
    const job = await client.export({ types: ['Patient'] });
    const outcome = await job.wait();
    assert.equal(outcome.status, 'completed');
    let n = 0;
    for await (const r of client.resources(outcome)) if (r.resourceType === 'Patient') n++;
    assert.ok(n > 0);
    const issued = (await srv.stats()).tokens.issued - before;
    assert.ok(issued >= 3, `three or more tokens were issued, not ${issued}`);
    // J6: the token (or key material) is never in the saved state.
    const saved = job.toJson();
    assert.doesNotMatch(saved, /eyJ|"d":/, 'no token or key in the saved state');
    assert.doesNotMatch(JSON.stringify(auth), /"d"|eyJ/, 'no key in the auth object\'s JSON');
  });
}

test('issue 12: a wrong key is a typed AuthError (code auth) with the server\'s words, no token in it', async () => {
  const other = createPrivateKey(readFileSync(new URL('other-es384-private.pem', fixtures))).export({ format: 'jwk' });
  const auth = backendServices({ clientId: 'client-1', key: other, kid: 'test-es384', scope: 'system/*.rs' });
  const client = new FhirAsyncClient({ baseUrl: srv.base('bulk'), auth, retry: FAST, timeoutMs: 30_000 });
  const err = await client.export({ types: ['Patient'] }).then(
    (job) => job.wait(),
    (e) => e,
  ).catch((e) => e);
  assert.ok(err instanceof AuthError && err instanceof FhirAsyncError, `got ${err}`);
  assert.equal(err.code, 'auth');
  assert.equal(err.details.error, 'invalid_client');
  assert.ok(err.details.httpStatus >= 400);
  assert.match(err.message, /invalid_client/);
  assert.doesNotMatch(err.message + JSON.stringify(err.details), /eyJ/, 'no assertion or token in the error');
});

test('issue 12: backendServices refuses a missing scope or key (UsageError)', () => {
  assert.throws(() => backendServices({ clientId: 'c', key: jwk('test-rs384') }), /scope/);
  assert.throws(() => backendServices({ clientId: 'c', scope: 's' }), /key/);
  assert.throws(() => backendServices({ clientId: 'c', scope: 's', key: jwk('test-rs384'), clientSecret: 'x' }), /not both/);
});

/** Runs an export with `auth` to the end (or its error). */
async function exportWith(auth, options = {}) {
  const client = new FhirAsyncClient({ baseUrl: srv.base('bulk'), auth, retry: FAST, timeoutMs: 60_000, ...options });
  const job = await client.export({ types: ['Patient'] });
  return { job, outcome: await job.wait() };
}

const failure = (p) => p.then(() => assert.fail('expected an error'), (e) => e);

test('issue 12 (J3 client_secret_basic, J6): a client secret outlives three tokens and never shows', async () => {
  const before = (await srv.stats()).tokens.issued;
  const auth = backendServices({ clientId: 'client-s', clientSecret: SECRET, scope: 'system/*.rs' });
  const { job, outcome } = await exportWith(auth);
  assert.equal(outcome.status, 'completed');
  assert.ok((await srv.stats()).tokens.issued - before >= 3);
  for (const text of [job.toJson(), JSON.stringify(auth), inspect(auth, { showHidden: true, depth: 5 }), String(auth)]) {
    assert.doesNotMatch(text, /s3cr|Basic/, text);
  }
  const wrong = backendServices({ clientId: 'client-s', clientSecret: 'not-the-secret', scope: 'system/*.rs' });
  const err = await failure(exportWith(wrong));
  assert.ok(err instanceof AuthError, `got ${err}`);
  assert.equal(err.details.error, 'invalid_client');
  assert.match(err.message, /check the client id and the client secret/);
  assert.doesNotMatch(err.message + JSON.stringify(err.details) + inspect(err), /not-the-secret|s3cr/);
});

test('issue 12 (J4): a wrong client id is an AuthError carrying the server\'s invalid_client and its words', async () => {
  const auth = backendServices({ clientId: 'nobody', key: jwk('test-es384'), scope: 'system/*.rs' });
  const err = await failure(exportWith(auth));
  assert.ok(err instanceof AuthError, `got ${err}`);
  assert.equal(err.code, 'auth');
  assert.equal(err.details.error, 'invalid_client');
  assert.equal(err.details.httpStatus, 401);
  assert.match(err.details.errorDescription, /nobody/);
  assert.match(err.message, /check the client id/);
});

test('issue 12 (J5): a clock 10 minutes behind is named as the likely cause', async () => {
  // The engine reads no clock: the binding's Date.now() is the client clock; skew it.
  const realNow = Date.now;
  Date.now = () => realNow() - 600_000;
  let err;
  try {
    const auth = backendServices({ clientId: 'client-1', key: jwk('test-es384'), scope: 'system/*.rs' });
    err = await failure(exportWith(auth));
  } finally {
    Date.now = realNow;
  }
  assert.ok(err instanceof AuthError, `got ${err}`);
  assert.match(err.details.errorDescription, /expired/);
  assert.match(err.message, /check the client clock \(a skewed clock is the usual cause\)/);
});

test('issue 12 (J5): a token endpoint down at first (the server\'s token503=2) is retried within the budget', async () => {
  const before = (await srv.stats()).tokens.unavailable;
  const auth = backendServices({ clientId: 'client-1', key: jwk('test-rs384'), scope: 'system/*.rs' });
  const client = new FhirAsyncClient({ baseUrl: srv.base('bulk', 'token503=2;ms=300'), auth, retry: FAST, timeoutMs: 60_000 });
  const outcome = await (await client.export({ types: ['Patient'] })).wait();
  assert.equal(outcome.status, 'completed');
  assert.equal((await srv.stats()).tokens.unavailable - before, 2);
});

test('issue 12 (J5): a token endpoint down during a refresh is retried within the budget', async () => {
  // The first token is issued; when it runs out (2 s) the endpoint answers 503 twice, as an
  // overloaded one does (the server's token503 fault only counts from the first request).
  const seen = [];
  const flaky = async (url, init) => {
    if (String(url).endsWith('/auth/token')) {
      seen.push(seen.length + 1);
      if (seen.length === 2 || seen.length === 3) {
        return new Response('<html><body>503 Service Unavailable</body></html>', { status: 503, headers: { 'content-type': 'text/html' } });
      }
    }
    return fetch(url, init);
  };
  const auth = backendServices({ clientId: 'client-s', clientSecret: SECRET, scope: 'system/*.rs' });
  const { outcome } = await exportWith(auth, { fetch: flaky });
  assert.equal(outcome.status, 'completed');
  assert.ok(seen.length >= 4, `a token, two 503s, a refreshed token: ${seen}`);
});
