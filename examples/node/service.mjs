// A service that orchestrates many bulk exports with fhir-async:
//  - at most `concurrency` jobs run at once;
//  - every job's state is persisted to a JSON file after each change, so a
//    restarted service resumes every job instead of kicking off again;
//  - a callback receiver (unified pattern, seed 003) on a port kept across
//    restarts wakes jobs early;
//  - each finished export is streamed to NDJSON files, then cleaned up on the server.
//
//   node examples/node/service.mjs --base http://127.0.0.1:PORT/aidbox/fhir --jobs 6 \
//        --concurrency 2 --state jobs.json --out exports/ [--secret S] [--exit-after-kickoff]
import { createServer } from 'node:http';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import { FhirAsyncClient } from '../../npm/src/node.js';

export async function runService(opts) {
  const { base, jobs: wanted, concurrency = 2, statePath, outDir, secret = 'fhir-async-demo-secret', exitAfterKickoff = false, log = () => {} } = opts;
  const client = new FhirAsyncClient({ baseUrl: base, retry: { minWaitMs: 50, initialBackoffMs: 50 } });
  const state = await loadState(statePath);
  // Saves run one after another (they share the temp file), the last one wins.
  let saving = Promise.resolve();
  const save = () => (saving = saving.then(() => saveState(statePath, state)));

  // Callback receiver: a verified callback wakes the job it concerns.
  const receiver = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      try {
        client.handleCallback(Buffer.concat(chunks), req.headers['x-signature'], secret);
        res.writeHead(204).end();
      } catch {
        res.writeHead(401).end(); // not signed by our server: it will be polled anyway
      }
    });
  });
  // The same port across restarts, so callbacks for jobs kicked off before a
  // restart still reach us. The receiver listens before any job is resumed: a
  // callback sent while we were down is lost, but the resume-time poll covers it.
  receiver.listen(state.callbackPort ?? 0, '127.0.0.1');
  await once(receiver, 'listening');
  state.callbackPort = receiver.address().port;
  const callbackUrl = `http://127.0.0.1:${state.callbackPort}/callback`;

  let active = 0;
  const waiters = [];
  const acquire = async () => {
    while (active >= concurrency) await new Promise((r) => waiters.push(r));
    active += 1;
  };
  const release = () => {
    active -= 1;
    waiters.shift()?.();
  };

  const runOne = async (entry) => {
    await acquire();
    try {
      let job;
      if (entry.saved) {
        job = client.resume(entry.saved);
        job.pollNow(); // the service was down: ask at once what happened meanwhile
        log(`resumed ${entry.name} at ${job.statusUrl}`);
      } else {
        job = await client.export({ outputFormat: 'application/fhir+ndjson', callbackUrl });
        log(`kicked off ${entry.name}: ${job.statusUrl}`);
      }
      const persist = () => {
        entry.saved = job.toJSON();
        return save();
      };
      await persist();
      if (exitAfterKickoff) return;
      job.onProgress(() => {
        entry.saved = job.toJSON();
      });
      const outcome = await job.wait();
      await persist();
      entry.status = outcome.status;
      if (outcome.status === 'completed' || outcome.status === 'completedWithErrors') {
        const { counts, failed } = await download(client, outcome, join(outDir, entry.name));
        entry.counts = counts;
        // A failed file is a report with `error`, not an exception: the other files
        // are kept; the job stays on the server (no cleanup) so they can be fetched again.
        entry.failed = failed;
        if (failed.length === 0) await job.cleanup();
        else log(`${entry.name}: ${failed.length} file(s) failed: ${failed.map((f) => f.error).join('; ')}`);
      }
      entry.status = `done:${outcome.status}`;
      await persist();
    } finally {
      release();
    }
  };

  for (let i = state.jobs.length; i < wanted; i += 1) state.jobs.push({ name: `export-${i}`, saved: null, status: 'new' });
  await save();
  const pending = state.jobs.filter((j) => !String(j.status).startsWith('done:'));
  try {
    await Promise.all(pending.map(runOne));
  } finally {
    receiver.close();
    receiver.closeAllConnections(); // keep-alive sockets from the server's callbacks
  }
  return state;
}

async function download(client, outcome, dir) {
  await mkdir(dir, { recursive: true });
  const files = new Map();
  const counts = {};
  const stream = client.resources(outcome);
  for await (const resource of stream) {
    const type = resource.resourceType;
    counts[type] = (counts[type] ?? 0) + 1;
    let f = files.get(type);
    if (!f) {
      f = createWriteStream(join(dir, `${type}.ndjson.tmp`));
      files.set(type, f);
    }
    if (!f.write(`${JSON.stringify(resource)}\n`)) await once(f, 'drain');
  }
  for (const [type, f] of files) {
    f.end();
    await once(f, 'finish');
    await rename(join(dir, `${type}.ndjson.tmp`), join(dir, `${type}.ndjson`)); // atomic per file
  }
  const failed = stream.stats.files.filter((r) => r.error).map((r) => ({ url: r.url, error: `${r.error.code}: ${r.error.message}` }));
  return { counts, failed };
}

async function loadState(path) {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch {
    return { jobs: [] };
  }
}

async function saveState(path, state) {
  await writeFile(`${path}.tmp`, JSON.stringify(state, null, 1));
  await rename(`${path}.tmp`, path); // a crash never leaves a half-written state file
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : dflt;
  };
  const state = await runService({
    base: arg('base'),
    jobs: Number(arg('jobs', '4')),
    concurrency: Number(arg('concurrency', '2')),
    statePath: arg('state', 'jobs.json'),
    outDir: arg('out', 'exports'),
    secret: arg('secret', 'fhir-async-demo-secret'),
    exitAfterKickoff: process.argv.includes('--exit-after-kickoff'),
    log: console.log,
  });
  for (const j of state.jobs) console.log(j.name, j.status, JSON.stringify(j.counts ?? {}));
  // --exit-after-kickoff stands for a crash: the jobs' pollers die with the process.
  process.exit(0);
}
