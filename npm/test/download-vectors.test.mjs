// Runs every download scenario of tests/vectors/downloads/ through the wasm
// `Downloads` coordinator (the format is in tests/vectors/README.md), the same
// files the Rust suite runs through the core: issue 11 §1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { Job, Downloads } from 'fhir-async';
import { subset } from './match.mjs';
import { itemsOf } from '../src/file.js';

const dir = new URL('../../tests/vectors/downloads/', import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
const enc = new TextEncoder();

/** Answers the job's next status poll with `manifest` (the kick-off first, if not yet sent). */
function deliver(job, manifest) {
  for (;;) {
    const a = job.nextAction(Number.MAX_SAFE_INTEGER / 4);
    assert.equal(a.type, 'send', `expected a request, got ${JSON.stringify(a)}`);
    if (a.request.kind === 'kickoff') {
      job.handleResponse(a.request.id, 202, ['Content-Location', 'https://fhir.example/r4/status/1'], new Uint8Array(), null, 0);
    } else {
      job.handleResponse(a.request.id, 200, [], enc.encode(JSON.stringify(manifest)), null, 0);
      return;
    }
  }
}

function flat(headers) {
  return Object.entries(headers ?? {}).flatMap(([k, v]) => [k, String(v)]);
}

function asObject(step) {
  if (!step.request) return step;
  return { ...step, request: { ...step.request, headers: Object.fromEntries(step.request.headers) } };
}

function bytes(body) {
  if (typeof body.text === 'string') return enc.encode(body.text);
  return Uint8Array.from(Buffer.from(body.base64, 'base64'));
}

test('there are download vectors', () => assert.ok(files.length >= 7, `only ${files.length}`));

for (const file of files) {
  const v = JSON.parse(readFileSync(new URL(file, dir), 'utf8'));
  // The wasm engine has no gzip decoder: fetch decodes Content-Encoding itself.
  // A stream cannot take lines back: the package never starts a changed file over
  // (`restartChanged` is for folder downloads; K7).
  const skip = v.needsGzip
    ? 'gzip is decoded by fetch in the wasm build'
    : v.options?.restartChanged
      ? 'restartChanged is for folder downloads: a stream fails a changed file (file_changed)'
      : false;
  test(file, { skip }, () => {
    const job = new Job(v.config);
    deliver(job, v.manifest);
    const o = v.options ?? {};
    const d = new Downloads(
      job,
      o.kinds ?? ['output', 'error', 'deleted'],
      o.types ?? [],
      o.maxPerOrigin, // undefined: the core's default
      o.countCheck ?? 'strict',
      o.invalidLines ?? 'report',
      o.maxLine ?? 0,
      o.skipFiles ?? [],
      o.expiresAtMs ?? 0,
      o.gzip ?? true, // the core's default, as core/tests/download_vectors.rs runs them
      false, // saveProgress
    );
    const ids = new Map();
    const lines = {};
    // As the package does (download.js): the core marks a bad line (its default validation), JS reports it back.
    const collect = (f, text) => {
      lines[f] ??= [];
      if (!text) return;
      const got = text.split('\n');
      const first = lines[f].length + 1;
      itemsOf(got, 'json', null, (k, message) => d.reportInvalidLine(f, first + k, message));
      lines[f].push(...got);
    };
    const id = (f) => {
      assert.ok(ids.has(f), `no request sent for file ${f}`);
      return ids.get(f);
    };
    v.steps.forEach((step, i) => {
      const now = step.now;
      try {
        if ('expect' in step) {
          const actual = d.next(now);
          if (actual.type === 'send') ids.set(actual.file, actual.request.id);
          subset(step.expect, asObject(actual), 'step');
        } else if ('head' in step) {
          const h = step.head;
          const got = d.handleHead(h.file, id(h.file), h.status, flat(h.headers), false, now);
          if (step.decision) assert.equal(got, step.decision);
        } else if ('body' in step) {
          collect(step.body.file, d.feed(step.body.file, id(step.body.file), bytes(step.body), now));
        } else if ('end' in step) {
          collect(step.end.file, d.finish(step.end.file, id(step.end.file), now));
        } else if ('transportError' in step) {
          const t = step.transportError;
          d.handleTransportError(t.file, id(t.file), t.message ?? 'scripted', now);
        } else if ('manifestRefreshed' in step) {
          job.refreshManifest(now);
          deliver(job, step.manifestRefreshed);
          d.manifestRefreshed(job);
        } else if ('manifestRefreshFailed' in step) {
          d.manifestRefreshed(job, step.manifestRefreshFailed);
        } else if ('tokenRefreshed' in step) {
          d.tokenRefreshed();
        } else if ('tokenUnavailable' in step) {
          d.tokenUnavailable(step.tokenUnavailable);
        } else if ('lines' in step) {
          subset(step.lines, lines, 'lines');
        } else if ('lineCounts' in step) {
          subset(step.lineCounts, Object.fromEntries(Object.entries(lines).map(([k, l]) => [k, l.length])), 'lineCounts');
        } else if ('results' in step) {
          const results = [];
          for (let f = 0; f < d.length; f++) {
            const r = d.result(f);
            // An error is matched by its code, message and fields (its `details`).
            if (r) results.push(r.error ? { ...r, error: { ...r.error.details, code: r.error.code, message: r.error.message } } : r);
          }
          subset(step.results, results, 'results');
        } else if ('progress' in step) {
          subset(step.progress, d.progress(), 'progress');
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
