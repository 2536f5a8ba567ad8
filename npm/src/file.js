// One file of a download: drives an engine FileDownload with fetch and turns
// its lines into items (resources or text). A failure of this file ends in a
// report with `error`, never in an exception (issue 10 §2: one bad file never
// loses the rest); only an abort, `onInvalidLine: 'raise'` or a misuse throw.

import { FileDownload as CoreFileDownload } from '../wasm/fhir_async_wasm.js';
import { abortError, core, DownloadError, fromCore, InvalidLineError, raceSignal, UsageError } from './errors.js';
import { flatHeaders, open } from './http.js';

/** How much of an error response's body is read for the server's own words (core MAX_ERROR_BODY). */
const MAX_ERROR_BODY = 64 << 10;
/** Invalid lines listed in a failed file's report (the engine keeps as many for a finished one). */
const MAX_INVALID_REPORTED = 100;

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

/** At most `limit` bytes of a body (for an error's server text); never throws. */
async function readUpTo(body, limit, idleMs, signal) {
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const parts = [];
  let n = 0;
  try {
    while (n < limit) {
      const { done, value } = await readWithin(reader, idleMs, signal);
      if (done) break;
      parts.push(value.subarray(0, limit - n));
      n += Math.min(value.byteLength, limit - n);
    }
  } catch {
    // What was read so far is enough.
  } finally {
    reader.cancel().catch(() => {});
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

const message = (e) => String(e?.cause?.message ?? e?.message ?? e);

/**
 * Lines to items. JSON is parsed here (the engine runs with validation
 * "none"); a line that does not parse, or does not pass the asked validation,
 * is handed to `bad(index, message)` and left out; `bad` answers true to stop there.
 */
function itemsOf(lines, format, validation, bad) {
  const text = format === 'text';
  const items = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    let v = l;
    let why = null;
    if (!text || validation === 'json') {
      try {
        v = JSON.parse(l);
        if (validation !== 'none' && (v === null || typeof v !== 'object' || Array.isArray(v))) why = 'not a JSON object';
      } catch (e) {
        why = e.message;
      }
      if (text) v = l;
    } else if (validation !== 'none') {
      const t = l.trim();
      if (t[0] !== '{' || t.at(-1) !== '}') why = 'not a JSON object';
    }
    if (why === null) items.push(v);
    else if (bad(i, why)) break;
  }
  return items;
}

/**
 * Yields `{items, chars}` per body chunk that completed lines; sets
 * `run.report` (a FileReport, with `error` when the file failed) at the end.
 */
export async function* fileItems(job, planned, settings, stats, run) {
  const client = job._client;
  const { signal, format, validation, countCheck, onInvalidLine, maxLine } = settings;
  let file = planned;
  const gen = job._planGeneration;
  let refusal = null; // the start of the last error body the engine retried
  const own = { bytes: 0, attempts: 0, invalidLines: 0, firstInvalidLine: null, invalid: [] };
  let dl = null;

  /** Items of the lines the engine just handed out (joined with "\n"). */
  const parse = (joined) => {
    if (joined === '') return null;
    const lines = joined.split('\n');
    const first = dl.resources - lines.length + 1; // 1-based number of lines[0] in the file
    let raise = null;
    const items = itemsOf(lines, format, validation, (i, msg) => {
      const line = first + i;
      dl.reportInvalidLine(line, msg);
      stats.invalidLines++;
      own.invalidLines++;
      own.firstInvalidLine ??= line;
      if (own.invalid.length < MAX_INVALID_REPORTED) own.invalid.push({ line, message: msg });
      if (onInvalidLine === 'report') return false;
      const err = fromCore(dl.invalidLineError(line, msg));
      if (onInvalidLine !== 'raise') {
        onInvalidLine(err);
        return false;
      }
      raise = err; // the valid lines before it still go out, then the error
      return true;
    });
    return { items, chars: joined.length, raise };
  };

  const out = function* (part) {
    if (!part) return;
    if (part.items.length > 0 || !part.raise) yield { items: part.items, chars: part.chars };
    if (part.raise) throw part.raise;
  };

  try {
    // A blocked file (the token rule) already fails here.
    dl = core(() => new CoreFileDownload(file, client._retry, { validation: 'none', countCheck, maxLine }));
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      const action = core(() => dl.nextAction(Date.now()));
      if (action.type === 'wait') {
        await sleep(action.delayMs, signal);
      } else if (action.type === 'refreshToken') {
        const why = client._whyNoTokenRefresh();
        if (why) {
          dl.tokenUnavailable(why);
          throw fromCore(dl.withBody(refusal ?? new Uint8Array(0)));
        }
        await client._token(true);
      } else if (action.type === 'refreshManifest') {
        // One refresh serves every file of the job (protocol E4).
        const fresh = await job._freshFile(file, gen);
        core(() => dl.replaceFile(fresh));
        if (fresh) file = fresh;
      } else if (action.type === 'done') {
        run.report = action.report;
        return;
      } else if (action.type === 'send') {
        own.attempts++;
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
          let decision;
          try {
            // fetch removes Content-Encoding itself (browsers and Node alike): already decoded.
            decision = core(() => dl.handleHead(req.id, res.status, flatHeaders(res.headers), true, Date.now()));
          } catch (e) {
            // A final HTTP error: the server's own words go into the error (issue 10 §2).
            if (e instanceof DownloadError && res.body) {
              const body = await readUpTo(res.body, MAX_ERROR_BODY, req.timeoutMs, signal);
              throw fromCore(dl.withBody(body));
            }
            throw e;
          }
          if (decision !== 'stream') {
            // The server's words of a refusal the engine retries, in case it ends the file.
            if (res.status >= 400) refusal = await readUpTo(res.body, MAX_ERROR_BODY, req.timeoutMs, signal);
            else await res.body?.cancel().catch(() => {});
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
              yield* out(parse(core(() => dl.finish(req.id, Date.now()))));
              break;
            }
            stats.bytes += chunk.value.byteLength;
            own.bytes += chunk.value.byteLength;
            yield* out(parse(core(() => dl.feed(req.id, chunk.value, Date.now()))));
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
  } catch (e) {
    const err = fromCore(e);
    if (!(err instanceof DownloadError) || err instanceof InvalidLineError) throw err;
    run.report = failedReport(file, dl?.resources ?? 0, own, err);
  } finally {
    dl?.free();
  }
}

/** The report of a file that failed: what it delivered before, and why it stopped. */
function failedReport(file, resources, own, error) {
  return {
    url: file.url,
    kind: file.kind,
    resourceType: file.resourceType,
    fileName: file.fileName,
    resources,
    expected: file.expectedCount,
    bytes: own.bytes,
    invalidLines: own.invalidLines,
    firstInvalidLine: own.firstInvalidLine,
    invalid: own.invalid,
    attempts: own.attempts,
    error,
  };
}
