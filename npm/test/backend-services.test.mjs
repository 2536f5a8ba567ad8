// issue 12 in JS: SMART Backend Services on the core's TokenSession, signed
// with WebCrypto, against the reference server's token endpoint (protocol J1–J6).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createPrivateKey } from 'node:crypto';
import { FhirAsyncClient, backendServices, AuthError, FhirAsyncError } from 'fhir-async';
import { startServer } from './server.mjs';

const fixtures = new URL('../../tests/server/tests/fixtures/', import.meta.url);
const keys = JSON.parse(readFileSync(new URL('jwks-private.json', fixtures), 'utf8')).keys;
const jwk = (kid) => keys.find((k) => k.kid === kid);
const FAST = { minWaitMs: 20, initialBackoffMs: 20, maxBackoffMs: 200, jitterPercent: 0 };
let srv;

before(async () => {
  // Tokens live 2 s; a job runs 5 s: an export outlives three tokens.
  srv = await startServer(['--jwks', new URL('jwks.json', fixtures).pathname, '--token-ttl', '2', '--job-ms', '5000']);
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
});
