// Issue 19 in Node: nothing lost, nothing mixed on the rare paths of a
// download (protocol K6–K10 with K1 and K5). Scripted servers (fake.mjs) for
// exact bodies; the reference server's faults for the cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FhirAsyncClient, DownloadError, InvalidLineError, ResponseTooLargeError, backendServices } from 'fhir-async';
import { fakeBulk, fakeServer, manifestOf, json } from './fake.mjs';

const FAST = { minWaitMs: 20, initialBackoffMs: 20, maxBackoffMs: 200, jitterPercent: 0 };
const client = (baseUrl, extra = {}) => new FhirAsyncClient({ baseUrl, retry: FAST, timeoutMs: 60_000, ...extra });
const patient = (id) => JSON.stringify({ resourceType: 'Patient', id });

/** A file server with ranges and a strong ETag (so the core keeps checkpoints: K1, K5). */
function ranged(body, req, res) {
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = range ? Number(range[1]) : 0;
  const head = { 'content-type': 'application/fhir+ndjson', 'accept-ranges': 'bytes', etag: '"v1"' };
  if (range) head['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
  res.writeHead(range ? 206 : 200, head);
  res.end(body.subarray(start));
}

/** A bulk server of one Patient file holding `body` (a Buffer), listed with `count`. */
const oneFile = (body, count) =>
  fakeBulk({
    manifest: (s) => manifestOf([{ type: 'Patient', url: `${s.base}/files/Patient.ndjson`, count }]),
    file: (_name, req, res) => ranged(body, req, res),
  });

// issue 19 (reading): `saveProgress` with `onInvalidLine: 'raise'` recorded the lines after the
// bad one, which the consumer never received; the saved state now counts only lines handed out
test("issue 19: saveProgress with onInvalidLine 'raise' never records a line the consumer did not get", async () => {
  const good = `${patient('p1')}\n${patient('p2')}\n`;
  const fake = await oneFile(Buffer.from(`${good}hello\n${patient('p4')}\n`), 4);
  try {
    const c = client(fake.base);
    const job = await c.export();
    const outcome = await job.wait();
    const seen = [];
    const opts = { format: 'batches', gzip: false, saveProgress: true, onInvalidLine: 'raise' };
    const err = await (async () => {
      for await (const batch of c.resources(outcome, opts)) seen.push(...batch.map((r) => r.id));
    })().catch((e) => e);
    assert.ok(err instanceof InvalidLineError, String(err));
    assert.equal(err.details.line, 3);
    assert.deepEqual(seen, ['p1', 'p2']);
    const record = (job.toJSON().files ?? []).find((r) => r.fileName === 'Patient.ndjson');
    assert.ok((record?.resources ?? 0) <= seen.length, `recorded ${JSON.stringify(record)} after handing out ${seen}`);
    assert.ok((record?.checkpoint?.offset ?? 0) <= Buffer.byteLength(good), JSON.stringify(record));
    assert.equal(record?.bytes, undefined, 'the file is not recorded as done');

    // Resumed from that state, the rest is handed out (the bad line reported this time).
    const again = client(fake.base).resume(job.toJson());
    const ids = [];
    for await (const batch of client(fake.base).resources(await again.wait(), { ...opts, onInvalidLine: 'report' })) {
      ids.push(...batch.map((r) => r.id));
    }
    assert.deepEqual(ids.slice(-1), ['p4']);
    assert.ok(ids.includes('p1') === (record === undefined), `resumed after ${JSON.stringify(record)}: ${ids}`);
  } finally {
    await fake.close();
  }
});

// issue 19 case 7 (scripted): a file of `hello`, `{not json}` and one Patient listed with count 3:
// the report counts 1 resource and 2 invalid lines, the stream hands out the one Patient, and the
// count check sees 1 resource of 3
test('issue 19 case 7: lines that are not JSON objects are not resources, in every format', async () => {
  const fake = await oneFile(Buffer.from(`hello\n{not json}\n${patient('p1')}\n`), 3);
  try {
    const c = client(fake.base);
    const outcome = await (await c.export()).wait();
    for (const format of ['json', 'text', 'batches']) {
      const stream = c.resources(outcome, { format });
      let n = 0;
      for await (const item of stream) n += format === 'batches' ? item.length : 1;
      assert.equal(n, 1, format);
      const [report] = stream.stats.files;
      assert.equal(report.resources, 1, `${format}: ${JSON.stringify(report)}`);
      assert.equal(report.invalidLines, 2, format);
      assert.equal(stream.stats.invalidLines, 2, format);
      assert.deepEqual(
        report.invalid.map((l) => l.line),
        [1, 2],
      );
      assert.equal(stream.stats.resources, 1);
      assert.ok(report.error instanceof DownloadError, `${format}: the count check fails: ${JSON.stringify(report)}`);
      assert.equal(report.error.code, 'count_mismatch');
      assert.equal(report.error.details.actual, 1);
    }
  } finally {
    await fake.close();
  }
});

// issue 19 case 7/8: a bad last line without its newline is checked before the count check too
test('issue 19: a bad last line without a newline is not counted as a resource by the count check', async () => {
  const fake = await oneFile(Buffer.from(`${patient('p1')}\n${patient('p2')}\n{not json}`), 3);
  try {
    const c = client(fake.base);
    const outcome = await (await c.export()).wait();
    const stream = c.resources(outcome);
    const got = [];
    for await (const r of stream) got.push(r.id);
    assert.deepEqual(got, ['p1', 'p2']);
    const [report] = stream.stats.files;
    assert.equal(report.resources, 2, JSON.stringify(report));
    assert.equal(report.invalidLines, 1);
    assert.equal(report.error?.code, 'count_mismatch', JSON.stringify(report));
    assert.equal(report.error.details.actual, 2);
  } finally {
    await fake.close();
  }
});

// issue 19 (reading): a line that is not UTF-8 is an invalid line, never a resource with U+FFFD
test('issue 19: a line that is not UTF-8 is reported as invalid, not turned into U+FFFD', async () => {
  const bad = Buffer.concat([Buffer.from('{"resourceType":"Patient","id":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n')]);
  const fake = await oneFile(Buffer.concat([Buffer.from(`${patient('p1')}\n`), bad, Buffer.from(`${patient('p3')}\n`)]), 2);
  try {
    const c = client(fake.base);
    const outcome = await (await c.export()).wait();
    for (const format of ['json', 'text']) {
      const stream = c.resources(outcome, { format });
      const got = [];
      for await (const item of stream) got.push(item);
      assert.equal(got.length, 2, format);
      assert.ok(!JSON.stringify(got).includes('\ufffd'), format);
      const [report] = stream.stats.files;
      assert.equal(report.invalidLines, 1, JSON.stringify(report));
      assert.equal(report.firstInvalidLine, 2);
      assert.match(report.invalid[0].message, /UTF-8/);
      assert.equal(report.error, undefined, JSON.stringify(report));
    }
  } finally {
    await fake.close();
  }
});

/** Answers `res` with `bytes` bytes of `{"x":"aaaa...`, chunked, at the pace the client reads. */
function stream(res, bytes, status = 200, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  const piece = Buffer.alloc(1 << 20, 'a');
  let sent = 0;
  const more = () => {
    while (sent < bytes && !res.destroyed) {
      sent += piece.length;
      if (!res.write(piece)) return res.once('drain', more);
    }
    res.end();
  };
  res.on('close', () => (sent = bytes));
  more();
}

// protocol K9, issue 19: a token endpoint answering more than the ceiling is a typed
// ResponseTooLargeError; the body is not read to its end
test('issue 19, K9: a token answer past its ceiling is a ResponseTooLargeError', async () => {
  let closed = false;
  const fake = await fakeServer((req, res) => {
    if (req.url === '/token') {
      res.on('close', () => (closed = true));
      return stream(res, 1 << 30);
    }
    json(res, 404, {});
  });
  try {
    const auth = backendServices({ clientId: 'c', clientSecret: 's', scope: 'system/*.rs', tokenUrl: `${fake.origin}/token` });
    const c = client(fake.base, { auth });
    const err = await c.export().catch((e) => e);
    assert.ok(err instanceof ResponseTooLargeError, String(err));
    assert.equal(err.code, 'response_too_large');
    assert.equal(err.name, 'ResponseTooLargeError');
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(closed, 'the connection was dropped');
  } finally {
    await fake.close();
  }
});
