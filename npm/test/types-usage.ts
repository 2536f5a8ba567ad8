// Compiled by `tsc --noEmit` (test.sh): the README's usage, typed end to end.
import {
  FhirAsyncClient,
  FhirAsyncError,
  DownloadError,
  InvalidLineError,
  FileChangedError,
  ResponseTooLargeError,
  AttachmentOutcomeError,
  TooLargeError,
  JobFailedError,
  verifyCallback,
  backendServices,
  AuthError,
  Job,
  type Outcome,
  type Progress,
  type CancelResult,
  type FhirResource,
  type Action,
} from 'fhir-async';

async function main(): Promise<void> {
  const client = new FhirAsyncClient({
    baseUrl: 'https://fhir.example/r4',
    token: async () => 'token',
    retry: { minWaitMs: 20, initialBackoffMs: 20 },
  });
  const job = await client.export({
    types: ['Patient'],
    since: '2024-01-01T00:00:00Z',
    onProgress: (p: Progress) => console.log(p.phase === 'kickingOff' ? p.nextPollAtMs : p.warning),
  });
  const url: string | null = job.statusUrl;
  const off = job.onProgress((p: Progress) => console.log(p.phase, p.message, p.percent ?? 0, p.polls, p.nextPollInMs));
  const ac = new AbortController();
  const result: Outcome = await job.wait({ signal: ac.signal });
  off();
  if (result.result.kind === 'manifest') {
    const n: number = result.result.manifest.output.length;
    console.log(n, url);
  }
  const stream = client.resources(result, { type: 'Patient', signal: ac.signal });
  for await (const resource of stream) {
    const r: FhirResource = resource;
    console.log(r.resourceType, stream.stats.bytes);
  }
  const many = client.resources(result, {
    concurrency: 8,
    ordered: true,
    countCheck: 'lenient',
    onInvalidLine: (e: InvalidLineError) => console.log(e.detail.url, e.detail.line, e.detail.message),
    maxLine: 1 << 20,
  });
  for await (const batch of job.resources({ format: 'batches', onInvalidLine: 'raise' })) console.log(batch.length);
  for (const f of many.stats.files) {
    if (f.error) console.log(f.kind, f.error.code, f.error.message, f.resources);
    else console.log(f.countMismatch?.expected, f.invalid?.[0]?.line, f.warnings);
  }
  console.log(many.stats.failed, many.stats.invalidLines, result.warnings);
  for await (const line of job.resources({ format: 'text' })) {
    const s: string = line;
    console.log(s.length);
  }
  const saved = job.toJSON();
  const same = client.resume(JSON.stringify(saved));
  const cancelled: CancelResult | null = await same.cancel();
  if (cancelled?.kind === 'rejected') console.log(cancelled.httpStatus);
  await job.cleanup();

  const op = await client.kickoff({ method: 'POST', path: '$reindex', body: { resourceType: 'Parameters' }, asyncMode: 'bundle' });
  try {
    await op.wait({ throwOnFailure: true });
  } catch (e) {
    if (e instanceof JobFailedError) console.log(e.outcome.status);
    else if (e instanceof DownloadError) console.log(e.code);
    else if (e instanceof FhirAsyncError) console.log(e.code, e.name);
  }
  const payload = verifyCallback('{}', { 'x-signature': 'sha256=00' }, 'secret');
  console.log(payload.status, client.handleCallback('{}', new Headers(), 'secret').woken);

  // issue 11 §3 names and issue 12's auth
  console.log(verifyCallback('{}', 'sha256=00', 'secret').status);
  const smart = new FhirAsyncClient({
    baseUrl: 'https://fhir.example/r4',
    auth: backendServices({ clientId: 'c', key: { kty: 'EC', crv: 'P-384' }, scope: 'system/*.rs' }),
  });
  const j2 = await smart.export({ types: ['Patient'] });
  j2.pollNow();
  const state: string = j2.toJson();
  const done = await j2.wait();
  const s2 = smart.resources(done.manifest ?? done, { maxPerOrigin: 2, onProgress: (p) => console.log(p.originLimits, p.limitChanges) });
  for await (const r of s2) console.log(r.resourceType, s2.stats.limitChanges.length, state.length);
  try {
    await j2.cleanup();
  } catch (e) {
    if (e instanceof AuthError) console.log(e.details);
  }

  // issue 19: a file that changed (K7), an answer past its ceiling (K9)
  const big = new FhirAsyncClient({ baseUrl: 'https://fhir.example/r4', retry: { maxResponseBytes: 1 << 20 } });
  try {
    const o = await (await big.export()).wait();
    const s3 = big.resources(o, { validation: 'json' });
    for await (const r of s3) console.log(r.id);
    for (const f of s3.stats.files) if (f.error instanceof FileChangedError) console.log(f.error.code === 'file_changed', f.url);
  } catch (e) {
    if (e instanceof ResponseTooLargeError) console.log(e.code === 'response_too_large');
  }

  // Protocol M: attachments inline, their reports typed.
  const docs = big.resources(await (await big.export()).wait(), { type: 'DocumentReference', attachments: 'inline', attachmentTypes: ['text/'] });
  for await (const d of docs) console.log(d.id);
  for (const r of docs.stats.attachments) {
    if (r.error instanceof AttachmentOutcomeError || r.error instanceof TooLargeError) console.log(r.error.code, r.url);
    else console.log(r.fileName, r.sha1, r.size, r.contentType);
  }
  console.log(docs.stats.attachmentsFailed);

  const low = new Job({ baseUrl: 'https://fhir.example/r4', operation: { type: 'export' } });
  const a: Action = low.nextAction(Date.now());
  if (a.type === 'send') console.log(a.request.url, a.request.auth);
  else if (a.type === 'wait') console.log(a.delayMs);
}

void main;
