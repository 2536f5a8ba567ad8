// One Node process holding many concurrent jobs that poll the reference
// server: peak RSS and how late each poll was against its due time.
//   node bench/jobs.mjs [jobs=1000] [jobMs=15000] [retryAfterS=1] [spreadMs=retryAfter] [policy=fast]
// `policy=fast` polls 20 ms after each kick-off (the kick-off 202 carries no
// Retry-After) and every 20 ms on errors; `policy=defaults` uses the client's
// default retry policy (first poll 1 s after the kick-off).
// Kick-offs are spread evenly over `spreadMs` (default one Retry-After period),
// as jobs started by real users are; `spreadMs=0` starts them all at once, so
// every poll of every job falls due in the same millisecond (a worst case).
// Issue 21 (100,000 jobs at 1,000 polls/s): `node bench/jobs.mjs 100000 250000 100 100000 defaults`.
// Kick-offs are paced by one loop (no timer per job in the bench either); the
// report adds the reference server's peak RSS (Linux /proc) and the load
// average at the start and the end.
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg, cpus } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { FhirAsyncClient } from 'fhir-async';
import { startServer } from '../test/server.mjs';

const n = Number(process.argv[2] ?? 1000);
const jobMs = Number(process.argv[3] ?? 15000);
const retryAfter = Number(process.argv[4] ?? 1);
const spreadMs = Number(process.argv[5] ?? retryAfter * 1000);
const policy = process.argv[6] ?? 'fast';
const srv = await startServer(['--patients', '10']);
const client = new FhirAsyncClient({
  baseUrl: srv.base('bulk', `ms=${jobMs};retry=${retryAfter}`),
  retry: policy === 'defaults' ? undefined : { minWaitMs: 20, initialBackoffMs: 20, jitterPercent: 0 },
});

let peakRss = 0;
const sample = () => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
};
const sampler = setInterval(sample, 100);
// A line every 10 s on stderr: how far the run is, on a machine that may be slower than planned.
let accepted = 0;
const progress = setInterval(() => {
  const polls = liveJobs.reduce((a, j) => a + j.stats.polls, 0);
  console.error(`${((Date.now() - t0) / 1000).toFixed(0)} s: ${accepted} kick-offs accepted, ${polls} polls, RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB, load ${loadavg()[0].toFixed(1)}`);
}, 10_000);
const liveJobs = [];
const loopDelay = monitorEventLoopDelay({ resolution: 5 });
loopDelay.enable();
const load0 = loadavg();
const t0 = Date.now();
const started = [];
// SIGINT / SIGTERM: the figures of the jobs accepted so far, marked partial (a run the machine could not keep up with).
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, async () => {
    await report(liveJobs, null, `PARTIAL: stopped by ${sig} after ${Date.now() - t0} ms`);
    process.exit(2);
  });
}
for (let k = 0; k < n; ) {
  const target = spreadMs > 0 ? Math.min(n, Math.floor(((Date.now() - t0) * n) / spreadMs) + 1) : n;
  // At most 50 per turn of the event loop: a run that fell behind catches up without one long stall.
  for (const end = Math.min(k + 50, target); k < end; k++) {
    started.push(
      client.export({ types: ['Patient'] }).then((j) => {
        accepted++;
        liveJobs.push(j);
        return j;
      }),
    );
  }
  if (k < n) await new Promise((r) => setTimeout(r, k < target ? 0 : 5));
}
const jobs = await Promise.all(started);
const kicked = Date.now() - t0;
const outcomes = await Promise.all(jobs.map((j) => j.wait()));
await report(jobs, outcomes, `kick-offs done in ${kicked} ms, all done in ${Date.now() - t0} ms`);

async function report(jobs, outcomes, what) {
  clearInterval(sampler);
  clearInterval(progress);
  sample();
  const serverPeak = serverPeakRss();
  await srv.stop();
  const bad = outcomes ? outcomes.filter((o) => o.status !== 'completed').length : 0;
  const late = jobs.map((j) => j.stats.maxPollLatenessMs).sort((a, b) => a - b);
  const polls = jobs.reduce((a, j) => a + j.stats.polls, 0);
  const pct = (p) => late[Math.min(late.length - 1, Math.floor((p / 100) * late.length))];
  console.log(`jobs=${n} jobMs=${jobMs} Retry-After=${retryAfter}s spread=${spreadMs}ms policy=${policy}: ${what}; ${jobs.length} jobs accepted, ${polls} polls, ${outcomes ? `${bad} not completed` : 'not waited for'}`);
  loopDelay.disable();
  console.log(`event loop delay (ms): p50 ${(loopDelay.percentile(50) / 1e6).toFixed(1)}  p99 ${(loopDelay.percentile(99) / 1e6).toFixed(1)}  max ${(loopDelay.max / 1e6).toFixed(1)}`);
  const mb = (b) => (b / 2 ** 20).toFixed(0);
  console.log(`peak RSS ${mb(peakRss)} MB sampled, ${mb(process.resourceUsage().maxRSS * 1024)} MB maxRSS; reference server peak RSS ${serverPeak === null ? '?' : `${mb(serverPeak)} MB`}`);
  const mean = jobs.reduce((a, j) => a + j.stats.totalPollLatenessMs, 0) / polls;
  const load = (l) => l.map((x) => x.toFixed(1)).join(' ');
  console.log(`mean poll lateness ${mean.toFixed(1)} ms; load average ${load(load0)} at the start, ${load(loadavg())} at the end, on ${cpus().length} CPUs`);
  console.log(`worst lateness per job (ms): p50 ${pct(50)}  p99 ${pct(99)}  max ${late.at(-1)}; jobs with a poll > 50 ms late: ${late.filter((x) => x > 50).length}, > 100 ms late: ${late.filter((x) => x > 100).length}`);
  if (bad) process.exitCode = 1;
}

/** The peak RSS (VmHWM) of the reference server, our child process (Linux only; null elsewhere). */
function serverPeakRss() {
  try {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      let stat;
      try {
        stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      } catch {
        continue;
      }
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid || !stat.includes('(fhir-async-test')) continue;
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (hwm) return Number(hwm[1]) * 1024;
    }
  } catch {
    // not Linux
  }
  return null;
}
