// The process of the K5 test in resume-k5.test.mjs (issue 14): downloads a
// finished export into DIR, one file per resource type, saving the job
// (`job.toJson()`, with each file's progress) and how much of each file it
// wrote after every part it took (a batch: the job records a part once the
// consumer asks for the next one, so it saves between batches). `node resume-child.mjs BASE DIR` starts;
// `node resume-child.mjs --resume DIR` continues from the saved state.
import { appendFileSync, readFileSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FhirAsyncClient } from 'fhir-async';

const FAST = { minWaitMs: 20, initialBackoffMs: 20, maxBackoffMs: 200, jitterPercent: 0 };
const resuming = process.argv[2] === '--resume';
const dir = process.argv[3];
const statePath = join(dir, 'state.json');

let job;
let lengths = {};
if (resuming) {
  const saved = JSON.parse(readFileSync(statePath, 'utf8'));
  const c = new FhirAsyncClient({ baseUrl: saved.base, retry: FAST });
  job = c.resume(saved.job);
  lengths = saved.lengths;
  // What this process holds must match the saved job: a part-way file is cut back to
  // its saved length, a file the job does not record starts over.
  const records = new Map((saved.job.files ?? []).map((r) => [r.fileName, r]));
  for (const f of job.downloadPlan()) {
    const r = records.get(f.fileName);
    if (r?.bytes !== undefined) continue; // done: left alone
    lengths[f.fileName] = r?.checkpoint ? lengths[f.fileName] : 0;
    writeFileSync(join(dir, f.fileName), '', { flag: 'a' });
    truncateSync(join(dir, f.fileName), lengths[f.fileName]);
  }
  await run(c, saved.base);
} else {
  const base = process.argv[2];
  const c = new FhirAsyncClient({ baseUrl: base, retry: FAST });
  job = await c.export({ types: ['Patient', 'Observation'] });
  await job.wait({ throwOnFailure: true });
  const plan = job.downloadPlan().map(({ fileName, resourceType }) => ({ fileName, resourceType }));
  writeFileSync(join(dir, 'plan.json'), JSON.stringify(plan));
  await run(c, base);
}

function save(base) {
  const tmp = `${statePath}.tmp`;
  writeFileSync(tmp, JSON.stringify({ base, job: JSON.parse(job.toJson()), lengths }));
  renameSync(tmp, statePath);
}

async function run(c, base) {
  const outcome = await job.wait({ throwOnFailure: true });
  const names = new Map(job.downloadPlan().map((f) => [f.resourceType, f.fileName]));
  const stream = c.resources(outcome, {
    format: 'batches',
    validation: 'none',
    gzip: false,
    saveProgress: true,
    maxPerOrigin: 1,
    onFile: () => save(base),
  });
  for await (const batch of stream) {
    // The job now records every part taken before this one, all written: save, then write.
    save(base);
    const name = names.get(batch[0].resourceType);
    const text = batch.map((r) => JSON.stringify(r) + '\n').join('');
    appendFileSync(join(dir, name), text);
    lengths[name] = (lengths[name] ?? 0) + Buffer.byteLength(text);
  }
  save(base);
  if (stream.stats.failed > 0) throw new Error(JSON.stringify(stream.stats.files));
  writeFileSync(join(dir, 'done'), '');
}
