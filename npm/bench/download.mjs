// Download + parse of a large export in Node: fhir-async (wasm NDJSON splitter)
// side by side with a plain-JS baseline (fetch + TextDecoder + split + JSON.parse)
// on the same reference server and the same manifest.
//   node bench/download.mjs [patients=60000] [rounds=2]
import { FhirAsyncClient } from 'fhir-async';
import { startServer } from '../test/server.mjs';

const patients = Number(process.argv[2] ?? 60000);
const rounds = Number(process.argv[3] ?? 2);
const srv = await startServer(['--patients', String(patients), '--job-ms', '100']);
const client = new FhirAsyncClient({ baseUrl: srv.base('bulk', 'retry=0'), retry: { minWaitMs: 20, initialBackoffMs: 20 } });
const outcome = await (await client.export()).wait();
const files = outcome.result.manifest.output;

let peakRss = 0;
let rssTrace = [];
const sampler = setInterval(() => {
  const rss = process.memoryUsage().rss;
  peakRss = Math.max(peakRss, rss);
  rssTrace.push(rss);
}, 50);
/** Peak RSS in each quarter of the run: flat memory shows as four equal numbers. */
const quarters = (trace) => [0, 1, 2, 3].map((q) => Math.max(...trace.slice(Math.floor((q * trace.length) / 4), Math.max(Math.floor(((q + 1) * trace.length) / 4), 1))) / 2 ** 20);

async function baseline() {
  let resources = 0;
  let bytes = 0;
  for (const f of files) {
    const res = await fetch(f.url);
    const decoder = new TextDecoder();
    let carry = '';
    for await (const chunk of res.body) {
      bytes += chunk.byteLength;
      const text = carry + decoder.decode(chunk, { stream: true });
      const lines = text.split('\n');
      carry = lines.pop();
      for (const l of lines) if (l.trim()) { JSON.parse(l); resources++; }
    }
    carry += decoder.decode();
    if (carry.trim()) { JSON.parse(carry); resources++; }
  }
  return { resources, bytes };
}

async function ours(format) {
  const stream = client.resources(outcome, { format });
  let resources = 0;
  for await (const item of stream) resources += format === 'batches' ? item.length : 1;
  return { resources, bytes: stream.stats.bytes };
}

const runs = { 'plain JS baseline': baseline, 'fhir-async (per resource)': () => ours('json'), 'fhir-async (batches)': () => ours('batches') };
const results = {};
for (let r = 0; r < rounds; r++) {
  for (const [name, fn] of Object.entries(runs)) {
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    peakRss = rssBefore;
    rssTrace = [];
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const { resources, bytes } = await fn();
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    (results[name] ??= []).push({
      ms,
      cpuMs: (cpu.user + cpu.system) / 1000,
      resources,
      bytes,
      peakRssMB: peakRss / 2 ** 20,
      rssBeforeMB: rssBefore / 2 ** 20,
      quarters: quarters(rssTrace),
    });
  }
}
clearInterval(sampler);
await srv.stop();

const expected = files.reduce((a, f) => a + f.count, 0);
console.log(`patients=${patients} files=${files.length} resources=${expected}`);
for (const [name, rs] of Object.entries(results)) {
  const best = rs.reduce((a, b) => (a.ms < b.ms ? a : b));
  if (best.resources !== expected) throw new Error(`${name}: ${best.resources} resources, expected ${expected}`);
  const cpuBest = Math.min(...rs.map((x) => x.cpuMs));
  console.log(
    `${name.padEnd(26)} wall best ${best.ms.toFixed(0)} ms (${rs.map((x) => x.ms.toFixed(0)).join(', ')})  ` +
      `client CPU best ${cpuBest.toFixed(0)} ms (${rs.map((x) => x.cpuMs.toFixed(0)).join(', ')})  ` +
      `${(best.bytes / 2 ** 20).toFixed(0)} MiB decoded, ${(best.bytes / 2 ** 20 / (best.ms / 1000)).toFixed(0)} MiB/s  ` +
      `RSS per quarter of the run (MB): ${best.quarters.map((q) => q.toFixed(0)).join(' / ')}`,
  );
}
