// Streaming a finished job's files through the core's `Downloads`
// coordinator (issue 11): the core says which file to fetch next, how many
// run at once per origin (halved on 429/503, grown back: K3), when the one
// token or manifest refresh happens (also before links expire: K4), and each
// file's result. This file only runs what it says (`file.js`) and hands the
// items out: in file order per type when `ordered`, with bounded read-ahead.

import { Downloads as CoreDownloads, redactUrl } from '../wasm/fhir_async_wasm.js';
import { abortError, core, fromCore, raceSignal, UsageError } from './errors.js';
import { coreLimits, itemsOf, message, transfer } from './file.js';
import { attachmentsOf } from './attachments.js';

/** Links a job's outcome to the job (non-enumerable), for `client.resources(result)`. */
export const JOB_OF = Symbol.for('fhir-async.job');

const FORMATS = ['json', 'text', 'batches'];
/** Items an unordered file may run ahead of the consumer (then its body waits: backpressure). */
const AHEAD_UNORDERED = 2;
/** Characters of lines a file that is not first of its type may hold while `ordered` waits for it. */
const AHEAD_ORDERED_CHARS = 8 << 20;

/** `maxPerOrigin`, or its deprecated alias `concurrency` (`undefined`: the core's default). */
const perOrigin = (o) => o.maxPerOrigin ?? o.concurrency;

function check(options) {
  const { format = 'json', onInvalidLine } = options;
  if (!FORMATS.includes(format)) throw new UsageError(`format must be "json", "text" or "batches", not ${format}`);
  const n = perOrigin(options);
  if (n !== undefined && (!Number.isInteger(n) || n < 1)) throw new UsageError(`maxPerOrigin must be a whole number >= 1, not ${n}`);
  // countCheck, validation and onInvalidLine's names are checked by the core (a UsageError naming them).
  if (onInvalidLine != null && typeof onInvalidLine !== 'string' && typeof onInvalidLine !== 'function') {
    throw new UsageError(`onInvalidLine must be "report", "raise" or a function, not ${onInvalidLine}`);
  }
}

/**
 * An async iterable of resources with running figures: `stats` = { bytes,
 * resources, files: FileReport[], failed, invalidLines, originLimits,
 * limitChanges }. A file that fails is a report with `error` (the others go
 * on); only an abort, `onInvalidLine: 'raise'` or a misuse end the iteration
 * with an error.
 */
export function resourceStream(job, options = {}) {
  check(options);
  const { type, types, kinds = ['output'], signal, format = 'json', onFile, onProgress, ordered = false } = options;
  const { onInvalidLine, saveProgress = false } = options;
  const dl = core(
    () =>
      new CoreDownloads(
        job.engine,
        kinds,
        type !== undefined ? [type] : (types ?? []),
        perOrigin(options),
        options.countCheck, // undefined: the core's default (strict)
        // The core decides what an invalid line does to its file; a function is
        // told about each one and the file goes on (the core's "report").
        typeof onInvalidLine === 'function' ? 'report' : onInvalidLine,
        options.maxLine ?? 0,
        options.skipFiles ?? [],
        options.expiresAtMs ?? 0, // 0: the outcome's
        options.gzip, // undefined: the core's default (true)
        saveProgress,
        // Which lines are resources: the core's rule, the core's default (a JSON object), in every format.
        options.validation,
        // Files that are not NDJSON (Parquet, L13): taken only when asked, as Uint8Array items.
        options.opaqueFiles,
      ),
  );
  const stats = { bytes: 0, resources: 0, files: [], failed: 0, invalidLines: 0, originLimits: [], limitChanges: [] };
  stats.originLimits = dl.progress().originLimits;
  // Requests stop when the caller's signal fires or the caller stops iterating.
  const stop = new AbortController();
  // Protocol M: each line goes through the core's hydrator when attachments are asked for.
  let att = null;
  try {
    if (saveProgress && options.attachments !== undefined) {
      throw new UsageError('saveProgress with attachments is not supported yet: a held line is not handed out yet');
    }
    att = attachmentsOf(job, options, { notify: () => notify(), signal: stop.signal });
  } catch (e) {
    dl.free();
    throw e;
  }
  const hold = att && ((line) => att.hold(line));
  const onAbort = () => stop.abort(signal.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });

  /** Files with a request sent or a result, not yet fully handed out, in file order. */
  const runs = [];
  const byIndex = new Map();
  let allDone = false;
  let failure = null;
  let changed = false;
  let wake = null;
  const notify = () => {
    changed = true;
    const w = wake;
    wake = null;
    w?.();
  };

  const ctx = {
    dl,
    client: job._client,
    signal: stop.signal,
    stats,
    closed: false,
    active: 0,
    /** Hands out the lines the core returned for `run`; resolves when the consumer has room. */
    async emit(run, joined) {
      // An opaque file (the core's `opaqueFormat`, L13) gives its bytes, not lines.
      if (run.file.opaqueFormat) return emitBytes(run, dl.takeBytes());
      if (joined === '') return;
      // K5: where the file stands once the consumer holds these lines (committed when it took them).
      const record = saveProgress ? dl.snapshot(run.i) : 0;
      const lines = joined.split('\n');
      const first = run.lines + 1; // 1-based number of lines[0] in the file
      run.lines += lines.length;
      let raise = null;
      const items = itemsOf(lines, format, hold, (i, msg) => {
        const line = first + i;
        // The core counts it in the file's report and, under 'raise', answers the file's error.
        const raised = dl.reportInvalidLine(run.i, line, msg);
        stats.invalidLines++;
        // A failed file has no report from the core: its own says what it delivered before.
        run.invalidLines++;
        run.firstInvalidLine ??= line;
        if (run.invalid.length < coreLimits().maxInvalidReported) run.invalid.push({ line, message: msg });
        if (raised) {
          raise = fromCore(raised); // the valid lines before it still go out, then the error
          return true;
        }
        if (typeof onInvalidLine === 'function') onInvalidLine(fromCore(dl.invalidLineError(run.i, line, msg)));
        return false;
      });
      run.resources += items.length;
      if (items.length > 0 || !raise) {
        // Raised: the lines after the bad one never reach the consumer, so this
        // part records nothing (the record covers the whole chunk); a resumed
        // job hands its lines out again, from the last part recorded.
        run.queue.push({ items, chars: joined.length, record: raise ? 0 : record });
        run.chars += joined.length;
      }
      notify();
      if (raise) throw raise;
      while (!ctx.closed && !room(run)) await new Promise((resolve) => (run.resume = resolve));
      // Lines held for their attachments count too.
      if (att) await att.room();
    },
  };

  /** Hands out an opaque file's bytes as one Uint8Array item; resolves when the consumer has room. */
  async function emitBytes(run, bytes) {
    if (bytes.length === 0) return;
    const items = [bytes];
    items.opaque = true; // not resources: `stats.resources` leaves them out
    run.queue.push({ items, chars: bytes.length, record: 0 });
    run.chars += bytes.length;
    notify();
    while (!ctx.closed && !room(run)) await new Promise((resolve) => (run.resume = resolve));
  }

  const runOf = (i) => {
    let run = byIndex.get(i);
    if (run) return run;
    const file = dl.file(i);
    run = {
      i,
      file,
      key: `${file.kind}\u0000${file.resourceType ?? ''}`,
      queue: [],
      chars: 0,
      lines: 0,
      resources: 0,
      bytes: 0,
      attempts: 0,
      invalidLines: 0,
      firstInvalidLine: null,
      invalid: [],
      refusal: null,
      sending: 0,
      ended: false, // the core has its result
      done: false, // ... and no request of it is running
      report: null,
      error: null,
      head: false,
      resume: null,
    };
    byIndex.set(i, run);
    let at = runs.length;
    while (at > 0 && runs[at - 1].i > i) at--;
    runs.splice(at, 0, run);
    return run;
  };

  /** A file whose result is in and whose last request is over gets its report. */
  const settle = (run) => {
    if (!run.ended || run.done || run.sending > 0) return;
    if (run.refusal) dl.errorBody(run.i, run.refusal);
    const result = dl.result(run.i);
    if (saveProgress && !result.error) run.record = dl.snapshot(run.i);
    run.file = result.file;
    run.report = result.error ? failedReport(run, fromCore(result.error)) : result.report;
    run.done = true;
    byIndex.delete(run.i);
    notify();
  };

  /** Results and limit changes the last core call produced. */
  const collect = () => {
    let news = false;
    for (const i of dl.finished()) {
      const run = runOf(i);
      run.ended = true;
      settle(run);
      news = true;
    }
    const changes = dl.takeLimitChanges();
    if (changes) {
      stats.limitChanges.push(...changes);
      for (const c of changes) {
        const l = stats.originLimits.find((o) => o.origin === c.origin);
        if (l) l.limit = c.to;
      }
      news = true;
    }
    if (news && onProgress) {
      try {
        onProgress({ ...dl.progress(), limitChanges: changes ?? [] });
      } catch {
        // A listener's bug must not stop the downloads.
      }
    }
  };

  let started = false;
  let timer = null;
  let busy = false; // a shared refresh is under way
  let driving = false;
  let again = false;
  /** Asks the core what to do until it has nothing to start now. */
  function drive() {
    if (ctx.closed || busy || failure) return;
    if (driving) {
      again = true;
      return;
    }
    driving = true;
    try {
      do {
        again = false;
        step();
      } while (again && !ctx.closed && !busy);
    } catch (e) {
      failure = fromCore(e);
      notify();
    } finally {
      driving = false;
    }
  }

  function step() {
    let idles = 0;
    for (;;) {
      const s = core(() => dl.next(Date.now()));
      collect();
      switch (s.type) {
        case 'send': {
          const run = runOf(s.file);
          run.sending++;
          ctx.active++;
          transfer(ctx, run, s.request)
            .catch((e) => {
              // Thrown where the file's items stop: the lines before it go out first.
              if (!ctx.closed && !stop.signal.aborted) run.error = fromCore(e);
            })
            .finally(() => {
              run.sending--;
              ctx.active--;
              if (ctx.closed) return release();
              collect();
              settle(run);
              notify();
              drive();
            });
          break;
        }
        case 'refreshToken':
          busy = true;
          refreshToken().finally(resumeAfterRefresh);
          return;
        case 'refreshManifest':
          busy = true;
          refreshManifest().finally(resumeAfterRefresh);
          return;
        case 'wait':
          clearTimeout(timer);
          timer = setTimeout(() => {
            timer = null;
            drive();
          }, s.delayMs);
          return;
        case 'idle':
          // Nothing of ours in flight, yet idle: the core re-bound a file to the
          // fresh plan inside this call (after the one manifest refresh) and
          // answered Idle; that file can send now, so ask again (bounded).
          if (ctx.active === 0 && idles++ < dl.length) continue;
          return;
        case 'done':
          allDone = true;
          notify();
          return;
        default:
          throw new UsageError(`unknown download step ${s.type}`);
      }
    }
  }

  function resumeAfterRefresh() {
    busy = false;
    if (ctx.closed) return release();
    drive();
  }

  async function refreshToken() {
    const why = job._client._whyNoTokenRefresh();
    if (why) return dl.tokenUnavailable(why);
    try {
      await job._client._token(true);
      if (!ctx.closed) dl.tokenRefreshed();
    } catch (e) {
      if (!ctx.closed) dl.tokenUnavailable(`the token function failed: ${message(e)}`);
    }
  }

  async function refreshManifest() {
    // One refresh serves every file of the job (protocol E4). When it fails the
    // waiting files fail with its cause; the job keeps its result (K8).
    let failure = null;
    try {
      await job._refreshManifest();
    } catch (e) {
      failure = message(e);
    }
    if (!ctx.closed) dl.manifestRefreshed(job.engine, failure);
  }

  /** The core's memory goes once nothing of it runs any more. */
  function release() {
    if (ctx.closed && ctx.active === 0 && !busy && !ctx.freed) {
      ctx.freed = true;
      dl.free();
    }
  }

  /** The first run of each type in file order: only those may yield when `ordered`. */
  const markHeads = () => {
    const seen = new Set();
    for (const r of runs) {
      r.head = !seen.has(r.key);
      seen.add(r.key);
    }
  };

  // A file waiting for an earlier file of its type may run further ahead than one being read.
  const room = (run) => (ordered && !run.head ? run.chars < AHEAD_ORDERED_CHARS : run.queue.length < AHEAD_UNORDERED);

  /** The record of the part handed out last: the consumer holds it once it asks for more. */
  let handed = 0;
  const commit = (record) => {
    if (record && !ctx.freed) dl.commit(job.engine, record);
  };

  /** The next array of items, or `null` when every file is done. */
  async function take() {
    commit(handed);
    handed = 0;
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      if (!started) {
        started = true;
        drive();
      }
      if (ordered) markHeads();
      // Lines released after their attachments (protocol M7, M9).
      const released = att?.take();
      if (released) return itemsOf(released.split('\n'), format, null, () => false);
      if (att?.error) throw att.error;
      for (let k = 0; k < runs.length; k++) {
        const run = runs[k];
        if (ordered && !run.head) continue;
        if (run.queue.length > 0) {
          const part = run.queue.shift();
          run.chars -= part.chars;
          const r = run.resume;
          run.resume = null;
          r?.();
          handed = part.record;
          return part.items;
        }
        if (run.error) throw run.error;
        if (run.done) {
          runs.splice(k, 1);
          k--;
          // A file counts as finished once its last resource was handed out.
          stats.files.push(run.report);
          if (run.report.error) stats.failed++;
          // Saved before onFile, which may save the job.
          commit(run.record);
          try {
            onFile?.(run.report);
          } catch {
            // A callback's bug must not stop the other files.
          }
          if (ordered) markHeads();
          // a freed head lets a waiting run of the same type go on
          for (const r of runs) {
            if (r.resume && room(r)) {
              const f = r.resume;
              r.resume = null;
              f();
            }
          }
        }
      }
      if (failure) throw failure;
      if (runs.length === 0 && allDone && (!att || att.idle())) return null;
      if (!changed) await raceSignal(new Promise((resolve) => (wake = resolve)), signal);
      changed = false;
    }
  }

  function close() {
    if (ctx.closed) return;
    ctx.closed = true;
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    stop.abort(new Error('the stream was closed'));
    att?.close();
    for (const r of runs) {
      const f = r.resume;
      r.resume = null;
      f?.();
    }
    release();
  }

  let batch = [];
  let at = 0;
  let finished = false;
  const iterator = {
    async next() {
      while (at >= batch.length) {
        if (finished) return { value: undefined, done: true };
        let items;
        try {
          items = await take();
        } catch (e) {
          finished = true;
          close();
          throw e;
        }
        if (items === null) {
          finished = true;
          close();
          return { value: undefined, done: true };
        }
        if (!items.opaque) stats.resources += items.length;
        if (format === 'batches') return { value: items, done: false };
        batch = items;
        at = 0;
      }
      return { value: batch[at++], done: false };
    },
    async return(value) {
      finished = true;
      batch = [];
      close();
      return { value, done: true };
    },
    [Symbol.asyncIterator]() {
      return this;
    },
    get stats() {
      return {
        ...stats,
        files: [...stats.files],
        originLimits: stats.originLimits.map((o) => ({ ...o })),
        limitChanges: [...stats.limitChanges],
        attachments: att ? att.reports() : [],
        attachmentsFailed: att ? att.failures() : 0,
      };
    },
  };
  return iterator;
}

/** The report of a file that failed: what it delivered before, and why it stopped. */
function failedReport(run, error) {
  const { file } = run;
  return {
    // As the core shows a URL (K10: a signed URL's query is a credential).
    url: redactUrl(file.url),
    kind: file.kind,
    resourceType: file.resourceType,
    fileName: file.fileName,
    resources: run.resources,
    expected: file.expectedCount,
    bytes: run.bytes,
    invalidLines: run.invalidLines,
    firstInvalidLine: run.firstInvalidLine,
    invalid: run.invalid,
    attempts: run.attempts,
    error,
  };
}
