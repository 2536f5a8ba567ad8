// A process killed mid-file is continued by the next one (issue 14, protocol
// K5) in Node: with `saveProgress`, the job's saved state records each file's
// progress as the consumer takes its resources (done files; part-way identity
// files with the core's checkpoint), and a resumed job's stream leaves out the
// done files and continues the part-way ones by range. The process is
// resume-child.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, statSync, mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FhirAsyncClient } from 'fhir-async';
import { startServer, until } from './server.mjs';

const FAST = { minWaitMs: 20, initialBackoffMs: 20, maxBackoffMs: 200, jitterPercent: 0 };

/** A clean download, per resource type the sha256 of its resources as resume-child.mjs writes them. */
async function download(baseUrl, types) {
  const c = new FhirAsyncClient({ baseUrl, retry: FAST });
  const outcome = await (await c.export({ types })).wait({ throwOnFailure: true });
  const hashes = new Map();
  for await (const batch of c.resources(outcome, { format: 'batches', gzip: false })) {
    const type = batch[0].resourceType;
    if (!hashes.has(type)) hashes.set(type, createHash('sha256'));
    hashes.get(type).update(batch.map((r) => JSON.stringify(r) + '\n').join(''));
  }
  return { digests: Object.fromEntries([...hashes].map(([t, h]) => [t, h.digest('hex')])) };
}

const CHILD = new URL('./resume-child.mjs', import.meta.url);

/** Runs resume-child.mjs; resolves with its exit code or signal. */
function child(args, onSpawn = () => {}) {
  const p = spawn(process.execPath, [CHILD.pathname, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  onSpawn(p);
  return new Promise((resolve) => p.once('exit', (code, signal) => resolve({ code, signal })));
}

const readJson = (path) => {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return null; // not written yet
  }
};

// protocol K5, issue 14: a process killed (SIGKILL) once a file is done and another is part-way;
// the next process resumes from the saved job: the finished file is not fetched again, the
// part-way one continues with a range, and the output is byte-identical to a clean download
test('issue 14, K5: a process killed mid-file is continued by the next process', { timeout: 120_000 }, async () => {
  const srv = await startServer(['--patients', '1000', '--job-ms', '0', '--retry-after', '0']);
  const dir = mkdtempSync(join(tmpdir(), 'fhir-async-k5-'));
  try {
    const clean = await download(srv.base('bulk'), ['Patient', 'Observation']);
    const state = join(dir, 'state.json');
    let proc;
    const killed = child([srv.base('bulk', 'slow=2000000'), dir], (p) => (proc = p));
    // Kill once the saved state has a done file and a part-way file with a checkpoint.
    await until(
      () => {
        const files = readJson(state)?.job?.files ?? [];
        return files.some((f) => f.bytes !== undefined) && files.some((f) => f.checkpoint);
      },
      { ms: 60_000, what: 'a done file and a part-way file in the saved state' },
    );
    proc.kill('SIGKILL');
    assert.equal((await killed).signal, 'SIGKILL');
    const saved = readJson(state);
    const done = saved.job.files.filter((f) => f.bytes !== undefined).map((f) => f.fileName);
    const partial = saved.job.files.filter((f) => f.checkpoint).map((f) => f.fileName);
    const mtimes = Object.fromEntries(done.map((n) => [n, statSync(join(dir, n)).mtimeMs]));

    await srv.reset();
    assert.deepEqual(await child(['--resume', dir]), { code: 0, signal: null });
    const stats = await srv.stats();
    const fileRequests = stats.requests.filter((r) => r.route === 'bulk.file').map((r) => r.path);
    for (const name of done) {
      assert.ok(!fileRequests.some((p) => p.endsWith(`/${name}`)), `${name} was fetched again: ${fileRequests}`);
      assert.equal(statSync(join(dir, name)).mtimeMs, mtimes[name], `${name} was rewritten`);
    }
    assert.ok(stats.files['206'] >= partial.length && stats.files['200_to_range'] === 0, JSON.stringify(stats.files));
    assert.ok(existsSync(join(dir, 'done')));
    // Byte-identical to the clean download.
    const plan = JSON.parse(readFileSync(join(dir, 'plan.json'), 'utf8'));
    for (const { fileName, resourceType } of plan) {
      const digest = createHash('sha256').update(readFileSync(join(dir, fileName))).digest('hex');
      assert.equal(digest, clean.digests[resourceType], `${fileName} differs`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await srv.stop();
  }
});
