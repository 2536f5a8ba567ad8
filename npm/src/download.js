// Streaming a finished job's files: one engine FileDownload per file; this
// file only moves bytes (fetch body chunks in, resource lines out).

import { FileDownload as CoreFileDownload } from '../wasm/fhir_async_wasm.js';
import { abortError, core, raceSignal, UsageError } from './errors.js';
import { flatHeaders, open } from './http.js';

/** Links a job's outcome to the job (non-enumerable), for `client.resources(result)`. */
export const JOB_OF = Symbol.for('fhir-async.job');

/**
 * An async iterable of resources with running figures:
 * `stats` = { bytes, resources, files: FileReport[] }.
 */
export function resourceStream(job, options = {}) {
  const {
    type,
    types,
    kinds = ['output'],
    signal,
    validation,
    format = 'json',
    onFile,
  } = options;
  if (!['json', 'text', 'batches'].includes(format)) {
    throw new UsageError(`format must be "json", "text" or "batches", not ${format}`);
  }
  const stats = { bytes: 0, resources: 0, files: [] };
  // The files yield one array of lines per body chunk; items are handed out
  // from that array without an async generator step per resource (each
  // `next()` is then one resolved promise: the cost of for-await itself).
  async function* chunks() {
    const plan = job.downloadPlan();
    const wanted = plan.filter(
      (f) =>
        kinds.includes(f.kind) &&
        (type === undefined || f.resourceType === type) &&
        (types === undefined || types.includes(f.resourceType)),
    );
    for (const file of wanted) {
      yield* one(job, file, { signal, validation, onFile }, stats);
    }
  }
  const source = chunks();
  const convert = format === 'text' ? (l) => l : (l) => JSON.parse(l);
  let batch = [];
  let at = 0;
  let finished = false;
  const iterator = {
    async next() {
      while (at >= batch.length) {
        if (finished) return { value: undefined, done: true };
        const r = await source.next();
        if (r.done) {
          finished = true;
          return { value: undefined, done: true };
        }
        batch = r.value;
        at = 0;
        if (format === 'batches') {
          at = batch.length;
          return { value: batch.map(convert), done: false };
        }
      }
      return { value: convert(batch[at++]), done: false };
    },
    async return(value) {
      finished = true;
      batch = [];
      await source.return(undefined);
      return { value, done: true };
    },
    [Symbol.asyncIterator]() {
      return this;
    },
    get stats() {
      return { bytes: stats.bytes, resources: stats.resources, files: [...stats.files] };
    },
  };
  return iterator;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = () => {
      clearTimeout(t);
      reject(abortError(signal));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** One body chunk, within `idleMs` of silence; an abort rejects at once. */
function readWithin(reader, idleMs, signal) {
  let timer;
  const idle = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no body data for ${idleMs} ms`)), idleMs);
  });
  return raceSignal(Promise.race([reader.read(), idle]), signal).finally(() => clearTimeout(timer));
}

const message = (e) => String(e?.cause?.message ?? e?.message ?? e);

/** One file: yields an array of resource lines per body chunk that completed some. */
async function* one(job, file, { signal, validation, onFile }, stats) {
  const client = job._client;
  const dl = core(() => new CoreFileDownload(file, client._retry, validation ? { validation } : null));
  const emit = function* (joined) {
    if (joined === '') return;
    const lines = joined.split('\n');
    stats.resources += lines.length;
    yield lines;
  };
  try {
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      const action = core(() => dl.nextAction(Date.now()));
      if (action.type === 'wait') {
        await sleep(action.delayMs, signal);
      } else if (action.type === 'refreshToken') {
        await client._token(true);
      } else if (action.type === 'refreshManifest') {
        const plan = await job._refreshManifest();
        const fresh = plan.find((f) => f.kind === file.kind && f.index === file.index) ?? null;
        core(() => dl.replaceFile(fresh));
      } else if (action.type === 'done') {
        stats.files.push(action.report);
        onFile?.(action.report);
        return;
      } else if (action.type === 'send') {
        const req = action.request;
        const token = req.auth ? await client._token() : null;
        const { promise, release } = open(client._fetch, req, token, signal, { headOnly: true });
        let reader = null;
        try {
          let res;
          try {
            res = await raceSignal(promise, signal);
          } catch (e) {
            if (signal?.aborted) throw abortError(signal);
            core(() => dl.handleTransportError(req.id, message(e), Date.now()));
            continue;
          }
          // fetch removes Content-Encoding itself (browsers and Node alike): already decoded.
          const decision = core(() => dl.handleHead(req.id, res.status, flatHeaders(res.headers), true, Date.now()));
          if (decision !== 'stream') {
            await res.body?.cancel().catch(() => {});
            continue;
          }
          reader = res.body.getReader();
          for (;;) {
            let chunk;
            try {
              // Raced, not only linked: some fetch implementations never settle a
              // pending read of a decompressed body after an abort.
              chunk = await readWithin(reader, req.timeoutMs, signal);
            } catch (e) {
              if (signal?.aborted) throw abortError(signal);
              core(() => dl.handleTransportError(req.id, message(e), Date.now()));
              break;
            }
            if (chunk.done) {
              yield* emit(core(() => dl.finish(req.id, Date.now())));
              break;
            }
            stats.bytes += chunk.value.byteLength;
            yield* emit(core(() => dl.feed(req.id, chunk.value, Date.now())));
            // A body the engine could not decode: it has scheduled the retry itself.
            if (dl.discarded) break;
          }
        } finally {
          release();
          if (reader) reader.cancel().catch(() => {});
        }
      } else {
        throw new UsageError(`unknown download action ${action.type}`);
      }
    }
  } finally {
    dl.free();
  }
}
