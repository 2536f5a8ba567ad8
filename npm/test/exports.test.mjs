// The hand-written declarations and the runtime agree on what is exported,
// and on the methods of the classes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as api from 'fhir-async';

const dts = readFileSync(new URL('../index.d.ts', import.meta.url), 'utf8');

test('every runtime export is declared, every declared value exists', () => {
  const declared = new Set([...dts.matchAll(/^export declare (?:class|function|const) (\w+)/gm)].map((m) => m[1]));
  const runtime = new Set(Object.keys(api));
  assert.deepEqual([...runtime].filter((n) => !declared.has(n)).sort(), [], 'exported but not declared');
  assert.deepEqual([...declared].filter((n) => !runtime.has(n)).sort(), [], 'declared but not exported');
});

function declaredMembers(cls) {
  const start = dts.indexOf(`export declare class ${cls} `);
  const body = dts.slice(dts.indexOf('{', start) + 1, dts.indexOf('\n}', start));
  return new Set([...body.matchAll(/^  (?:static |readonly )?(\w+)[(:<?]/gm)].map((m) => m[1]).filter((n) => n !== 'constructor'));
}

for (const [cls, proto] of [
  ['Job', api.Job.prototype],
  ['Downloads', api.Downloads.prototype],
  ['Hydrator', api.Hydrator.prototype],
  ['TokenSession', api.TokenSession.prototype],
  ['AsyncJob', api.AsyncJob.prototype],
  ['FhirAsyncClient', api.FhirAsyncClient.prototype],
]) {
  test(`${cls}: declared members exist at runtime`, () => {
    const members = declaredMembers(cls);
    assert.ok(members.size >= 5, `parsed ${members.size} members of ${cls}`);
    const missing = [...members].filter((m) => !(m in proto) && !(m in api[cls]));
    assert.deepEqual(missing, []);
  });
}
