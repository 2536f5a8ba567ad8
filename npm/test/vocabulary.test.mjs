// issue 11 §3: docs/api.md's table is the one vocabulary; every JS name its
// JS column lists exists on the package's exports, classes or declared types.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as api from 'fhir-async';

const doc = readFileSync(new URL('../../docs/api.md', import.meta.url), 'utf8');
const dts = readFileSync(new URL('../index.d.ts', import.meta.url), 'utf8');
const errorsJs = readFileSync(new URL('../src/errors.js', import.meta.url), 'utf8');

/** The JS column's code spans, by concept. */
function jsCells() {
  const rows = doc.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| concept') && !l.startsWith('|---'));
  return rows.map((row) => {
    // `\|` inside a cell is a literal bar
    const cells = row.replace(/\\\|/g, '\u0000').split('|').map((c) => c.trim().replace(/\u0000/g, '|'));
    return { concept: cells[1], js: cells[3] ?? '' };
  });
}

/** Whether `name` is declared as a member or option in index.d.ts. */
const declared = (name) => new RegExp(`\\b${name}\\??[:(]`).test(dts);

const holders = {
  client: () => api.FhirAsyncClient.prototype,
  job: () => api.AsyncJob.prototype,
  error: () => new api.FhirAsyncError('x'),
};
const declaredOn = { result: 'Outcome', outcome: 'Outcome', report: 'FileReport' };

function checkSpan(span) {
  if (/[/<]/.test(span)) return null; // a User-Agent pattern, not a name
  // an error code (`aborted`): the package must use it
  if (/^[a-z_]+$/.test(span) && !declared(span) && !(span in holders.error())) {
    return errorsJs.includes(`'${span}'`) ? null : `code ${span}`;
  }
  const m = /^(?:new\s+)?([A-Za-z_]\w*)((?:\.\w+)*)/.exec(span);
  if (!m) return null; // not a name (`['output']`, a User-Agent string, ...)
  const [, head, path] = m;
  const member = path.split('.').filter(Boolean)[0];
  if (head in api) {
    if (!member) return null;
    const v = api[head];
    return member in v || member in (v.prototype ?? {}) ? null : `${head}.${member}`;
  }
  if (head in holders) return member === undefined || member in holders[head]() ? null : `${head}.${member}`;
  if (head in declaredOn) {
    const body = dts.slice(dts.indexOf(`interface ${declaredOn[head]} `));
    const block = body.slice(0, body.indexOf('\n}'));
    return new RegExp(`\\b${member}\\??:`).test(block) ? null : `${head}.${member} (${declaredOn[head]})`;
  }
  if (head in globalThis) return null; // a platform name (AbortSignal)
  if (['true', 'false'].includes(head)) return null;
  return declared(head) ? null : head; // an option name
}

test('issue 11 §3: every JS name of docs/api.md exists', () => {
  const cells = jsCells();
  assert.ok(cells.length > 30, `parsed ${cells.length} rows`);
  const missing = [];
  let names = 0;
  for (const { concept, js } of cells) {
    for (const [, span] of js.matchAll(/`([^`]+)`/g)) {
      names++;
      const bad = checkSpan(span);
      if (bad) missing.push(`${concept}: ${bad}`);
    }
  }
  assert.ok(names > 40, `checked ${names} names`);
  assert.deepEqual(missing, []);
});
