// The browser example (examples/browser/) in headless Chromium, against the
// reference server: progress to 100 %, counts = manifest, Cancel, screenshot,
// and the CORS error when the server hides Content-Location.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFile, mkdtemp, mkdir, rm, writeFile, copyFile, symlink } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, normalize, extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from './server.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };

let bundleDir = null; // served at /bundle/ (the esbuild smoke test)

/** Serves /examples/browser/ and /npm/ of the repository on loopback. */
async function staticServer() {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    const allowed =
      path.startsWith('/examples/browser/') || path.startsWith('/npm/src/') || path.startsWith('/npm/wasm/') || (bundleDir && path.startsWith('/bundle/'));
    let file = path.startsWith('/bundle/') ? join(bundleDir, path.slice('/bundle/'.length)) : join(root, path);
    if (path.endsWith('/')) file = join(file, 'index.html');
    if (!allowed || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': MIME[extname(file)] ?? 'application/octet-stream' });
    res.end(await readFile(file));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

let web, srv, hidden, context, profile;
before(async () => {
  web = await staticServer();
  srv = await startServer(['--patients', '30', '--job-ms', '1500']);
  hidden = await startServer(['--patients', '5', '--no-expose-headers']);
  profile = await mkdtemp(join(tmpdir(), 'fhir-async-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
after(async () => {
  await context?.close();
  await Promise.all([srv?.stop(), hidden?.stop(), web?.close()]);
  if (profile) await rm(profile, { recursive: true, force: true });
  if (bundleDir) await rm(bundleDir, { recursive: true, force: true });
});

async function open(base) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(`${web.url}/examples/browser/?base=${encodeURIComponent(base)}`);
  return { page, errors };
}

test('export in the browser: live progress, counts match the manifest, screenshot', async () => {
  const { page, errors } = await open(srv.base('bulk', 'retry=0;ms=1500'));
  await page.click('#start');
  // The X-Progress text shows up while the job runs.
  await page.waitForFunction(() => /%|complete|progress/i.test(document.getElementById('progress-text').textContent), null, { timeout: 15_000 });
  await page.waitForSelector('#status[data-state="done"], #status[data-state="error"]', { timeout: 30_000 });
  const status = await page.textContent('#status');
  assert.equal(await page.getAttribute('#status', 'data-state'), 'done', status);
  assert.equal(await page.$eval('#bar', (b) => b.value), 100);
  const rows = await page.$$eval('#counts tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.ok(rows.length >= 3, `rows: ${JSON.stringify(rows)}`);
  for (const [type, expected, got] of rows) assert.equal(got, expected, `${type}: downloaded = manifest`);
  await mkdir(join(root, 'artifacts'), { recursive: true });
  await page.screenshot({ path: join(root, 'artifacts', 'browser.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('Cancel in the browser', async () => {
  const { page } = await open(srv.base('bulk', 'never;retry=0'));
  await page.click('#start');
  await page.waitForSelector('#status[data-state="polling"]', { timeout: 15_000 });
  await page.click('#cancel');
  await page.waitForSelector('#status[data-state="cancelled"], #status[data-state="error"]', { timeout: 15_000 });
  assert.match(await page.textContent('#status'), /Cancelled \(cancelled\)/);
  await page.close();
});

test('without Access-Control-Expose-Headers the error says CORS hides Content-Location', async () => {
  const { page } = await open(hidden.base('bulk', 'retry=0'));
  await page.click('#start');
  await page.waitForSelector('#status[data-state="error"]', { timeout: 15_000 });
  const text = await page.textContent('#status');
  assert.match(text, /ProtocolError \(protocol\)/);
  assert.match(text, /Access-Control-Expose-Headers/);
  await page.close();
});

test('bundled by esbuild (the "default" export condition, top-level await, the .wasm by URL)', async () => {
  const { build } = await import('esbuild');
  bundleDir = await mkdtemp(join(tmpdir(), 'fhir-async-bundle-'));
  // Resolved by name, through the package's exports map, as an installed dependency would be.
  await mkdir(join(bundleDir, 'node_modules'));
  await symlink(join(root, 'npm'), join(bundleDir, 'node_modules', 'fhir-async'), 'dir');
  await writeFile(
    join(bundleDir, 'entry.js'),
    `import { Job, FhirAsyncClient } from 'fhir-async';
const job = new Job({ baseUrl: 'https://fhir.example/r4', operation: { type: 'export', types: ['Patient'] } });
window.result = { action: job.nextAction(Date.now()), client: typeof FhirAsyncClient };`,
  );
  await build({
    entryPoints: [join(bundleDir, 'entry.js')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    outfile: join(bundleDir, 'app', 'bundle.js'),
    logLevel: 'silent',
  });
  // esbuild keeps new URL('../wasm/...', import.meta.url) as is: ship the .wasm at that place (the
  // "default" condition resolves to the browser build, browser/: issue 22).
  await mkdir(join(bundleDir, 'wasm'), { recursive: true });
  await copyFile(join(root, 'npm', 'browser', 'wasm', 'fhir_async_wasm_bg.wasm'), join(bundleDir, 'wasm', 'fhir_async_wasm_bg.wasm'));
  await writeFile(join(bundleDir, 'app', 'index.html'), '<script type="module" src="./bundle.js"></script>');
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  await page.goto(`${web.url}/bundle/app/index.html`);
  await page.waitForFunction(() => window.result !== undefined, null, { timeout: 15_000 }).catch((e) => {
    throw new Error(`${e.message}; page errors: ${errors.join(' | ')}`);
  });
  const result = await page.evaluate(() => window.result);
  assert.deepEqual(errors, []);
  assert.equal(result.client, 'function');
  assert.equal(result.action.type, 'send');
  assert.equal(result.action.request.url, 'https://fhir.example/r4/$export?_type=Patient');
  const bundle = await readFile(join(bundleDir, 'app', 'bundle.js'), 'utf8');
  assert.ok(!bundle.includes('node:fs'), 'the browser bundle does not pull the Node entry');
  await page.close();
});
