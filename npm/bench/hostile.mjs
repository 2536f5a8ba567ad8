// Memory on hostile input (issue 10 §3): what a download costs the client
// process when the manifest lists 100,000 output files, and when one line of
// a file is 100 MB (past the 64 MiB line limit). Each case runs in a fresh
// Node process; the figure is its peak RSS (`process.resourceUsage().maxRSS`)
// minus its RSS just before `export()`. The server is a separate process.
//   node bench/hostile.mjs [files=100000] [lineMB=100]
// To measure another build of the package, run the copy of this file that
// sits in that package's bench/ directory.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);
const [mode, ...args] = process.argv.slice(2);

if (mode === 'serve') {
  // The hostile server: kick-off 202, status 200 with the manifest, files.
  const files = Number(args[0]);
  const lineBytes = Number(args[1]) << 20;
  let manifest = null;
  const server = createServer((req, res) => {
    const base = `http://127.0.0.1:${server.address().port}/fhir`;
    if (req.url.startsWith('/fhir/$export') || req.url.startsWith('/fhir/line/$export')) {
      const line = req.url.startsWith('/fhir/line/');
      res.writeHead(202, { 'content-location': `${base}${line ? '/line' : ''}/status` });
      return res.end();
    }
    if (req.url === '/fhir/status') {
      manifest ??= JSON.stringify({
        transactionTime: '2026-01-01T00:00:00Z',
        request: `${base}/$export`,
        requiresAccessToken: false,
        output: Array.from({ length: files }, (_, i) => ({ type: 'Patient', url: `${base}/files/p-${i}.ndjson`, count: 1 })),
        error: [],
      });
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(manifest);
    }
    if (req.url.startsWith('/fhir/line/status')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(
        JSON.stringify({
          transactionTime: '2026-01-01T00:00:00Z',
          request: `${base}/$export`,
          requiresAccessToken: false,
          output: [{ type: 'Binary', url: `${base}/files/long.ndjson`, count: 1 }],
          error: [],
        }),
      );
    }
    if (req.url === '/fhir/files/long.ndjson') {
      res.writeHead(200, { 'content-type': 'application/fhir+ndjson' });
      const piece = Buffer.alloc(64 << 10, 0x61);
      let sent = 0;
      res.write('{"resourceType":"Binary","data":"');
      const more = () => {
        while (sent < lineBytes) {
          sent += piece.length;
          if (!res.write(piece)) return res.once('drain', more);
        }
        res.end('"}\n');
      };
      return more();
    }
    if (req.url.startsWith('/fhir/files/')) {
      res.writeHead(200, { 'content-type': 'application/fhir+ndjson' });
      return res.end(`{"resourceType":"Patient","id":"${req.url.slice(12)}"}\n`);
    }
    res.writeHead(404);
    res.end();
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => console.log(`http://127.0.0.1:${server.address().port}/fhir`));
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
} else if (mode === 'case') {
  // One measured case in a fresh process; prints one JSON line.
  const [which, base] = args;
  const { FhirAsyncClient } = await import('fhir-async');
  globalThis.gc?.();
  const rssBefore = process.memoryUsage().rss;
  const t0 = performance.now();
  const client = new FhirAsyncClient({
    baseUrl: which === 'line' ? `${base}/line` : base,
    retry: { minWaitMs: 10, initialBackoffMs: 10 },
  });
  const job = await client.export();
  const outcome = await job.wait();
  let resources = 0;
  let error = null;
  let failed = 0;
  const stream = client.resources(outcome, { format: 'text' });
  try {
    for await (const _ of stream) resources++;
    failed = stream.stats.failed ?? 0;
    error = stream.stats.files?.find((f) => f.error)?.error?.code ?? null;
  } catch (e) {
    error = e.code ?? String(e);
  }
  const peak = process.resourceUsage().maxRSS * 1024;
  console.log(
    JSON.stringify({
      case: which,
      resources,
      files: outcome.result.manifest.output.length,
      failed,
      error,
      seconds: (performance.now() - t0) / 1000,
      rssBeforeMB: rssBefore / 2 ** 20,
      peakMB: peak / 2 ** 20,
      costMB: (peak - rssBefore) / 2 ** 20,
    }),
  );
  process.exit(0);
} else {
  const files = Number(mode ?? 100000);
  const lineMB = Number(args[0] ?? 100);
  const server = spawn(process.execPath, [self, 'serve', String(files), String(lineMB)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const base = await new Promise((resolve) => server.stdout.once('data', (d) => resolve(String(d).trim())));
  const run = (which) =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--expose-gc', self, 'case', which, base], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`case ${which} exited ${code}`))));
    });
  console.log(`node ${process.version}, ${files} output files of one line each; one ${lineMB} MiB line (limit 64 MiB)`);
  for (const which of ['manifest', 'line']) {
    const r = await run(which);
    console.log(
      `${which.padEnd(8)} files ${r.files}, resources ${r.resources}, failed files ${r.failed}, error ${r.error}, ` +
        `${r.seconds.toFixed(1)} s, RSS before ${r.rssBeforeMB.toFixed(0)} MB, peak ${r.peakMB.toFixed(0)} MB, cost +${r.costMB.toFixed(0)} MB`,
    );
  }
  server.stdin.end();
}
