// The browser example (examples/browser/) in headless Chromium, against the
// reference server: progress to 100 %, counts = manifest, Cancel, screenshot,
// and the CORS error when the server hides Content-Location.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFile, mkdtemp, mkdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, normalize, extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from './server.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };

/** Serves /examples/browser/ and /npm/ of the repository on loopback. */
async function staticServer() {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname));
    const allowed = path.startsWith('/examples/browser/') || path.startsWith('/npm/src/') || path.startsWith('/npm/wasm/');
    let file = join(root, path);
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
