// The download window of one export (issue 10 §2), side by side in one run on
// one reference server: npm with its default 4 parallel files, npm one file at
// a time (the old behaviour), 4 parallel `curl`s on the same file URLs, and
// Python's `result.download(concurrency=4)` when its venv is built.
//   node bench/parallel.mjs [patients=60000] [fileResources=1800] [slowBytesPerSec=0] [rounds=1]
// `slowBytesPerSec` throttles each file body on the wire (fault `slow=`), like
// a remote server's per-connection rate; 0 = loopback speed (CPU-bound).
// Python: FHIR_ASYNC_PYTHON=path/to/python (default ../.venv/bin/python) with
// the `fhir_async` package; without it the row says "not measured".
import { spawn, spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FhirAsyncClient } from 'fhir-async';
import { startServer } from '../test/server.mjs';

const patients = Number(process.argv[2] ?? 60000);
const fileResources = Number(process.argv[3] ?? 1800);
const slow = Number(process.argv[4] ?? 0);
const rounds = Number(process.argv[5] ?? 1);
const root = fileURLToPath(new URL('../../', import.meta.url));
const python = process.env.FHIR_ASYNC_PYTHON ?? join(root, '.venv/bin/python');

const srv = await startServer(['--patients', String(patients), '--file-resources', String(fileResources), '--job-ms', '100']);
const base = srv.base('bulk', slow > 0 ? `retry=0;slow=${slow}` : 'retry=0');
const retry = { minWaitMs: 20, initialBackoffMs: 20 };

/** A fresh export job's outcome (the same deterministic files each time). */
async function exported() {
  const client = new FhirAsyncClient({ baseUrl: base, retry });
  return { client, outcome: await (await client.export()).wait() };
}

async function npm(concurrency) {
  const { client, outcome } = await exported();
  const t0 = performance.now();
  const stream = client.resources(outcome, { concurrency, format: 'batches' });
  let resources = 0;
  for await (const batch of stream) resources += batch.length;
  const s = (performance.now() - t0) / 1000;
  if (stream.stats.failed) throw new Error(`${stream.stats.failed} files failed`);
  return { s, resources, bytes: stream.stats.bytes, files: stream.stats.files.length };
}

let wire = 0; // bytes on the wire (gzip), as curl counted them
async function curl() {
  const { outcome } = await exported();
  const urls = outcome.result.manifest.output.map((f) => f.url);
  const t0 = performance.now();
  // The headers the engine sends for a file (gzip asked; --compressed decodes it).
  const child = spawn(
    'xargs',
    ['-P', '4', '-n', '1', 'curl', '-s', '-f', '-o', '/dev/null', '-w', '%{size_download}\\n', '--compressed', '-H', 'Accept: application/fhir+ndjson'],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stdin.end(urls.join('\n') + '\n');
  const code = await new Promise((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`curl exited ${code}`);
  wire = out.split('\n').reduce((a, l) => a + (Number(l) || 0), 0);
  return { s: (performance.now() - t0) / 1000, files: urls.length };
}

const PY = `
import json, sys, tempfile, time, fhir_async
client = fhir_async.Client(sys.argv[1])
result = client.export().wait()
with tempfile.TemporaryDirectory() as d:
    t0 = time.perf_counter()
    paths = result.download(d, concurrency=4)
    print(json.dumps({"s": time.perf_counter() - t0, "files": len(paths)}))
`;
function pythonRun() {
  if (spawnSync(python, ['-c', 'import fhir_async'], { stdio: 'ignore' }).status !== 0) return null;
  const r = spawnSync(python, ['-c', PY, base], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`python: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1));
}

const rows = {
  'npm, 4 files at once (default)': () => npm(4),
  'npm, 1 file at a time (before)': () => npm(1),
  '4 parallel curl --compressed': curl,
  'Python download(concurrency=4)': async () => pythonRun(),
};
const results = {};
const load = [loadavg()[0]];
for (let r = 0; r < rounds; r++) {
  for (const [name, fn] of Object.entries(rows)) {
    const x = await fn();
    if (x) (results[name] ??= []).push(x);
  }
  load.push(loadavg()[0]);
}
await srv.stop();

const first = results['npm, 4 files at once (default)'][0];
console.log(
  `${patients} patients, --file-resources ${fileResources}: ${first.files} files, ${first.resources} resources, ` +
    `${(first.bytes / 1e6).toFixed(0)} MB of NDJSON (decoded; ${(wire / 1e6).toFixed(0)} MB gzip on the wire)${slow > 0 ? `, each body throttled to ${slow} B/s on the wire` : ', loopback'}; ` +
    `load average ${load.map((l) => l.toFixed(1)).join(' -> ')}`,
);
for (const name of Object.keys(rows)) {
  const rs = results[name];
  if (!rs) {
    console.log(`${name.padEnd(32)} not measured (no fhir_async at ${python}; set FHIR_ASYNC_PYTHON)`);
    continue;
  }
  console.log(`${name.padEnd(32)} download window ${rs.map((x) => `${x.s.toFixed(1)} s`).join(', ')}`);
}
