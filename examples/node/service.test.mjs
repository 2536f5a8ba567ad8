// examples/node/service.mjs against the reference server: concurrency limit,
// restart without a second kick-off, callbacks waking jobs, cleanup.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startServer } from '../../npm/test/server.mjs';
import { runService } from './service.mjs';

test('the service resumes every job after a restart, never kicks off twice, and cleans up', async () => {
  const server = await startServer(['--patients', '20']);
  try {
    const dir = await mkdtemp(join(tmpdir(), 'fhir-async-service-'));
    const statePath = join(dir, 'jobs.json');
    // Retry-After 600: only a callback (or the resume-time wake) makes these jobs finish quickly.
    const base = server.base('aidbox', 'ms=400;retry=600');
    const opts = { base, jobs: 4, concurrency: 2, statePath, outDir: join(dir, 'out') };

    // First run, in its own process: kick everything off, then "crash".
    const cli = fileURLToPath(new URL('./service.mjs', import.meta.url));
    await promisify(execFile)(process.execPath, [cli, '--base', base, '--jobs', '4', '--concurrency', '2', '--state', statePath, '--out', opts.outDir, '--exit-after-kickoff'], { timeout: 60_000 });
    const saved = JSON.parse(await readFile(statePath, 'utf8'));
    assert.equal(saved.jobs.length, 4);
    assert.ok(saved.jobs.every((j) => typeof j.saved?.statusUrl === 'string'), 'each job persisted with its status URL');
    assert.equal((await server.stats()).routes['aidbox.kickoff'], 4);

    // Second run: resumes all four, kicks off none.
    const started = Date.now();
    const state = await runService(opts);
    const stats = await server.stats();
    assert.equal(stats.routes['aidbox.kickoff'], 4, 'a restart never kicks off again');
    assert.ok(state.jobs.every((j) => j.status === 'done:completed'), JSON.stringify(state.jobs.map((j) => j.status)));
    assert.ok(Date.now() - started < 60_000, 'Retry-After 600 did not hold the jobs');
    for (const j of state.jobs) {
      const files = await readdir(join(dir, 'out', j.name));
      assert.ok(files.includes('Patient.ndjson') && !files.some((f) => f.endsWith('.tmp')));
      assert.equal(j.counts.Patient, 20);
    }
    assert.equal(stats.routes['aidbox.cancel'] ?? 0, 4, 'each job cleaned up (DELETE) after download');
  } finally {
    await server.stop();
  }
});

test('callbacks wake running jobs; the concurrency limit holds', async () => {
  const server = await startServer(['--patients', '5']);
  try {
    const dir = await mkdtemp(join(tmpdir(), 'fhir-async-service-'));
    const base = server.base('aidbox', 'ms=300;retry=600');
    const started = Date.now();
    const state = await runService({ base, jobs: 3, concurrency: 1, statePath: join(dir, 'jobs.json'), outDir: join(dir, 'out') });
    assert.ok(state.jobs.every((j) => j.status === 'done:completed'));
    // Each job would wait 600 s for its second poll without the callback.
    assert.ok(Date.now() - started < 60_000);
    // Concurrency 1: kick-offs are spread out: each starts after the previous one finished.
    const kicks = (await server.stats()).requests.filter((r) => r.route === 'aidbox.kickoff');
    assert.equal(kicks.length, 3);
  } finally {
    await server.stop();
  }
});
