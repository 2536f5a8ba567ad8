// issue 11 §4: the core owns every error code; this package maps each one to
// its class exhaustively. A code added to the core and not mapped here fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CORE_CODES, fromCore, FhirAsyncError, AuthError, CallbackError, AbortError } from '../src/errors.js';

const core = (f) => readFileSync(new URL(`../../core/src/${f}`, import.meta.url), 'utf8');
/** The string literals a `fn code(&self)` of `file` returns. */
function codes(file) {
  const src = core(file);
  const out = new Set();
  for (const m of src.matchAll(/pub fn code\(&self\)[^{]*\{([\s\S]*?)\n {4}\}/g)) {
    for (const [, c] of m[1].matchAll(/"([a-z_]+)"/g)) out.add(c);
  }
  return [...out];
}

const sources = [
  ['FhirAsyncError', 'error.rs'],
  ['FhirAsyncError', 'auth/error.rs'],
  ['DownloadError', 'download/error.rs'],
  ['CallbackError', 'callback.rs'],
  ['AttachmentError', 'attachments/decode.rs'],
];

test('issue 11 §4: every code of the core maps to a class of its own (no silent fallback)', () => {
  let n = 0;
  for (const [name, file] of sources) {
    const found = codes(file);
    assert.ok(found.length > 0, `no code() in core/src/${file}`);
    for (const code of found) {
      n++;
      const cls = CORE_CODES[name]?.[code];
      assert.ok(cls, `core code ${code} (${file}) has no class in npm/src/errors.js CORE_CODES.${name}`);
      const e = Object.assign(new Error('m'), { name, code, details: { code } });
      const mapped = fromCore(e);
      assert.ok(mapped instanceof cls && mapped instanceof FhirAsyncError, code);
      assert.equal(mapped.code, code);
      assert.deepEqual(mapped.details, { code });
      assert.deepEqual(mapped.detail, { code }, 'detail stays an alias of details');
    }
  }
  assert.ok(n >= 20, `checked ${n} codes`);
  assert.ok(fromCore(Object.assign(new Error('m'), { name: 'FhirAsyncError', code: 'auth' })) instanceof AuthError);
  assert.ok(fromCore(Object.assign(new Error('m'), { name: 'CallbackError', code: 'malformed' })) instanceof CallbackError);
});

test('issue 11 §4: the table lists no code the core does not have', () => {
  for (const [name, table] of Object.entries(CORE_CODES)) {
    const all = sources.filter(([n]) => n === name).flatMap(([, f]) => codes(f));
    for (const code of Object.keys(table)) assert.ok(all.includes(code), `${name}.${code} is not a core code`);
  }
});

test('issue 11 §4: the internal stop (AbortError, code aborted) is not a server cancel', () => {
  const e = new AbortError('stopped');
  assert.equal(e.code, 'aborted');
  assert.equal(e.name, 'AbortError');
});
