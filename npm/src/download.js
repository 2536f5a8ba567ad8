// Streaming a finished job's files: up to `concurrency` files at once, each
// driven by its own engine FileDownload (`file.js`); this file only schedules
// them and hands out what they produced (issue 10 §2: bounded parallel
// downloads, in file order per type when asked; one bad file loses nothing else).

import { abortError, raceSignal, UsageError } from './errors.js';
import { fileItems } from './file.js';

/** Links a job's outcome to the job (non-enumerable), for `client.resources(result)`. */
export const JOB_OF = Symbol.for('fhir-async.job');

const FORMATS = ['json', 'text', 'batches'];
const VALIDATIONS = [undefined, 'none', 'structural', 'json'];
const COUNT_CHECKS = ['strict', 'lenient'];
/** Items an unordered file may run ahead of the consumer (then its body waits: backpressure). */
const AHEAD_UNORDERED = 2;
/** Characters of lines a file that is not first of its type may hold while `ordered` waits for it. */
const AHEAD_ORDERED_CHARS = 8 << 20;

function check(options) {
  const {
    format = 'json',
    validation,
    concurrency = 4,
    countCheck = 'strict',
    onInvalidLine = 'report',
  } = options;
  if (!FORMATS.includes(format)) throw new UsageError(`format must be "json", "text" or "batches", not ${format}`);
  if (!VALIDATIONS.includes(validation)) {
    throw new UsageError(`validation must be "none", "structural" or "json", not ${validation}`);
  }
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new UsageError(`concurrency must be a whole number >= 1, not ${concurrency}`);
  }
  if (!COUNT_CHECKS.includes(countCheck)) throw new UsageError(`countCheck must be "strict" or "lenient", not ${countCheck}`);
  if (onInvalidLine !== 'report' && onInvalidLine !== 'raise' && typeof onInvalidLine !== 'function') {
    throw new UsageError(`onInvalidLine must be "report", "raise" or a function, not ${onInvalidLine}`);
  }
}

/**
 * An async iterable of resources with running figures:
 * `stats` = { bytes, resources, files: FileReport[], failed, invalidLines }.
 * A file that fails is a report with `error` (the others go on); only an
 * abort, `onInvalidLine: 'raise'` or a misuse ends the iteration with an error.
 */
export function resourceStream(job, options = {}) {
  check(options);
  const { type, types, kinds = ['output'], signal, format = 'json', onFile, concurrency = 4, ordered = false } = options;
  const stats = { bytes: 0, resources: 0, files: [], failed: 0, invalidLines: 0 };
  const wanted = (f) =>
    kinds.includes(f.kind) &&
    (type === undefined || f.resourceType === type) &&
    (types === undefined || types.includes(f.resourceType));
  const cursor = job._planCursor(wanted);
  // Files stop when the caller's signal fires or the caller stops iterating.
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  const settings = {
    ...options,
    signal: stop.signal,
    format,
    countCheck: options.countCheck ?? 'strict',
    onInvalidLine: options.onInvalidLine ?? 'report',
  };

  /** Files started and not yet fully handed out, in plan order. */
  const runs = [];
  let closed = false;
  let changed = false;
  let wake = null;
  const notify = () => {
    changed = true;
    const w = wake;
    wake = null;
    w?.();
  };

  /** The first run of each type in `runs` order: only those may yield when `ordered`. */
  const heads = () => {
    const seen = new Set();
    const out = new Set();
    for (const r of runs) {
      if (!seen.has(r.key)) {
        seen.add(r.key);
        out.add(r);
      }
    }
    return out;
  };

  // A file waiting for an earlier file of its type may run further ahead than one being read.
  const room = (run) => (ordered && !run.head ? run.chars < AHEAD_ORDERED_CHARS : run.queue.length < AHEAD_UNORDERED);

  async function pump(run) {
    try {
      for await (const part of fileItems(job, run.file, settings, stats, run)) {
        run.queue.push(part);
        run.chars += part.chars;
        notify();
        while (!closed && !room(run)) await new Promise((resolve) => (run.resume = resolve));
        if (closed) return;
      }
    } catch (e) {
      // Thrown where the file's items stop: the lines before it go out first.
      if (!closed) run.error = e;
    } finally {
      run.done = true;
      notify();
    }
  }

  function start() {
    while (runs.length < concurrency && !closed) {
      const file = cursor.next();
      if (file === null) return;
      const run = {
        file,
        key: `${file.kind}\u0000${file.resourceType ?? ''}`,
        queue: [],
        chars: 0,
        done: false,
        error: null,
        head: false,
        resume: null,
        report: null,
      };
      runs.push(run);
      pump(run);
    }
  }

  /** The next array of items, or `null` when every file is done. */
  async function take() {
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      start();
      if (ordered) for (const h of heads()) h.head = true;
      for (let i = 0; i < runs.length; i++) {
        const run = runs[i];
        if (ordered && !run.head) continue;
        if (run.queue.length > 0) {
          const part = run.queue.shift();
          run.chars -= part.chars;
          const r = run.resume;
          run.resume = null;
          r?.();
          return part.items;
        }
        if (run.error) throw run.error;
        if (run.done) {
          runs.splice(i, 1);
          i--;
          // A file counts as finished once its last resource was handed out.
          if (run.report) {
            stats.files.push(run.report);
            if (run.report.error) stats.failed++;
            try {
              onFile?.(run.report);
            } catch {
              // A callback's bug must not stop the other files.
            }
          }
          if (ordered) for (const h of heads()) h.head = true;
          start();
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
      if (runs.length === 0 && cursor.done) return null;
      if (!changed) await raceSignal(new Promise((resolve) => (wake = resolve)), signal);
      changed = false;
    }
  }

  function close() {
    if (closed) return;
    closed = true;
    signal?.removeEventListener('abort', onAbort);
    stop.abort(new Error('the stream was closed'));
    for (const r of runs) {
      const f = r.resume;
      r.resume = null;
      f?.();
    }
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
        stats.resources += items.length;
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
      return { ...stats, files: [...stats.files] };
    },
  };
  return iterator;
}
