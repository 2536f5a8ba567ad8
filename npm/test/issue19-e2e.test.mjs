// Issue 19 end to end in Node, against the reference server's faults
// (docs/testserver.md): the result is either exactly one version of each
// file or a typed per-file error; no resource is lost or mixed (protocol
// K6–K10 with K1 and K5). One test per case of the issue that concerns Node.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { FhirAsyncClient, DownloadError, FileChangedError, ResponseTooLargeError } from 'fhir-async';
import { startServer } from './server.mjs';

const FAST = { minWaitMs: 20, initialBackoffMs: 20, maxBackoffMs: 200, jitterPercent: 0 };
let srv;

before(async () => {
  // Two files per type (150 resources each), so a refresh has an order to get wrong.
  srv = await startServer(['--patients', '300', '--job-ms', '100', '--file-resources', '150']);
});
after(async () => {
  await srv?.stop();
});

const client = (faults, retry = {}, extra = {}) =>
  new FhirAsyncClient({ baseUrl: srv.base('bulk', faults), retry: { ...FAST, ...retry }, timeoutMs: 60_000, ...extra });

/** Streams in batches: ids per type (each once), the batches' types, the stats, the progress events. */
async function download(c, outcome, { unique = true, ...options } = {}) {
  const ids = new Map();
  const events = [];
  const reports = [];
  const stream = c.resources(outcome, {
    format: 'batches',
    onProgress: (p) => events.push(p),
    onFile: (r) => reports.push(r),
    ...options,
  });
  let mixed = 0;
  for await (const batch of stream) {
    // A batch is one part of one file: one file holds one type.
    if (new Set(batch.map((r) => r.resourceType)).size !== 1) mixed++;
    for (const r of batch) {
      if (!ids.has(r.resourceType)) ids.set(r.resourceType, new Set());
      const set = ids.get(r.resourceType);
      assert.ok(!unique || !set.has(r.id), `${r.resourceType}/${r.id} handed out twice`);
      set.add(r.id);
    }
  }
  return { ids, mixed, stats: stream.stats, events, reports };
}

const TYPES = ['Patient', 'Observation'];
let reference;
/** The ids of a download without faults. */
async function referenceIds() {
  if (!reference) {
    const c = client('retry=0');
    reference = await download(c, await (await c.export({ types: TYPES })).wait());
    assert.equal(reference.stats.failed, 0);
  }
  return reference.ids;
}

const sorted = (set) => [...(set ?? [])].sort();

// issue 19 case 1 (K6): the first links expire mid-file (each cut at 20,000 bytes, the resume gets
// 410) and the refreshed manifest lists the files in reverse order, without counts: every
// resource arrives exactly once, and each file is continued with its own bytes
test('issue 19 case 1, K6: a refresh that reorders the files mid-file loses and mixes nothing', async () => {
  const ref = await referenceIds();
  const c = client('reorder;expireafter;cut=20000;retry=0');
  const job = await c.export({ types: TYPES });
  const outcome = await job.wait();
  const polls = job.stats.polls;
  const got = await download(c, outcome, { gzip: false });
  assert.equal(got.stats.failed, 0, JSON.stringify(got.stats.files.filter((f) => f.error)));
  assert.equal(got.mixed, 0, 'no batch mixes types');
  for (const t of TYPES) assert.deepEqual(sorted(got.ids.get(t)), sorted(ref.get(t)), `${t} ids`);
  assert.equal(job.stats.polls, polls + 1, 'one manifest refresh');
  assert.ok(got.stats.files.some((f) => f.rangeResumes > 0), 'files continued by range after the refresh');
  for (const t of TYPES) {
    const files = got.stats.files.filter((f) => f.resourceType === t);
    assert.equal(files.reduce((n, f) => n + f.resources, 0), ref.get(t).size, `${t} files' reports`);
  }
});

// issue 19 case 2 (K7, K1): a continuation is answered 200 with another version of the file: a
// stream that already handed out lines fails that file with FileChangedError (no mixed versions,
// nothing lost silently); a gzip stream, which cannot continue by range, starts over into one version
test('issue 19 case 2, K7: a file that changes after a cut fails with FileChangedError, never mixing versions', async () => {
  for (const faults of ['changeafter;cut=30000;retry=0', 'changeafter;reset;retry=0']) {
    const c = client(faults);
    const outcome = await (await c.export({ types: ['Patient'] })).wait();
    const versions = new Set();
    const stream = c.resources(outcome, { gzip: false });
    let n = 0;
    for await (const r of stream) {
      versions.add(r.meta?.versionId);
      n++;
    }
    assert.deepEqual([...versions], ['1'], `${faults}: only the first version was handed out`);
    const changed = stream.stats.files.filter((f) => f.error);
    assert.ok(changed.length >= 1, `${faults}: ${JSON.stringify(stream.stats.files)}`);
    for (const f of changed) {
      assert.ok(f.error instanceof FileChangedError && f.error instanceof DownloadError, `${faults}: ${f.error}`);
      assert.equal(f.error.code, 'file_changed');
      assert.equal(f.error.name, 'FileChangedError');
      assert.ok(f.error.details.taken > 0, JSON.stringify(f.error.details));
    }
    assert.equal(stream.stats.failed, changed.length);
    assert.ok(n > 0 && n < 300, `${faults}: ${n} resources before the change`);
  }
  // gzip (Node's fetch decodes it: no byte offsets) starts over from byte 0, without a range,
  // so the server keeps the first version: one version, complete, nothing twice.
  const c = client('changeafter;cut=30000;retry=0');
  const got = await download(c, await (await c.export({ types: ['Patient'] })).wait());
  assert.equal(got.stats.failed, 0, JSON.stringify(got.stats.files));
  assert.deepEqual(sorted(got.ids.get('Patient')), sorted((await referenceIds()).get('Patient')));
});

// issue 19 case 3 (K8): the manifest refresh answers 500 until the retries run out: the job keeps
// its result, the files that needed the refresh fail with its cause, and a later download (the
// server recovered) gets everything without a new kick-off
test('issue 19 case 3, K8: a failed manifest refresh fails only the files that needed it; the job keeps its result', async () => {
  const c = client('expire;refresh500=4;retry=0', { maxRetries: 1 });
  const job = await c.export({ types: TYPES });
  const outcome = await job.wait();
  assert.equal(outcome.status, 'completed');
  const first = await download(c, outcome);
  assert.equal(first.stats.failed, first.stats.files.length, 'every link had expired');
  for (const f of first.stats.files) {
    assert.equal(f.error.code, 'refresh_failed', String(f.error));
    assert.match(f.error.details.cause, /500|attempts|retries/i, f.error.details.cause);
  }
  const again = await job.wait();
  assert.equal(again.status, 'completed', 'the job kept its result');
  assert.equal(JSON.parse(job.toJson()).state?.outcome?.status ?? 'completed', 'completed');
  // Later: the same job, the same outcome; the refresh is tried again.
  let last;
  for (let i = 0; i < 4; i++) {
    last = await download(c, outcome);
    if (last.stats.failed === 0) break;
    for (const f of last.stats.files) assert.equal(f.error.code, 'refresh_failed');
  }
  assert.equal(last.stats.failed, 0, JSON.stringify(last.stats.files.map((f) => String(f.error))));
  const ref = await referenceIds();
  for (const t of TYPES) assert.deepEqual(sorted(last.ids.get(t)), sorted(ref.get(t)));
});

// issue 19 case 4 (K8): a refresh answered 202 for ever ends within the retry budget (or the
// deadline): the files that needed it fail, the stream ends
test('issue 19 case 4, K8: a refresh answered 202 for ever does not hang the download', async () => {
  const c = client('expire;refresh202;retry=0', { maxRetries: 2 });
  const outcome = await (await c.export({ types: ['Patient'] })).wait();
  const started = Date.now();
  const got = await download(c, outcome, { signal: AbortSignal.timeout(30_000) });
  assert.ok(Date.now() - started < 30_000);
  assert.equal(got.stats.failed, got.stats.files.length);
  for (const f of got.stats.files) assert.equal(f.error.code, 'refresh_failed', String(f.error));
});

/** Runs `fn` while sampling this process's RSS; resolves [result or error, peak growth in bytes]. */
async function peakGrowth(fn) {
  global.gc?.();
  const base = process.memoryUsage.rss();
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 2);
  try {
    const r = await fn().catch((e) => e);
    peak = Math.max(peak, process.memoryUsage.rss());
    return [r, peak - base];
  } finally {
    clearInterval(timer);
  }
}

// issue 19 case 5 (K9): a status answer of 1 GiB ends the job with ResponseTooLargeError, and
// memory stays bounded by the ceiling (retry.maxResponseBytes; the default is 256 MiB)
test('issue 19 case 5, K9: a 1 GiB status answer is a ResponseTooLargeError with bounded memory', async () => {
  const GiB = 1 << 30;
  // undici's Agent (Node), then fetch's web streams (what browsers use), then the default ceiling.
  for (const [ceiling, extra] of [[1 << 20, {}], [1 << 20, { fetch: (u, i) => fetch(u, i) }], [undefined, {}]]) {
    const c = client(`hugestatus=${GiB};retry=0`, ceiling ? { maxResponseBytes: ceiling } : {}, extra);
    const job = await c.export({ types: ['Patient'] });
    const [err, growth] = await peakGrowth(() => job.wait());
    assert.ok(err instanceof ResponseTooLargeError, String(err));
    assert.equal(err.code, 'response_too_large');
    assert.equal(err.details.limit, ceiling ?? 256 << 20);
    assert.doesNotMatch(err.message, /_jobId/, 'no query in the message');
    const bound = (ceiling ?? 256 << 20) + (96 << 20);
    console.log(`K9: a 1 GiB status answer, ceiling ${ceiling ?? 256 << 20} B${extra.fetch ? ' (fetch)' : ''}: RSS grew ${(growth / 2 ** 20).toFixed(1)} MiB`);
    assert.ok(growth < bound, `RSS grew ${growth >> 20} MiB for a ${ceiling ?? 'default'} ceiling`);
  }
});

// issue 19 case 6 (K10): signed file URLs that fail: the signature, the access key and the query
// appear in no error message, report, warning or event
test('issue 19 case 6, K10: a signed URL that fails never shows its signature', async () => {
  for (const faults of ['signedfail;retry=0', 'signed;expire;junklines;retry=0']) {
    const c = client(faults, { maxDownloadRetries: 1 });
    const job = await c.export({ types: TYPES });
    const outcome = await job.wait();
    const secrets = outcome.result.manifest.output.map((f) => new URL(f.url).searchParams.get('X-Amz-Signature'));
    assert.ok(secrets.every((s) => /^[0-9a-f]{64}$/.test(s ?? '')), JSON.stringify(secrets));
    const invalid = [];
    const got = await download(c, outcome, { unique: false, onInvalidLine: (e) => invalid.push(e) });
    assert.ok(got.stats.files.length > 0);
    if (faults.startsWith('signedfail')) {
      assert.equal(got.stats.failed, got.stats.files.length);
      for (const f of got.stats.files) assert.ok(f.error instanceof DownloadError);
    } else {
      assert.ok(invalid.length > 0);
    }
    const said = JSON.stringify([
      got.stats.files.map((f) => ({ ...f, message: f.error?.message, details: f.error?.details, stack: f.error?.stack })),
      got.reports,
      got.events,
      invalid.map((e) => [e.message, e.details, e.stack]),
      job.warnings(),
      job.progress(),
    ]);
    for (const s of [...secrets, 'AKIAFHIRASYNCTEST019', 'X-Amz-Signature', 'X-Amz-Credential']) {
      assert.ok(!said.includes(s), `${faults}: ${s} appears in ${said.slice(0, 2000)}`);
    }
    assert.match(said, /\?…/, 'URLs are shown without their query');
  }
});

// issue 19 case 7: `hello`, `{not json}` and one Patient with a manifest count of 3: the report
// says 1 resource and 2 invalid lines, the stream hands out 1 resource, and the count check
// (strict by default) fails the file; lenient keeps it with the mismatch
test('issue 19 case 7: junk lines are not resources: report and stream agree', async () => {
  const c = client('junklines;retry=0');
  const outcome = await (await c.export({ types: TYPES })).wait();
  for (const countCheck of ['strict', 'lenient']) {
    const got = await download(c, outcome, { countCheck, unique: false });
    assert.equal(got.stats.files.length, outcome.result.manifest.output.length);
    assert.equal(got.stats.resources, got.stats.files.length, 'one resource per file handed out');
    for (const f of got.stats.files) {
      assert.equal(f.resources, 1, JSON.stringify(f));
      assert.equal(f.invalidLines, 2);
      assert.deepEqual(
        f.invalid.map((l) => l.line),
        [1, 2],
      );
      if (countCheck === 'strict') {
        assert.equal(f.error?.code, 'count_mismatch', JSON.stringify(f));
        assert.deepEqual([f.error.details.expected, f.error.details.actual], [3, 1]);
      } else {
        assert.deepEqual(f.countMismatch, { expected: 3, actual: 1 });
      }
    }
    assert.equal(got.stats.failed, countCheck === 'strict' ? got.stats.files.length : 0);
  }
});

// issue 19 case 8: a cut last line without a count: an invalid line, not a resource, in the report
test('issue 19 case 8: a cut last line is an invalid line, not a resource', async () => {
  const ref = await referenceIds();
  const c = client('cutlast;retry=0');
  const got = await download(c, await (await c.export({ types: ['Patient'] })).wait());
  assert.equal(got.stats.failed, 0);
  for (const f of got.stats.files) {
    assert.equal(f.invalidLines, 1, JSON.stringify(f));
    assert.equal(f.resources, ref.get('Patient').size / 2 - 1);
  }
  assert.equal(got.ids.get('Patient').size, ref.get('Patient').size - got.stats.files.length);
});
