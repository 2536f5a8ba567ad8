// Runs every shared scenario of tests/vectors/ through the wasm engine
// (the format is in tests/vectors/README.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { Job, parseCallback } from 'fhir-async';
import { subset } from './match.mjs';

const dir = new URL('../../tests/vectors/', import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();


function requestAsObject(action) {
  if (!action.request) return action;
  return { ...action, request: { ...action.request, headers: Object.fromEntries(action.request.headers) } };
}

const enc = new TextEncoder();
function respond(job, id, r, now) {
  const headers = [];
  for (const [k, v] of Object.entries(r.headers ?? {})) {
    for (const item of Array.isArray(v) ? v : [v]) headers.push(k, item);
  }
  const body = r.body == null ? '' : typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
  job.handleResponse(id, r.status, headers, enc.encode(body), r.url ?? null, now);
}

// issue 10 §3 ("tests that cannot fail"): a vector's `transportError` is exactly
// "connect" or "afterSend"; anything else (a typo) fails the vector instead of
// silently reading as after-send.
export function transportErrorKind(value) {
  if (value !== 'connect' && value !== 'afterSend') {
    throw new Error(`unknown transportError ${JSON.stringify(value)} (expected "connect" or "afterSend")`);
  }
  return value;
}

test('issue 10 §9: an unknown transportError value fails the vector', () => {
  assert.equal(transportErrorKind('connect'), 'connect');
  assert.equal(transportErrorKind('afterSend'), 'afterSend');
  for (const typo of ['aftersend', 'after_send', 'Connect', '', null, undefined]) {
    assert.throws(() => transportErrorKind(typo), /unknown transportError/);
  }
});

test('there are vectors', () => assert.ok(files.length >= 30, `only ${files.length} vectors`));

for (const file of files) {
  test(file, () => {
    const v = JSON.parse(readFileSync(new URL(file, dir), 'utf8'));
    let job;
    try {
      job = new Job(v.config);
    } catch (e) {
      assert.ok(v.newError, `new Job failed: ${e.message}`);
      assert.ok(e instanceof Error, 'errors are Error objects');
      subset(v.newError, { code: e.code });
      return;
    }
    assert.equal(v.newError, undefined, 'expected new Job to fail');
    let lastId = null;
    v.steps.forEach((step, i) => {
      const now = step.now;
      const at = `step ${i}${step.note ? ` (${step.note})` : ''}`;
      try {
        if ('expect' in step) {
          let actual;
          try {
            actual = job.nextAction(now);
          } catch (e) {
            assert.ok(e instanceof Error && typeof e.code === 'string', 'engine errors are Errors with a code');
            actual = { type: 'error', code: e.code, error: e.details };
          }
          if (actual.request) lastId = actual.request.id;
          subset(step.expect, requestAsObject(actual), 'action');
        } else if ('respond' in step) {
          assert.notEqual(lastId, null, 'respond without a sent request');
          respond(job, lastId, step.respond, now);
        } else if ('transportError' in step) {
          job.handleTransportError(lastId, transportErrorKind(step.transportError), 'scripted failure', now);
        } else if ('cancel' in step) {
          job.cancel(now);
        } else if ('cleanup' in step) {
          job.cleanup();
        } else if ('refreshManifest' in step) {
          job.refreshManifest(now);
        } else if ('resume' in step) {
          const saved = job.toJson();
          job.free();
          job = Job.fromJson(saved);
        } else if ('callback' in step) {
          const payload = parseCallback(enc.encode(JSON.stringify(step.callback)));
          subset(step.effect, job.handleCallback(payload, now), 'effect');
        } else if ('progress' in step) {
          subset(step.progress, job.progress(now), 'progress');
        } else if ('cancelResult' in step) {
          subset(step.cancelResult, job.cancelResult(), 'cancelResult');
        } else if ('downloadPlan' in step) {
          subset(step.downloadPlan, job.downloadPlan(), 'downloadPlan');
        } else if ('warningsContain' in step) {
          const w = job.warnings();
          assert.ok(w.some((x) => x.includes(step.warningsContain)), `no warning contains ${step.warningsContain}: ${w}`);
        } else {
          throw new Error('unknown step');
        }
      } catch (e) {
        e.message = `${at}: ${e.message}`;
        throw e;
      }
    });
    job.free();
  });
}
