// `client.resources()` over a manifest of 100,000 files from the reference
// server (issue 21: "npm client.resources over the 100,000-file manifest:
// <= +64 MiB"). The server (`--file-resources 1`) hands out one NDJSON file
// per Patient, so an export of Patient over N patients lists N `output`
// entries, as `python/bench/many_files.py` does for Python.
//   node --expose-gc bench/many_files.mjs [files=100000] [concurrency=4]
// Prints the RSS just before `resources()` (after a GC), the peak RSS while
// its resources are read (sampled every 5 ms, and the process's maxRSS), the
// difference (the cost of the download), times and the load average.
import { loadavg } from 'node:os';
import { FhirAsyncClient } from 'fhir-async';
import { startServer } from '../test/server.mjs';

const files = Number(process.argv[2] ?? 100_000);
const concurrency = Number(process.argv[3] ?? 4);
const load0 = loadavg();
const srv = await startServer(['--patients', String(files), '--file-resources', '1', '--job-ms', '100', '--retry-after', '0']);
try {
  const client = new FhirAsyncClient({
    baseUrl: srv.base('bulk'),
    // The server builds the 100,000-file job while it answers the kick-off: minutes on a busy machine.
    retry: { minWaitMs: 20, initialBackoffMs: 20, jitterPercent: 0, requestTimeoutMs: 1_800_000 },
    timeoutMs: 3_600_000,
  });
  const t0 = performance.now();
  const job = await client.export({ types: ['Patient'] });
  const result = await job.wait({ throwOnFailure: true });
  const t1 = performance.now();
  globalThis.gc?.();
  const before = process.memoryUsage().rss;
  const maxBefore = process.resourceUsage().maxRSS * 1024;
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 5);
  const stream = client.resources(result, { concurrency });
  let resources = 0;
  for await (const r of stream) {
    if (r.resourceType === 'Patient') resources++;
  }
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  const t2 = performance.now();
  const maxRss = process.resourceUsage().maxRSS * 1024;
  const mib = (b) => (b / 2 ** 20).toFixed(1);
  const st = stream.stats;
  const out = {
    files: result.manifest.output.length,
    filesReported: st.files.length,
    failed: st.failed,
    resources,
    concurrency,
    wait_s: +((t1 - t0) / 1000).toFixed(1),
    resources_s: +((t2 - t1) / 1000).toFixed(1),
    rss_before_mib: +mib(before),
    rss_peak_during_mib: +mib(peak),
    delta_mib: +mib(peak - before),
    // maxRSS may have peaked before the download (the manifest's parse); it is an upper bound here.
    process_max_rss_mib: +mib(maxRss),
    max_rss_grew_during_mib: +mib(Math.max(0, maxRss - maxBefore)),
    load_average: `${load0.map((x) => x.toFixed(1)).join(' ')} at the start, ${loadavg().map((x) => x.toFixed(1)).join(' ')} at the end`,
  };
  console.log(JSON.stringify(out));
  if (resources !== files || st.failed) process.exitCode = 1;
} finally {
  await srv.stop();
}
