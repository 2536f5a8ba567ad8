// Runs every authorization scenario of tests/vectors/auth/ through the wasm
// `TokenSession` (SMART Backend Services, protocol J; the format is in
// tests/vectors/README.md), the same files the Rust suite runs through the core.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { TokenSession } from 'fhir-async';
import { subset } from './match.mjs';

const dir = new URL('../../tests/vectors/auth/', import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
const enc = new TextEncoder();

const part = (input, i) => JSON.parse(Buffer.from(input.split('.')[i], 'base64url').toString('utf8'));

function asObject(step) {
  if (!step.request) return step;
  return { ...step, request: { ...step.request, headers: Object.fromEntries(step.request.headers) } };
}

test('there are auth vectors', () => assert.ok(files.length >= 6, `only ${files.length}`));

for (const file of files) {
  test(file, () => {
    const v = JSON.parse(readFileSync(new URL(file, dir), 'utf8'));
    const c = v.config;
    const s = new TokenSession(v.baseUrl, c.clientId, c.scope, c.alg ?? null, c.tokenUrl ?? null, c.kid ?? null, v.nonce, c.clientSecret ?? null);
    let lastId = null;
    let lastBody = '';
    const inputs = [];
    let lastError = null;
    v.steps.forEach((step, i) => {
      const now = step.now;
      try {
        if ('expect' in step) {
          let actual;
          try {
            actual = s.next(now);
          } catch (e) {
            assert.ok(e instanceof Error && e.code === 'auth', `an auth error, got ${e}`);
            lastError = e;
            actual = { type: 'error', code: e.code, error: e.details };
          }
          if (actual.request) {
            lastId = actual.request.id;
            lastBody = actual.request.body ?? '';
          }
          if (actual.signingInput) inputs.push(actual.signingInput);
          subset(step.expect, asObject(actual), 'step');
        } else if ('respond' in step) {
          const r = step.respond;
          const body = r.body == null ? '' : typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
          try {
            s.handleResponse(lastId, r.status, [], enc.encode(body), now);
          } catch (e) {
            lastError = e;
          }
        } else if ('transportError' in step) {
          try {
            s.handleTransportError(lastId, step.transportError, now);
          } catch (e) {
            lastError = e;
          }
        } else if ('signed' in step) {
          s.signed(Uint8Array.from(Buffer.from(step.signed, 'base64')));
        } else if ('invalidate' in step) {
          s.invalidate();
        } else if ('token' in step) {
          assert.equal(s.token(now) ?? null, step.token);
        } else if ('grantedScope' in step) {
          // The wasm session does not expose the scope: the Rust runner checks it.
        } else if ('header' in step) {
          subset(step.header, part(inputs.at(-1), 0), 'header');
        } else if ('claims' in step) {
          subset(step.claims, part(inputs.at(-1), 1), 'claims');
        } else if ('claimsDifferFromFirst' in step) {
          const k = step.claimsDifferFromFirst;
          assert.notEqual(part(inputs[0], 1)[k], part(inputs.at(-1), 1)[k], `${k} was reused`);
        } else if ('form' in step) {
          subset(step.form, Object.fromEntries(new URLSearchParams(lastBody)), 'form');
        } else if ('errorMessageContains' in step) {
          assert.ok(lastError && String(lastError.message).includes(step.errorMessageContains), `${lastError}`);
        } else {
          throw new Error(`unknown step ${JSON.stringify(step)}`);
        }
      } catch (e) {
        e.message = `step ${i}: ${e.message}`;
        throw e;
      }
    });
  });
}
