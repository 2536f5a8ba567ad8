// Downloads that never start over and stay polite (issue 14, protocol K1, K3)
// in Node, against the reference server: a ~1 GB export whose bodies are cut
// every 100 MB, a server that allows two connections.
//
// Node's fetch decodes gzip itself (and the .wasm has no gzip decoder), so a
// gzip body has no byte offsets to continue at: range resume needs identity
// bodies (`gzip: false`; the request then says `Accept-Encoding: identity`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { FhirAsyncClient } from 'fhir-async';
import { startServer } from './server.mjs';

const FAST = { minWaitMs: 20, initialBackoffMs: 20, maxBackoffMs: 200, jitterPercent: 0 };
const client = (baseUrl) => new FhirAsyncClient({ baseUrl, retry: FAST, timeoutMs: 600_000 });

/** The resource type of an NDJSON line (the reference server writes it first). */
const typeOf = (line) => /^\{"resourceType":"(\w+)"/.exec(line)?.[1] ?? JSON.parse(line).resourceType;

/**
 * Streams a finished export; per resource type (one file each) the sha256 of
 * its lines as the server sent them (`format: 'text'`), or as the K5 child
 * writes them (`'batches'`, each resource through JSON.stringify), and the stats.
 */
export async function download(baseUrl, options = {}, types = []) {
  const c = client(baseUrl);
  const outcome = await (await c.export({ types })).wait({ throwOnFailure: true });
  const stream = c.resources(outcome, { format: 'text', validation: 'none', gzip: false, ...options });
  const hashes = new Map();
  const hash = (type) => hashes.get(type) ?? hashes.set(type, createHash('sha256')).get(type);
  for await (const item of stream) {
    if (Array.isArray(item)) hash(item[0].resourceType).update(item.map((r) => JSON.stringify(r) + '\n').join(''));
    else hash(typeOf(item)).update(item + '\n');
  }
  const digests = Object.fromEntries([...hashes].map(([t, h]) => [t, h.digest('hex')]));
  return { digests, stats: stream.stats };
}

// protocol K1, issue 14: a ~1 GB export whose bodies are cut every 100 MB is downloaded with
// bytes on the wire <= 1.05 x the file sizes, byte-identical to a clean download
test('issue 14, K1: a gigabyte cut every 100 MB continues by range', { timeout: 600_000 }, async () => {
  const srv = await startServer(['--patients', '100000', '--job-ms', '0', '--retry-after', '0']);
  try {
    const clean = await download(srv.base('bulk'));
    const sizes = clean.stats.files.reduce((n, f) => n + f.bytes, 0);
    assert.ok(sizes > 900_000_000, `about 1 GB: ${sizes}`);
    assert.equal(clean.stats.failed, 0);
    const before = (await srv.stats()).file_bytes_sent;
    const cut = await download(srv.base('bulk', 'cut=100000000'));
    const after = await srv.stats();
    const sent = after.file_bytes_sent - before;
    assert.equal(cut.stats.failed, 0, JSON.stringify(cut.stats.files.filter((f) => f.error)));
    assert.ok(sent <= sizes * 1.05, `${sent} bytes on the wire for ${sizes} of files`);
    const resumes = cut.stats.files.reduce((n, f) => n + f.rangeResumes, 0);
    assert.ok(resumes >= 6 && after.files['206'] >= 6, `the cuts were continued by range: ${resumes}`);
    assert.deepEqual(cut.digests, clean.digests, 'byte-identical to the clean download');
  } finally {
    await srv.stop();
  }
});

// protocol K3, issue 14: a server that answers 429 above 2 connections: the limit settles at 2,
// no file fails, each change is seen in progress events
test('issue 14, K3: a server that allows two connections gets two', async () => {
  const srv = await startServer(['--patients', '400', '--file-resources', '150', '--job-ms', '0', '--retry-after', '0']);
  try {
    const changes = [];
    const limits = [];
    const { stats } = await download(srv.base('bulk', 'conn=2;slow=400000'), {
      maxPerOrigin: 6,
      onProgress: (p) => {
        changes.push(...p.limitChanges);
        limits.push(p.originLimits[0].limit);
      },
    });
    assert.equal(stats.failed, 0, JSON.stringify(stats.files.filter((f) => f.error)));
    assert.ok(stats.files.length > 10, `several files: ${stats.files.length}`);
    assert.ok(changes.length > 0 && changes[0].from === 6 && changes[0].to < 6, JSON.stringify(changes));
    assert.deepEqual(stats.limitChanges, changes, 'progress events saw every change');
    assert.equal(limits.at(-1), 2, `the limit settles at 2: ${JSON.stringify(changes)}`);
    assert.equal(stats.originLimits[0].limit, 2);
  } finally {
    await srv.stop();
  }
});
