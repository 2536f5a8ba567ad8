// Issue 24: the attachments of a stream of resources (protocol M) against the
// reference server's `attach` dialect (`/attach/fhir`): DocumentReferences and
// DiagnosticReports whose attachments are `Binary/{id}` and absolute URLs on
// the FHIR origin and on a second ("storage") origin, one answered as a FHIR
// JSON Binary, a slow one, a failing one, one over the size limit, one inline,
// one twice. `GET /_admin/attachments` says what each serves; `/_admin/stats`
// counts each fetch and whether Authorization came with it. Every decision is
// the core's `Hydrator`; JS moves the bytes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FhirAsyncClient, DownloadError, FhirAsyncError } from 'fhir-async';
import { startServer } from './server.mjs';

const FAST = { minWaitMs: 20, initialBackoffMs: 20, maxBackoffMs: 100, jitterPercent: 0 };
let srv;
let listing;

before(async () => {
  srv = await startServer(['--job-ms', '100']);
  listing = await (await fetch(`${srv.origin}/_admin/attachments`)).json();
});
after(async () => {
  await srv?.stop();
});

const client = () =>
  new FhirAsyncClient({ baseUrl: `${srv.origin}/attach/fhir`, token: 'attach-token', retry: FAST, timeoutMs: 60_000 });
const att = (id) => listing.attachments.find((a) => a.id === id);
const sha1 = (bytes) => createHash('sha1').update(bytes).digest('base64');

/** Runs an export and streams its resources with `options`; the resources by id, the stream's stats, the server's stats. */
async function exportWith(options) {
  await srv.reset();
  const c = client();
  const outcome = await (await c.export()).wait();
  assert.equal(outcome.status, 'completed', JSON.stringify(outcome).slice(0, 400));
  const stream = c.resources(outcome, options);
  const byId = new Map();
  for await (const r of stream) {
    assert.ok(!byId.has(r.id), `${r.id} handed out twice`);
    byId.set(r.id, r);
  }
  return { byId, stats: stream.stats, server: await srv.stats() };
}

/** The Attachment element of a resource. */
const element = (r) => (r.resourceType === 'DocumentReference' ? r.content[0].attachment : r.presentedForm[0]);
/** How often the server served `id`'s URL, and how often with Authorization. */
const served = (server, id) => {
  const route = att(id).route;
  return [server.routes[route] ?? 0, server.routes_with_authorization[route] ?? 0];
};
const FETCHED = ['att-text', 'att-pdf', 'att-storage', 'att-json', 'att-slow', 'att-notype', 'att-report'];

test('m1 m2 m3 m5 m7: inline mode hydrates each attachment with data, size and hash, keeping url', async () => {
  const { byId, stats } = await exportWith({ attachments: 'inline' });
  assert.equal(byId.size, 11, [...byId.keys()].join(','));
  const want = {
    'docref-text-1': 'att-text',
    'docref-text-2': 'att-text',
    'docref-pdf': 'att-pdf',
    'docref-storage': 'att-storage',
    'docref-slow': 'att-slow',
    'docref-notype': 'att-notype',
    'diagrep-json': 'att-json',
    'diagrep-text': 'att-report',
  };
  for (const [rid, aid] of Object.entries(want)) {
    const a = element(byId.get(rid));
    const bytes = Buffer.from(a.data ?? '', 'base64');
    assert.ok(a.data, `${rid}: no data: ${JSON.stringify(a)}`);
    // M7: the bytes the server serves (M5: the JSON Binary's decoded `data`), their size and SHA-1; url kept
    assert.equal(sha1(bytes), att(aid).sha1, rid);
    assert.equal(a.hash, att(aid).sha1, rid);
    assert.equal(a.size, att(aid).size, rid);
    assert.equal(a.url, att(aid).reference, `${rid}: url kept as written (M3: resolved only to fetch)`);
  }
  // M5: the JSON Binary's contentType
  assert.equal(element(byId.get('diagrep-json')).contentType, 'text/html');
  // M2: an attachment that carries data is left as it is
  assert.equal(element(byId.get('docref-inline')).data, Buffer.from(readInline(), 'utf8').toString('base64'));
  const reports = stats.attachments;
  assert.ok(Array.isArray(reports) && reports.length >= FETCHED.length, JSON.stringify(reports));
  for (const id of FETCHED) {
    const r = reports.find((x) => x.url === att(id).url);
    assert.ok(r && !r.error, `${id}: ${JSON.stringify(r)}`);
    assert.equal(r.sha1, att(id).sha1, id);
  }
});

/** The inline attachment's text, as the listing's sha1 proves. */
function readInline() {
  const text = 'Inline note: this attachment carries its data and is never fetched.\n';
  assert.equal(sha1(Buffer.from(text)), att('att-inline').sha1);
  return text;
}

test('m4 m5: every attachment is fetched exactly once; no token reaches the storage origin', async () => {
  const { server } = await exportWith({ attachments: 'inline' });
  for (const id of FETCHED) {
    const [n] = served(server, id);
    // att-text is referenced by two resources: fetched once all the same
    assert.equal(n, 1, `${id} served ${n} times`);
  }
  assert.equal(served(server, 'att-storage')[1], 0, 'Authorization sent to the storage origin');
  assert.equal(server.storage_requests_with_authorization, 0);
  // M4: a Binary read on the FHIR origin is a FHIR read: it carries the token
  assert.equal(served(server, 'att-text')[1], 1);
  assert.equal(served(server, 'att-inline')[0], 0, 'an inline attachment is never fetched (M2)');
});

test('m9: a failing attachment is reported with its code; its resource comes through unchanged', async () => {
  const { byId, stats, server } = await exportWith({ attachments: 'inline' });
  const doc = byId.get('docref-fail');
  assert.ok(doc, 'docref-fail is handed out');
  const a = element(doc);
  assert.equal(a.data, undefined);
  assert.equal(a.url, att('att-fail').reference);
  const r = stats.attachments.find((x) => x.url === att('att-fail').url);
  assert.ok(r?.error, JSON.stringify(stats.attachments));
  assert.ok(r.error instanceof DownloadError && r.error instanceof FhirAsyncError, r.error.name);
  // a 500 is transient: retried like a file (M9), then given up
  assert.equal(r.error.code, 'retries_exhausted', r.error.message);
  assert.ok(served(server, 'att-fail')[0] > 1, 'retried');
  assert.equal(stats.attachmentsFailed, stats.attachments.filter((x) => x.error).length);
  assert.ok(stats.attachmentsFailed >= 1);
  // the NDJSON files themselves completed
  assert.equal(stats.failed, 0, JSON.stringify(stats.files.filter((f) => f.error)));
});

// A 500 retried until `retries_exhausted`: the core's DownloadError::with_body
// keeps the last answer's OperationOutcome text ("attachment store unavailable").
test('m5 m9: a failing attachment\'s report carries the server\'s words', async () => {
  const { stats } = await exportWith({ attachments: 'inline' });
  const r = stats.attachments.find((x) => x.url === att('att-fail').url);
  assert.match(r.error.message, /attachment store unavailable/);
});

test('m6: an attachment declared over attachmentMaxSize is not fetched and is reported; its resource is unchanged', async () => {
  const { byId, stats, server } = await exportWith({ attachments: 'inline', attachmentMaxSize: 1024 * 1024 });
  assert.equal(served(server, 'att-big')[0], 0, 'the big attachment was fetched');
  const r = stats.attachments.find((x) => x.url === att('att-big').url);
  assert.ok(r?.error, JSON.stringify(r));
  assert.ok(r.error instanceof DownloadError, r.error.name);
  assert.equal(element(byId.get('docref-big')).data, undefined);
});

test('m2: attachmentTypes fetches only the media types asked for', async () => {
  const { byId, server } = await exportWith({ attachments: 'inline', attachmentTypes: ['application/pdf'] });
  assert.ok(element(byId.get('docref-pdf')).data);
  assert.equal(element(byId.get('docref-text-1')).data, undefined);
  assert.equal(served(server, 'att-pdf')[0], 1);
  assert.equal(served(server, 'att-text')[0], 0);
  assert.equal(served(server, 'att-storage')[0], 0);
});

test('m8: files mode writes each attachment under its report\'s file name and leaves the resources unchanged', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fhir-async-att-'));
  try {
    const { byId, stats, server } = await exportWith({ attachments: 'files', attachmentsDir: dir });
    for (const id of FETCHED) assert.equal(served(server, id)[0], 1, id);
    const names = readdirSync(dir).sort();
    assert.equal(names.filter((n) => n.endsWith('.part')).length, 0, 'a temporary file was left');
    for (const id of FETCHED) {
      const r = stats.attachments.find((x) => x.url === att(id).url);
      assert.ok(r && !r.error && r.fileName, `${id}: ${JSON.stringify(r)}`);
      const name = r.fileName.split('/').pop();
      assert.ok(names.includes(name), `${name} not in ${names}`);
      assert.equal(sha1(readFileSync(join(dir, name))), att(id).sha1, id);
      assert.equal(r.sha1, att(id).sha1, id);
    }
    // the resources as the server wrote them: no data added
    assert.equal(element(byId.get('docref-text-1')).data, undefined);
    assert.equal(element(byId.get('docref-text-1')).url, att('att-text').reference);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('m8: files mode without attachmentsDir is a usage error', async () => {
  const c = client();
  const outcome = await (await c.export()).wait();
  assert.throws(() => c.resources(outcome, { attachments: 'files' }), { name: 'UsageError' });
  assert.throws(() => c.resources(outcome, { attachments: 'sideways' }), { name: 'UsageError' });
  // a held line is not handed out yet: K5 records would run ahead of the consumer
  assert.throws(() => c.resources(outcome, { attachments: 'inline', saveProgress: true }), { name: 'UsageError' });
});

test('m1: off mode (and no attachments option) fetches nothing and changes nothing', async () => {
  for (const options of [{ attachments: 'off' }, {}]) {
    const { byId, stats, server } = await exportWith(options);
    assert.equal(byId.size, 11);
    for (const a of listing.attachments) if (a.route) assert.equal(server.routes[a.route] ?? 0, 0, a.id);
    assert.equal(element(byId.get('docref-text-1')).data, undefined);
    assert.deepEqual(stats.attachments, []);
  }
});

test('m9: a stream stopped early (break) with attachments in flight ends cleanly; its reports stay readable; the next stream works', async () => {
  await srv.reset();
  const c = client();
  const outcome = await (await c.export()).wait();
  const stream = c.resources(outcome, { attachments: 'inline', type: 'DocumentReference' });
  let n = 0;
  for await (const r of stream) {
    assert.equal(r.resourceType, 'DocumentReference');
    if (++n === 1) break;
  }
  const before = await srv.stats();
  // the reports taken when the stream closed stay readable
  assert.ok(Array.isArray(stream.stats.attachments));
  // nothing more is fetched once the stream closed
  const again = await srv.stats();
  assert.deepEqual(again.routes[att('att-pdf').route] ?? 0, before.routes[att('att-pdf').route] ?? 0);
  // and a next stream of the same job works
  const { byId } = await exportWith({ attachments: 'inline', type: 'DiagnosticReport' });
  assert.ok(element(byId.get('diagrep-text')).data);
});
