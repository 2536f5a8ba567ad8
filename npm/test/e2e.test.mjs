// End to end against the reference server: every dialect, cancel, resume,
// faults with nothing lost, errors, and many concurrent jobs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  FhirAsyncClient,
  DeadlineExceededError,
  JobFailedError,
  AbortError,
  UsageError,
  FhirAsyncError,
  DownloadError,
  RetriesExhaustedError,
} from 'fhir-async';
import { startServer, until } from './server.mjs';

const FAST = { minWaitMs: 20, initialBackoffMs: 20, maxBackoffMs: 200, jitterPercent: 0 };
let srv;

before(async () => {
  srv = await startServer(['--patients', '20', '--job-ms', '200']);
});
after(async () => {
  await srv?.stop();
});

const client = (baseUrl, extra = {}) => new FhirAsyncClient({ baseUrl, retry: FAST, timeoutMs: 60_000, ...extra });

/** Downloads every output file; returns { ids: Map<type, Set<id>>, total, stats }. */
async function download(c, outcome, options = {}) {
  const ids = new Map();
  let total = 0;
  const stream = c.resources(outcome, options);
  for await (const r of stream) {
    total++;
    if (!ids.has(r.resourceType)) ids.set(r.resourceType, new Set());
    const set = ids.get(r.resourceType);
    assert.ok(!set.has(r.id), `duplicate ${r.resourceType}/${r.id}`);
    set.add(r.id);
  }
  return { ids, total, stats: stream.stats };
}

function manifestCounts(outcome) {
  const m = outcome.result.manifest;
  assert.ok(m, `a manifest, got ${JSON.stringify(outcome.result).slice(0, 300)}`);
  const counts = new Map();
  for (const f of m.output) counts.set(f.type, (counts.get(f.type) ?? 0) + f.count);
  return counts;
}

function assertMatchesManifest(outcome, got) {
  // Medplum lists its Binary outputs without a count (issue 10 §1): the ids are checked instead.
  if (outcome.result.manifest?.output.some((f) => f.count === undefined)) return;
  const counts = manifestCounts(outcome);
  assert.ok(counts.size > 0, 'the export has files');
  for (const [type, n] of counts) assert.equal(got.ids.get(type)?.size ?? 0, n, `${type} resources`);
  assert.equal(got.total, [...counts.values()].reduce((a, b) => a + b, 0));
}

let reference; // ids of a fault-free bulk export: what the server generated
async function referenceIds() {
  if (!reference) {
    const c = client(srv.base('bulk', 'retry=0'));
    const job = await c.export();
    const outcome = await job.wait();
    reference = await download(c, outcome);
    assertMatchesManifest(outcome, reference);
  }
  return reference;
}

function assertSameIds(got, ref, types = [...ref.ids.keys()]) {
  for (const t of types) {
    assert.deepEqual([...(got.ids.get(t) ?? [])].sort(), [...ref.ids.get(t)].sort(), `${t} ids`);
  }
}

for (const dialect of ['bulk', 'healthconnect', 'oracle', 'medplum', 'aidbox', 'r5']) {
  test(`export, ${dialect} dialect: every resource of the manifest arrives once`, async () => {
    const c = client(srv.base(dialect, 'retry=0'));
    const job = await c.export();
    assert.match(job.statusUrl, /^http:\/\/127\.0\.0\.1:\d+\//);
    const seen = [];
    job.onProgress((p) => seen.push(p));
    const outcome = await job.wait();
    // Oracle always lists an informational OperationOutcome file in `error`.
    const expected = dialect === 'oracle' ? 'completedWithErrors' : 'completed';
    assert.equal(outcome.status, expected, JSON.stringify(outcome).slice(0, 400));
    assert.ok(seen.length > 0 && seen.at(-1).phase === 'done', 'progress reached done');
    const got = await download(c, outcome);
    assertMatchesManifest(outcome, got);
    assertSameIds(got, await referenceIds());
    assert.equal(got.stats.resources, got.total);
    assert.ok(got.stats.bytes > 0);
  });
}

test('aidbox async-mode=bundle: the Bundle is the outcome', async () => {
  const c = client(srv.base('aidbox', 'retry=0'));
  const job = await c.kickoff({ method: 'GET', path: 'Patient?_count=3', asyncMode: 'bundle' });
  const outcome = await job.wait();
  assert.equal(outcome.status, 'completed');
  assert.equal(outcome.result.kind, 'bundle');
  assert.equal(outcome.result.bundle.resourceType, 'Bundle');
});

test('aidbox async-mode=redirect: the result is fetched from the 303 target', async () => {
  const c = client(srv.base('aidbox', 'retry=0'));
  const job = await c.kickoff({ method: 'GET', path: 'Patient?_count=3', asyncMode: 'redirect' });
  const outcome = await job.wait();
  assert.equal(outcome.status, 'completed');
  assert.equal(outcome.delivery, 'redirect');
  assert.equal(outcome.result.bundle?.resourceType ?? outcome.result.resource?.resourceType, 'Bundle');
});

test('r5 async-bundle: a batch-response Bundle', async () => {
  const c = client(srv.base('r5', 'retry=0'));
  const job = await c.kickoff({ method: 'GET', path: 'Patient?_count=2' });
  const outcome = await job.wait();
  assert.equal(outcome.status, 'completed', JSON.stringify(outcome).slice(0, 400));
  assert.equal(outcome.result.kind, 'bundle');
});

test('medplum $reindex through an AsyncJob', async () => {
  const c = client(srv.base('medplum', 'retry=0'));
  const job = await c.kickoff({ method: 'POST', path: '$reindex', body: { resourceType: 'Parameters' } });
  const outcome = await job.wait();
  assert.equal(outcome.status, 'completed', JSON.stringify(outcome).slice(0, 400));
});

test('cancel: the server accepts, the outcome is cancelled', async () => {
  for (const dialect of ['bulk', 'medplum', 'aidbox']) {
    const c = client(srv.base(dialect, 'never;retry=0'));
    const job = await c.export();
    const result = await job.cancel();
    assert.equal(result.kind, 'cancelled', `${dialect}: ${JSON.stringify(result)}`);
    const outcome = await job.wait();
    assert.equal(outcome.status, 'cancelled');
    // issue 11 §3: a cancelled outcome never throws, even with throwOnFailure
    assert.equal((await job.wait({ throwOnFailure: true })).status, 'cancelled');
  }
});

test('resume from toJSON continues the same server job', async () => {
  const c = client(srv.base('bulk', 'retry=0;ms=400'));
  const job = await c.export();
  const saved = JSON.stringify(job);
  assert.ok(!saved.includes('Bearer'));
  const again = client(srv.base('bulk', 'retry=0;ms=400')).resume(saved);
  assert.equal(again.statusUrl, job.statusUrl);
  const outcome = await again.wait();
  assert.equal(outcome.status, 'completed');
  assertSameIds(await download(c, outcome), await referenceIds());
  await job.wait();
});

const FAULTS = [
  'e500=2',
  'e503html=2',
  'e429=2',
  'e429date=3',
  'kick429=2',
  'reset',
  'gzbad',
  'gzcorrupt',
  'expire',
  'relative',
  'noloc',
  'ooloc',
  'storage',
  'no-retry',
  'retry-date;retry=0',
  'ratelimit=20',
  'e500=3;e503html=4;reset;gzbad;expire;storage',
];
for (const spec of FAULTS) {
  test(`faults ${spec}: nothing lost`, async () => {
    const fullSpec = spec.includes('retry') ? spec : `${spec};retry=0`;
    const c = client(srv.base('bulk', fullSpec), { retry: { ...FAST, maxRetries: 20, maxDownloadRetries: 8 } });
    const job = await c.export();
    const outcome = await job.wait();
    assert.equal(outcome.status, 'completed', JSON.stringify(outcome).slice(0, 400));
    const got = await download(c, outcome);
    assertMatchesManifest(outcome, got);
    assertSameIds(got, await referenceIds());
  });
}

test('partial: completed with errors, the error files are OperationOutcomes', async () => {
  const c = client(srv.base('bulk', 'partial;retry=0'));
  const outcome = await (await c.export()).wait();
  assert.equal(outcome.status, 'completedWithErrors');
  const got = await download(c, outcome);
  assertMatchesManifest(outcome, got);
  assertSameIds(got, await referenceIds(), [...manifestCounts(outcome).keys()]);
  let errors = 0;
  for await (const r of c.resources(outcome, { kinds: ['error'] })) {
    assert.equal(r.resourceType, 'OperationOutcome');
    errors++;
  }
  assert.ok(errors > 0);
});

test('a failed job is an outcome carrying the OperationOutcome', async () => {
  const c = client(srv.base('bulk', 'fail;retry=0'));
  const job = await c.export();
  const outcome = await job.wait();
  assert.equal(outcome.status, 'failed');
  const oo = outcome.result.outcome ?? outcome.result.bundle;
  assert.equal(oo.resourceType, 'OperationOutcome');
  const err = await job.wait({ throwOnFailure: true }).catch((e) => e);
  assert.ok(err instanceof JobFailedError && err instanceof FhirAsyncError);
  assert.equal(err.code, 'job_failed');
  assert.equal(err.outcome.status, 'failed');
});

test('typed errors: usage, deadline, abort', async () => {
  assert.throws(() => new FhirAsyncClient({}), UsageError);
  const bad = client('not a url');
  const e = await bad.export().catch((x) => x);
  assert.ok(e instanceof UsageError, String(e));
  assert.equal(e.name, 'UsageError');
  assert.equal(e.code, 'usage');

  const slow = client(srv.base('bulk', 'never;retry=0'), { timeoutMs: 300 });
  const job = await slow.export();
  const d = await job.wait().catch((x) => x);
  assert.ok(d instanceof DeadlineExceededError, String(d));
  assert.equal(d.code, 'deadline_exceeded');

  const c = client(srv.base('bulk', 'never;retry=0'));
  const j2 = await c.export();
  const ac = new AbortController();
  const waiting = j2.wait({ signal: ac.signal }).catch((x) => x);
  await until(() => j2.stats.polls >= 1, { what: 'a first poll' });
  ac.abort();
  const a = await waiting;
  assert.ok(a instanceof AbortError, String(a));
  assert.equal(a.code, 'aborted');
  await j2.cancel();
});

test('an AbortSignal stops a download', async () => {
  const c = client(srv.base('bulk', 'retry=0;slow=20000'));
  const outcome = await (await c.export()).wait();
  const ac = new AbortController();
  let n = 0;
  const err = await (async () => {
    for await (const _ of c.resources(outcome, { signal: ac.signal })) {
      if (++n === 5) ac.abort();
    }
  })().catch((x) => x);
  assert.ok(err instanceof AbortError, String(err));
  assert.ok(n >= 5);
});

test('200 concurrent jobs in one process', async () => {
  const c = client(srv.base('bulk', 'retry=0;ms=300'));
  const jobs = await Promise.all(Array.from({ length: 200 }, () => c.export({ types: ['Patient'] })));
  assert.equal(new Set(jobs.map((j) => j.statusUrl)).size, 200);
  const outcomes = await Promise.all(jobs.map((j) => j.wait()));
  for (const o of outcomes) assert.equal(o.status, 'completed');
  const ref = await referenceIds();
  const got = await Promise.all(outcomes.slice(0, 20).map((o) => download(c, o)));
  for (const g of got) assertSameIds(g, ref, ['Patient']);
});

test('issue 10 §4: a file short of its manifest count is a per-file DownloadError (count_mismatch), never silent', async () => {
  // A fetch that drops the last line of every NDJSON body (and says nothing about encodings).
  const shortening = async (url, init) => {
    const res = await fetch(url, init);
    if (!url.includes('/_files/')) return res;
    const text = await res.text();
    const cut = text.trimEnd().split('\n').slice(0, -1).join('\n') + '\n';
    return new Response(cut, { status: res.status, headers: { 'content-type': 'application/fhir+ndjson' } });
  };
  const c = client(srv.base('bulk', 'retry=0'), { fetch: shortening });
  const outcome = await (await c.export({ types: ['Patient'] })).wait();
  const got = await download(c, outcome);
  const [report] = got.stats.files;
  assert.equal(got.stats.failed, 1);
  const err = report.error;
  assert.ok(err instanceof DownloadError, String(err));
  assert.equal(err.code, 'count_mismatch');
  assert.equal(err.details.expected - err.details.actual, 1);
  assert.equal(report.kind, 'output');
  assert.match(err.message, /Patient output file/);
});

test('connection refused on kick-off is retried, then RetriesExhaustedError', async () => {
  const dead = 'http://127.0.0.1:9/fhir'; // discard port: nothing listens on loopback
  const c = client(dead, { retry: { ...FAST, maxKickoffRetries: 2 } });
  const e = await c.export().catch((x) => x);
  assert.ok(e instanceof RetriesExhaustedError, String(e));
  assert.equal(e.code, 'retries_exhausted');
});

test('cleanup after the download deletes the job on the server', async () => {
  const c = client(srv.base('oracle', 'retry=0'));
  const job = await c.export({ types: ['Patient'] });
  const outcome = await job.wait();
  await download(c, outcome);
  const result = await job.cleanup();
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.ok(result.httpStatus >= 200 && result.httpStatus < 300, JSON.stringify(result));
});

test('expired file URLs: downloads side by side share one manifest refresh', async () => {
  const c = client(srv.base('bulk', 'expire;retry=0'));
  const job = await c.export();
  const outcome = await job.wait();
  const types = outcome.result.manifest.output.map((f) => f.type);
  const results = await Promise.all(types.map((type) => download(c, outcome, { type })));
  const ref = await referenceIds();
  for (const [i, type] of types.entries()) assertSameIds(results[i], ref, [type]);
});

test('job.wake() polls now instead of after Retry-After', async () => {
  const c = client(srv.base('bulk', 'retry=30;ms=100'));
  const job = await c.export({ types: ['Patient'] });
  // The kick-off answer says Retry-After: 30; the job is now waiting 30 s.
  await until(() => job.progress().nextPollInMs > 20_000, { what: 'a long wait' });
  // Until the server job is done (asked by the test itself, not the client).
  await until(async () => (await fetch(job.statusUrl)).status === 200, { what: 'the server job to finish' });
  job.wake();
  const outcome = await job.wait({ signal: AbortSignal.timeout(5_000) });
  assert.equal(outcome.status, 'completed');
  assert.equal(job.stats.polls, 2); // the first poll (which got Retry-After: 30), then the woken one
});

test('resume in another process: a saved job survives its process', async () => {
  const { execFileSync } = await import('node:child_process');
  const base = srv.base('bulk', 'retry=0;ms=500');
  const script = `import { FhirAsyncClient } from 'fhir-async';
const c = new FhirAsyncClient({ baseUrl: ${JSON.stringify(base)}, retry: { minWaitMs: 20, initialBackoffMs: 20 } });
const job = await c.export({ types: ['Patient'] });
process.stdout.write(JSON.stringify(job));
process.exit(0); // the process dies while the job polls`;
  const saved = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: new URL('..', import.meta.url),
    encoding: 'utf8',
  });
  const job = client(base).resume(saved);
  assert.match(job.statusUrl, /_jobId=/);
  const outcome = await job.wait();
  assert.equal(outcome.status, 'completed');
  assertSameIds(await download(client(base), outcome), await referenceIds(), ['Patient']);
});
