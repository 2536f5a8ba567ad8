// Issue 23: an export against the reference server's `stu4` dialect (`/stu4/fhir`) completes
// with the STU4 manifest (an informational `outcome` with `countSeverity`, `manifestType`,
// `fileSize` on every entry), and its Parquet output is obtainable intact as bytes
// (protocol L10–L13). Which file is opaque is the core's word (`opaqueFormat`); JS moves bytes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { FhirAsyncClient } from 'fhir-async';
import { startServer } from './server.mjs';

const FAST = { minWaitMs: 20, initialBackoffMs: 20, maxBackoffMs: 200, jitterPercent: 0 };
const PARQUET = 'application/vnd.apache.parquet';
let srv;

before(async () => {
  srv = await startServer(['--patients', '20', '--job-ms', '200']);
});
after(async () => {
  await srv?.stop();
});

const stu4 = () => new FhirAsyncClient({ baseUrl: `${srv.origin}/stu4/fhir`, retry: FAST, timeoutMs: 60_000 });

test('L13: an stu4 export completes and its Parquet file arrives intact as bytes', async () => {
  const c = stu4();
  // The STU4 POST kick-off (L1), forced until the client chooses it itself (L2).
  const job = await c.export({ post: true });
  const outcome = await job.wait();
  // L11: one outcome file whose countSeverity is "information": not "completed with errors"
  assert.equal(outcome.status, 'completed', JSON.stringify(outcome).slice(0, 500));
  const m = outcome.result.manifest;
  // L10, L12: the STU4 shape, read without a note
  assert.match(m.manifestType, /\/BulkDataManifest$/);
  assert.ok(Array.isArray(m.extension));
  assert.deepEqual(m.outcome[0].countSeverity, [{ code: 'information', count: 1 }]);
  assert.ok(!outcome.warnings?.some((w) => /L10|L12/.test(w)), JSON.stringify(outcome.warnings));
  const parquet = m.output.filter((f) => f.outputFormat === PARQUET);
  assert.equal(parquet.length, 1);

  const chunks = [];
  const resources = [];
  const stream = c.resources(outcome, { opaqueFiles: true });
  for await (const item of stream) {
    if (item instanceof Uint8Array) chunks.push(item);
    else resources.push(item);
  }
  const got = Buffer.concat(chunks);
  const served = Buffer.from(await (await fetch(parquet[0].url)).arrayBuffer());
  assert.ok(got.equals(served), `${got.length} bytes, the server serves ${served.length}`);
  assert.equal(got.length, parquet[0].fileSize);
  assert.equal(got.subarray(0, 4).toString(), 'PAR1');
  // the Parquet file's report: opaque bytes, no resources; the NDJSON files' resources all arrived
  const { files, failed } = stream.stats;
  assert.equal(failed, 0, JSON.stringify(files.filter((f) => f.error)));
  const pq = files.find((f) => f.fileName.endsWith('.parquet'));
  assert.ok(pq, JSON.stringify(files.map((f) => f.fileName)));
  assert.deepEqual([pq.resources, pq.bytes], [0, parquet[0].fileSize]);
  const counted = m.output.filter((f) => f.count !== undefined).reduce((n, f) => n + f.count, 0);
  assert.equal(resources.length, counted);
  assert.equal(stream.stats.resources, counted);
});

test('L13: without opaqueFiles a stream of resources leaves the Parquet file out', async () => {
  const c = stu4();
  const outcome = await (await c.export({ post: true, types: ['Patient'] })).wait();
  const stream = c.resources(outcome, { type: 'Patient' });
  for await (const item of stream) assert.equal(item.resourceType, 'Patient');
  assert.ok(stream.stats.files.every((f) => f.fileName.endsWith('.ndjson')), JSON.stringify(stream.stats.files));
});
