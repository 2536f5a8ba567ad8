// What a waiting job costs the Node process (issue 21): N jobs accepted by
// the reference server and waiting out a 600 s Retry-After, then the
// process's memory after a GC. No poll falls due during the run.
//   node --expose-gc bench/held.mjs [jobs=10000]
// Kick-offs go 500 at a time; prints memoryUsage() before and after, per job.
import { FhirAsyncClient } from 'fhir-async';
import { startServer } from '../test/server.mjs';

const n = Number(process.argv[2] ?? 10_000);
const srv = await startServer(['--patients', '10']);
const client = new FhirAsyncClient({ baseUrl: srv.base('bulk', 'ms=3600000;retry=600') });
const mem = () => {
  globalThis.gc?.();
  return process.memoryUsage();
};
const mib = (b) => (b / 2 ** 20).toFixed(1);
const before = mem();
const t0 = performance.now();
const jobs = [];
for (let k = 0; k < n; k += 500) {
  jobs.push(...(await Promise.all(Array.from({ length: Math.min(500, n - k) }, () => client.export({ types: ['Patient'] })))));
}
const kicked = performance.now() - t0;
// The first poll of each (one backoff after its kick-off) has gone out once every job counts one.
while (jobs.some((j) => j.stats.polls === 0)) await new Promise((r) => setTimeout(r, 200));
const after = mem();
const row = (k) => `${k} ${mib(before[k])} -> ${mib(after[k])} MiB (${((after[k] - before[k]) / n).toFixed(0)} B per job)`;
console.log(`${n} jobs waiting; kick-offs in ${(kicked / 1000).toFixed(1)} s; maxRSS ${mib(process.resourceUsage().maxRSS * 1024)} MiB`);
for (const k of ['rss', 'heapUsed', 'heapTotal', 'external']) console.log(row(k));
await srv.stop();
process.exit(0); // the jobs still wait: nothing more to measure
