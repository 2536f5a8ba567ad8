// One request of one file: fetch, read the body within its idle time, hand
// the chunks to the core's `Downloads` and turn the lines it returns into
// items. Which file, when, how many at once, retries, refreshes and the
// file's result are the core's (issue 11: the binding moves bytes only).

import { ceilings } from '../wasm/fhir_async_wasm.js';
import { abortError, core, raceSignal } from './errors.js';
import { concat, flatHeaders, open } from './http.js';

let limits = null;
/**
 * The core's ceilings and defaults (`maxErrorBody`, `maxInvalidReported`,
 * `defaultMaxPerOrigin`, ...): read from the engine once it is loaded, never copied.
 */
export const coreLimits = () => (limits ??= ceilings());

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
  return concat(parts, n);
}

export const message = (e) => String(e?.cause?.message ?? e?.message ?? e);

const NEWLINE = new Uint8Array([10]);
/** What starts a line the core found invalid (or not UTF-8), then the core's words for it (`Downloads.feed`). */
const MARKED = 0;

/**
 * Lines to items. Which lines are resources is the core's rule, applied as
 * they cross (the validation given to `Downloads`): a line it marks is handed
 * to `bad(index, message)` with its words and left out; `bad` answers true to
 * stop there. JSON is parsed here (format "json"); a line that passed the
 * asked validation but does not parse (validation "none" or "structural") is
 * bad too, with the parser's words. `hold(line)` (attachments, protocol M)
 * answers true for a line the core keeps until its attachments are fetched.
 */
export function itemsOf(lines, format, hold, bad) {
  const text = format === 'text';
  const items = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    let v = l;
    let why = null;
    if (l.charCodeAt(0) === MARKED) why = l.slice(1);
    // A line the core holds for its attachments comes back later (`attachments.js`).
    else if (hold?.(l)) continue;
    else if (!text) {
      try {
        v = JSON.parse(l);
      } catch (e) {
        why = e.message;
      }
    }
    if (why === null) items.push(v);
    else if (bad(i, why)) break;
  }
  return items;
}

/**
 * Sends `req` for file `run.i` and streams its body into the core; `emit(run,
 * joinedLines)` hands lines out and resolves when the consumer has room
 * (backpressure). Returns when the request is over, whatever the core decided.
 */
export async function transfer(ctx, run, req) {
  const { dl, client, signal, stats } = ctx;
  run.attempts++;
  const token = req.auth ? await client._token() : null;
  const { promise, release } = open(client._fetch, req, token, signal, { headOnly: true });
  let reader = null;
  try {
    let res;
    try {
      res = await raceSignal(promise, signal);
    } catch (e) {
      if (signal.aborted) throw abortError(signal);
      core(() => dl.handleTransportError(run.i, req.id, message(e), Date.now()));
      return;
    }
    if (ctx.closed) return;
    // fetch removes Content-Encoding itself (browsers and Node alike): already decoded.
    const decision = core(() => dl.handleHead(run.i, req.id, res.status, flatHeaders(res.headers), true, Date.now()));
    if (decision !== 'stream') {
      // The server's words of a refusal, in case it ends the file (issue 10 §2).
      if (res.status >= 400) run.refusal = await readUpTo(res.body, coreLimits().maxErrorBody, req.timeoutMs, signal);
      else await res.body?.cancel().catch(() => {});
      return;
    }
    // What the body is (an attachment's media type, protocol M5): handed to the core with the bytes.
    run.contentType = res.headers.get('content-type');
    reader = res.body.getReader();
    let last;
    for (;;) {
      let chunk;
      try {
        // Raced, not only linked: some fetch implementations never settle a
        // pending read of a decompressed body after an abort.
        chunk = await readWithin(reader, req.timeoutMs, signal);
      } catch (e) {
        if (signal.aborted) throw abortError(signal);
        if (ctx.closed) return;
        core(() => dl.handleTransportError(run.i, req.id, message(e), Date.now()));
        return;
      }
      if (ctx.closed) return;
      if (chunk.done) {
        // A whole last line (`}`) without its newline is ended here, so it is
        // checked (and reported if bad) before the core's count check at finish;
        // a cut one is left to the core (a truncated body: retried).
        if (last === 125 && !run.file.opaqueFormat) {
          await ctx.emit(run, core(() => dl.feed(run.i, req.id, NEWLINE, Date.now())));
          if (dl.discarded || ctx.closed) return;
        }
        await ctx.emit(run, core(() => dl.finish(run.i, req.id, Date.now())));
        return;
      }
      if (chunk.value.byteLength > 0) last = chunk.value.at(-1);
      stats.bytes += chunk.value.byteLength;
      run.bytes += chunk.value.byteLength;
      const lines = core(() => dl.feed(run.i, req.id, chunk.value, Date.now()));
      // A body the core could not use: it has scheduled what comes next itself.
      const over = dl.discarded;
      await ctx.emit(run, lines);
      if (over || ctx.closed) return;
    }
  } finally {
    release();
    if (reader) reader.cancel().catch(() => {});
  }
}
