// The published shape: `npm pack`, installed into a fresh project with npm
// (so its dependencies resolve as a user's would; `--prefer-offline` takes
// them from the cache `npm ci` filled), imported by name from Node (the `node`
// condition of the exports map loads the .wasm from disk).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = fileURLToPath(new URL('..', import.meta.url));

test('npm pack → import "fhir-async" in a fresh project', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fhir-async-pack-'));
  try {
    const out = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: pkg, encoding: 'utf8' });
    const tgz = join(dir, out.trim().split('\n').at(-1));
    mkdirSync(join(dir, 'app'));
    writeFileSync(join(dir, 'app', 'package.json'), '{"name":"app","private":true,"type":"module"}');
    execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tgz], {
      cwd: join(dir, 'app'),
      encoding: 'utf8',
    });
    writeFileSync(
      join(dir, 'app', 'main.js'),
      `import { FhirAsyncClient, Job, UsageError } from 'fhir-async';
const job = new Job({ baseUrl: 'https://fhir.example/r4', operation: { type: 'export', types: ['Patient'] } });
const a = job.nextAction(Date.now());
let usage = false;
try { new FhirAsyncClient({}); } catch (e) { usage = e instanceof UsageError && e.code === 'usage'; }
console.log(JSON.stringify({ type: a.type, url: a.request.url, usage }));`,
    );
    const result = JSON.parse(execFileSync(process.execPath, ['main.js'], { cwd: join(dir, 'app'), encoding: 'utf8' }));
    assert.deepEqual(result, { type: 'send', url: 'https://fhir.example/r4/$export?_type=Patient', usage: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
