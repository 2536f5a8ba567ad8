// Downloads (issue 10): bounded parallel files, file order per type when
// asked, one manifest refresh for all files, per-file reports instead of one
// failure for everything, bad lines as per-line reports, the line limit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { FhirAsyncClient, DownloadError, InvalidLineError, FhirAsyncError } from 'fhir-async';
import { startServer, until } from './server.mjs';
import { fakeBulk, entries, manifestOf } from './fake.mjs';

const FAST = { minWaitMs: 20, initialBackoffMs: 20, maxBackoffMs: 200, jitterPercent: 0 };
let srv;

before(async () => {
  // Several files per type (40 resources each), so parallelism and order show.
  srv = await startServer(['--patients', '60', '--job-ms', '100', '--file-resources', '40']);
});
after(async () => {
  await srv?.stop();
});

const client = (baseUrl, extra = {}) => new FhirAsyncClient({ baseUrl, retry: FAST, timeoutMs: 60_000, ...extra });
const exported = async (c, request = {}) => (await c.export(request)).wait();
async function all(stream) {
  const out = [];
  for await (const r of stream) out.push(r);
  return out;
}
const number = (id) => Number(id.slice(id.lastIndexOf('-') + 1));

test('issue 10 §1: files download 4 at a time by default, `concurrency` sets the bound', async () => {
  for (const [concurrency, expected] of [
    [undefined, 4],
    [2, 2],
    [1, 1],
  ]) {
    const files = 9;
    let active = 0;
    let most = 0;
    let finished = 0;
    const held = [];
    // Each file body waits until as many files are open as the client should
    // open (or all that are left): a client opening fewer would hang, more shows in `most`.
    const release = () => {
      if (active >= Math.min(expected, files - finished)) for (const go of held.splice(0)) go();
    };
    const fake = await fakeBulk({
      manifest: (s) => manifestOf(entries(s, 'Patient', files, 2)),
      file: (name, req, res) => {
        active++;
        most = Math.max(most, active);
        res.writeHead(200, { 'content-type': 'application/fhir+ndjson' });
        res.write(`{"resourceType":"Patient","id":"${name}-a"}\n`);
        held.push(() => {
          res.end(`{"resourceType":"Patient","id":"${name}-b"}\n`);
          active--;
          finished++;
          release();
        });
        release();
      },
    });
    try {
      const c = client(fake.base);
      const outcome = await exported(c);
      const got = await all(c.resources(outcome, concurrency === undefined ? {} : { concurrency }));
      assert.equal(got.length, files * 2);
      assert.equal(most, expected, `concurrency ${concurrency}`);
    } finally {
      await fake.close();
    }
  }
});

test('issue 10 §1: every resource arrives once with parallel files; `ordered` keeps file order per type', async () => {
  const c = client(srv.base('bulk', 'retry=0'));
  const outcome = await exported(c);
  const files = outcome.result.manifest.output;
  assert.ok(files.filter((f) => f.type === 'Observation').length > 2, 'several files per type');
  const expected = files.reduce((a, f) => a + f.count, 0);
  for (const ordered of [false, true]) {
    const stream = c.resources(outcome, { ordered, concurrency: 4 });
    const got = await all(stream);
    assert.equal(got.length, expected);
    const byType = new Map();
    for (const r of got) {
      if (!byType.has(r.resourceType)) byType.set(r.resourceType, []);
      byType.get(r.resourceType).push(number(r.id));
    }
    for (const [type, ids] of byType) {
      assert.equal(new Set(ids).size, ids.length, `${type}: no duplicates`);
      // Ids are numbered in file order: ordered output is ascending within each type.
      if (ordered) assert.deepEqual(ids, [...ids].sort((a, b) => a - b), `${type} in file order`);
    }
    assert.equal(stream.stats.files.length, files.length);
    assert.equal(stream.stats.failed, 0);
  }
});

test('issue 10 §1 (protocol E4): expired URLs of parallel files cost one manifest refresh for all', async () => {
  const c = client(srv.base('bulk', 'expire;retry=0'));
  const job = await c.export();
  const outcome = await job.wait();
  const polls = job.stats.polls;
  const stream = c.resources(outcome, { concurrency: 4 });
  const got = await all(stream);
  assert.ok(stream.stats.files.length > 4);
  assert.equal(stream.stats.failed, 0);
  assert.equal(got.length, outcome.result.manifest.output.reduce((a, f) => a + f.count, 0));
  assert.equal(job.stats.polls, polls + 1, 'one status GET re-fetched the manifest');
});

/** A fetch that rewrites the body of file URLs containing `match` with `edit(text)`. */
const editing = (match, edit) => async (url, init) => {
  const res = await fetch(url, init);
  if (!url.includes('/_files/') || !url.includes(match)) return res;
  const text = edit(await res.text());
  return new Response(text, { status: res.status, headers: { 'content-type': 'application/fhir+ndjson' } });
};
const replaceLine = (n, by) => (text) => text.split('\n').map((l, i) => (i === n - 1 ? by : l)).join('\n');
const dropLast = (text) => text.trimEnd().split('\n').slice(0, -1).join('\n') + '\n';

test('issue 10 §4: a file failing its count check is a per-file report naming its kind; every other file is delivered', async () => {
  const c = client(srv.base('bulk', 'retry=0'), { fetch: editing('Patient-0', dropLast) });
  const outcome = await exported(c, { types: ['Patient', 'Condition'] });
  const files = outcome.result.manifest.output;
  const stream = c.resources(outcome);
  const got = await all(stream);
  assert.equal(stream.stats.failed, 1);
  const bad = stream.stats.files.find((f) => f.error);
  assert.ok(bad.error instanceof DownloadError && bad.error instanceof FhirAsyncError);
  assert.equal(bad.error.code, 'count_mismatch');
  assert.equal(bad.kind, 'output');
  assert.equal(bad.resourceType, 'Patient');
  assert.match(bad.error.message, /Patient output file/);
  assert.equal(stream.stats.files.length, files.length, 'a report per file');
  const total = files.reduce((a, f) => a + f.count, 0);
  assert.equal(got.length, total - 1, 'everything but the missing line arrived');
});

// issue 19 (reading): an error file is the server's evidence of what failed: whatever its count,
// its lines are handed out and the mismatch is a warning (the core's rule), strict or lenient
test('issue 10 §4, issue 19: an error file short of its count keeps its lines, with a warning naming the OperationOutcome file', async () => {
  // `partial` lists one OperationOutcome line per failed type; this fetch adds none
  // but drops its last line, so the error file holds one resource less than promised.
  const c = client(srv.base('bulk', 'partial;retry=0'), { fetch: editing('error', dropLast) });
  const outcome = await exported(c, { types: ['Patient', 'Condition', 'Encounter', 'Procedure'] });
  assert.equal(outcome.status, 'completedWithErrors');
  for (const countCheck of ['strict', 'lenient']) {
    const stream = c.resources(outcome, { kinds: ['output', 'error'], countCheck });
    const got = await all(stream);
    assert.equal(stream.stats.failed, 0, countCheck);
    const kept = stream.stats.files.find((f) => f.kind === 'error');
    assert.deepEqual(kept.countMismatch, { expected: kept.expected, actual: kept.expected - 1 });
    assert.ok(kept.warnings.some((w) => w.includes('error file (OperationOutcome)')), JSON.stringify(kept.warnings));
    assert.ok(got.some((r) => r.resourceType === 'OperationOutcome'));
  }
});

// issue 19 case 7: a line is a resource only if it parses as a JSON object, in every format; the
// count check counts resources, so a file whose bad line was counted by the server fails it (strict)
test('issue 10 §3, issue 19: a non-JSON line is a per-line report, not a resource; every valid line is delivered', async () => {
  const c = client(srv.base('bulk', 'retry=0'), { fetch: editing('Patient-0', replaceLine(2, '{not json}')) });
  const outcome = await exported(c, { types: ['Patient'] });
  const total = outcome.result.manifest.output.reduce((a, f) => a + f.count, 0);
  for (const options of [{}, { format: 'text' }, { format: 'text', validation: 'json' }, { format: 'batches' }, { countCheck: 'lenient' }]) {
    const stream = c.resources(outcome, options);
    let n = 0;
    for await (const item of stream) n += options.format === 'batches' ? item.length : 1;
    assert.equal(n, total - 1, JSON.stringify(options));
    assert.equal(stream.stats.invalidLines, 1);
    const lenient = options.countCheck === 'lenient';
    assert.equal(stream.stats.failed, lenient ? 0 : 1, 'the bad line is not a resource: one short of the count');
    const bad = stream.stats.files.find((f) => f.invalidLines > 0);
    assert.equal(bad.resources, bad.expected - 1, JSON.stringify(bad));
    if (lenient) assert.deepEqual(bad.countMismatch, { expected: bad.expected, actual: bad.expected - 1 });
    else assert.equal(bad.error.code, 'count_mismatch');
    const report = stream.stats.files.find((f) => f.invalidLines > 0);
    assert.equal(report.invalidLines, 1, 'counted once');
    assert.equal(report.firstInvalidLine, 2);
    assert.equal(report.invalid[0].line, 2);
    assert.ok(report.invalid[0].message.length > 0);
    assert.match(report.url, /Patient-0/);
  }
});

test("issue 10 §3: onInvalidLine 'raise' throws a typed InvalidLineError after the valid lines before it", async () => {
  const c = client(srv.base('bulk', 'retry=0'), { fetch: editing('Patient-0', replaceLine(3, '{not json}')) });
  const outcome = await exported(c, { types: ['Patient'] });
  const seen = [];
  const err = await (async () => {
    for await (const r of c.resources(outcome, { onInvalidLine: 'raise', concurrency: 1 })) seen.push(r.id);
  })().catch((e) => e);
  assert.ok(err instanceof InvalidLineError && err instanceof DownloadError, String(err));
  assert.equal(err.name, 'InvalidLineError');
  assert.equal(err.code, 'invalid_line');
  assert.equal(err.details.line, 3);
  assert.match(err.details.url, /Patient-0/);
  assert.deepEqual(seen, ['Patient-0', 'Patient-1']);

  // A function gets each bad line's error and the stream goes on.
  const reported = [];
  const got = await all(c.resources(outcome, { onInvalidLine: (e) => reported.push(e) }));
  assert.equal(reported.length, 1);
  assert.ok(reported[0] instanceof InvalidLineError);
  assert.equal(got.length, outcome.result.manifest.output.reduce((a, f) => a + f.count, 0) - 1);
});

test('issue 10 §5: a line past the limit fails only its file, and the body is not read past the limit', async () => {
  const limit = 1 << 20;
  let sent = 0;
  let closed = false;
  const fake = await fakeBulk({
    manifest: (s) => manifestOf([...entries(s, 'Binary', 1, 1), ...entries(s, 'Patient', 2, 1)]),
    file: (name, req, res) => {
      res.writeHead(200, { 'content-type': 'application/fhir+ndjson' });
      if (!name.startsWith('Binary')) return res.end(`{"resourceType":"Patient","id":"${name}"}\n`);
      // One 64 MiB line, written as fast as the client takes it.
      const piece = Buffer.alloc(64 << 10, 0x61);
      res.write('{"resourceType":"Binary","data":"');
      const more = () => {
        while (sent < 64 << 20) {
          sent += piece.length;
          if (!res.write(piece)) return res.once('drain', more);
        }
        res.end('"}\n');
      };
      res.on('close', () => (closed = true));
      more();
    },
  });
  try {
    const c = client(fake.base);
    const outcome = await exported(c);
    const stream = c.resources(outcome, { maxLine: limit });
    const got = await all(stream);
    assert.equal(got.length, 2, 'the other files arrive');
    const bad = stream.stats.files.find((f) => f.error);
    assert.equal(bad.error.code, 'line_too_long');
    assert.equal(bad.resourceType, 'Binary');
    await until(() => closed, { what: 'the client to close the body' });
    // Socket buffers hold a few MiB; nothing close to the 64 MiB line was pulled.
    assert.ok(sent < 16 << 20, `${sent} bytes written before the client stopped`);
  } finally {
    await fake.close();
  }
});

test('issue 11 (protocol K3): a 429 on files halves the per-origin limit; the change is in stats and onProgress; every file still arrives', async () => {
  let active = 0;
  let throttled = 0;
  const files = 8;
  const fake = await fakeBulk({
    manifest: (s) => manifestOf(entries(s, 'Patient', files, 1)),
    file: (name, req, res) => {
      // More than 2 at once is too many for this server.
      if (active >= 2) {
        throttled++;
        res.writeHead(429, { 'retry-after': '0' });
        return res.end();
      }
      active++;
      res.writeHead(200, { 'content-type': 'application/fhir+ndjson' });
      setTimeout(() => {
        res.end(`{"resourceType":"Patient","id":"${name}"}\n`);
        active--;
      }, 30);
    },
  });
  try {
    const c = client(fake.base);
    const outcome = await exported(c);
    const seen = [];
    const stream = c.resources(outcome, { maxPerOrigin: 4, onProgress: (p) => seen.push(...p.limitChanges) });
    const got = await all(stream);
    assert.equal(got.length, files, 'every file delivered');
    assert.ok(throttled > 0, 'the server throttled');
    const { limitChanges, originLimits, failed } = stream.stats;
    assert.equal(failed, 0);
    assert.ok(limitChanges.length > 0, 'a limit change was reported');
    assert.equal(limitChanges[0].reason, 'throttled');
    assert.equal(limitChanges[0].from, 4);
    assert.ok(limitChanges[0].to < 4);
    assert.deepEqual(seen, limitChanges, 'onProgress saw the same changes');
    assert.equal(originLimits.length, 1);
    assert.ok(originLimits[0].limit < 4);
  } finally {
    await fake.close();
  }
});

test('issue 11 §3: outcome.manifest is the Bulk manifest (not enumerable), client.resources accepts it; job.toJson() is a string, pollNow() exists beside wake()', async () => {
  const c = client(srv.base('bulk', 'retry=0'));
  const job = await c.export({ types: ['Patient'] });
  const outcome = await job.wait();
  assert.equal(outcome.manifest, outcome.result.manifest);
  assert.ok(!Object.keys(outcome).includes('manifest'), 'JSON of the outcome is unchanged');
  const fromOutcome = await all(c.resources(outcome));
  const fromManifest = await all(c.resources(outcome.manifest));
  assert.equal(fromManifest.length, fromOutcome.length);
  assert.ok(fromOutcome.length > 0);
  assert.equal(typeof job.toJson(), 'string');
  assert.deepEqual(JSON.parse(job.toJson()), job.toJSON());
  assert.equal(typeof job.pollNow, 'function');
  assert.throws(() => c.resources({ output: [] }), /outcome of job.wait/);
});
