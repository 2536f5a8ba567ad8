// A bulk export in the browser: live progress (the server's X-Progress text),
// a Cancel button, and resource counts per type once the files are streamed.
// Serve the repository root over HTTP and open /examples/browser/?base=<FHIR base>.
import { FhirAsyncClient } from '../../npm/src/browser.js';

const $ = (id) => document.getElementById(id);
const base = $('base');
base.value = new URLSearchParams(location.search).get('base') ?? '';
let job = null;

function setStatus(state, text) {
  $('status').dataset.state = state;
  $('status').textContent = text;
}

function renderCounts(manifestCounts, downloaded) {
  const body = $('counts').querySelector('tbody');
  body.replaceChildren();
  for (const [type, expected] of manifestCounts) {
    const tr = document.createElement('tr');
    tr.dataset.type = type;
    for (const v of [type, expected, downloaded.get(type) ?? 0]) {
      const td = document.createElement('td');
      td.textContent = String(v);
      tr.append(td);
    }
    body.append(tr);
  }
  $('counts').hidden = false;
}

$('start').addEventListener('click', async () => {
  $('start').disabled = true;
  $('counts').hidden = true;
  $('bar').value = 0;
  setStatus('starting', 'Kicking off…');
  try {
    const client = new FhirAsyncClient({ baseUrl: base.value, retry: { minWaitMs: 100, initialBackoffMs: 100 } });
    job = await client.export();
    $('cancel').disabled = false;
    setStatus('polling', `Polling ${job.statusUrl}`);
    job.onProgress((p) => {
      if (p.percent != null) $('bar').value = p.percent;
      $('progress-text').textContent = p.message ?? p.phase;
    });
    const outcome = await job.wait();
    $('cancel').disabled = true;
    if (outcome.status === 'cancelled') return;
    if (outcome.status === 'failed') {
      setStatus('error', `The server reports failure: ${outcome.message ?? ''}`);
      return;
    }
    $('bar').value = 100;
    $('progress-text').textContent = `${outcome.status} (last server progress: ${$('progress-text').textContent})`;
    const manifest = outcome.manifest; // the Bulk manifest of the result (issue 11 §3)
    const expected = new Map();
    for (const f of manifest.output) expected.set(f.type, (expected.get(f.type) ?? 0) + (f.count ?? 0));
    const got = new Map();
    setStatus('downloading', 'Downloading…');
    const stream = client.resources(outcome);
    for await (const r of stream) got.set(r.resourceType, (got.get(r.resourceType) ?? 0) + 1);
    renderCounts(expected, got);
    // A failed file is a report with `error` (the other files still arrive), not an exception.
    const { failed, files } = stream.stats;
    if (failed > 0) {
      const why = files.filter((f) => f.error).map((f) => `${f.fileName}: ${f.error.code}`);
      setStatus('error', `${failed} file(s) failed (${why.join(', ')}); ${stream.stats.resources} resources arrived.`);
    } else {
      setStatus('done', `Done: ${stream.stats.resources} resources, ${stream.stats.bytes} bytes.`);
    }
  } catch (e) {
    setStatus('error', `${e.name} (${e.code ?? 'error'}): ${e.message}`);
  } finally {
    $('start').disabled = false;
  }
});

$('cancel').addEventListener('click', async () => {
  if (!job) return;
  $('cancel').disabled = true;
  try {
    const r = await job.cancel();
    setStatus('cancelled', `Cancelled (${r?.kind ?? 'already finished'}).`);
  } catch (e) {
    setStatus('error', `${e.name} (${e.code ?? 'error'}): ${e.message}`);
  }
});
