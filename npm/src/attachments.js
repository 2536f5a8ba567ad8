// Attachments of a stream of resources (issue 24, protocol M) through the
// core's `Hydrator`: every line of a file is shown to it; a line with
// attachments to fetch is held, its attachments are fetched through a
// `Downloads` of the core's planned files (the same per-origin limits,
// retries, token rule and size limit as files: `file.js` moves the bytes),
// each body goes back to the core (decoded, hash-checked), and the held lines
// come back once settled: hydrated (`inline`) or unchanged (`files`, or a
// failed attachment). In `files` mode each attachment is also written (Node
// only: the writer is installed by the Node entry point).

import { Hydrator } from '../wasm/fhir_async_wasm.js';
import { attachmentErrorOf, core, fromCore, UsageError } from './errors.js';
import { concat } from './http.js';
import { message, transfer } from './file.js';

/** Lines the hydrator may hold (waiting for their attachments) before a file's body waits: backpressure. */
const MAX_HELD = 256;

let writer = null;
/** Node's entry point installs how an attachment is written (`dir`, `fileName`, `bytes`: temp + rename). */
export function setAttachmentWriter(write) {
  writer = write;
}

/**
 * The attachments of one stream, or `null` when the caller did not ask
 * (`attachments` absent). `hooks.notify()` wakes the consumer; released
 * lines are read with `take()`.
 */
export function attachmentsOf(job, options, hooks) {
  const { attachments, attachmentTypes, attachmentMaxSize, attachmentsAllElements, attachmentsDir } = options;
  if (attachments === undefined) return null;
  // The core reads (and checks) the options; undefined / 0: its defaults.
  const types = attachmentTypes ?? [];
  const h = core(() => new Hydrator(job.engine, attachments, types, attachmentMaxSize ?? 0, attachmentsAllElements));
  const saving = h.mode === 'files';
  if (saving && typeof attachmentsDir !== 'string') {
    h.free();
    throw new UsageError('attachments: "files" needs attachmentsDir (the folder the attachments are written to)');
  }
  if (saving && !writer) {
    h.free();
    throw new UsageError('attachments: "files" writes files: Node only (the browser build has no attachments)');
  }
  return new Attachments(job, options, hooks, h, saving ? attachmentsDir : null);
}

/** An AbortSignal that fires when `signal` does; `unlink()` once it is no longer needed. */
function linked(signal) {
  const ac = new AbortController();
  const onAbort = () => ac.abort(signal.reason);
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return { signal: ac.signal, unlink: () => signal.removeEventListener('abort', onAbort) };
}

class Attachments {
  constructor(job, options, hooks, hydrator, dir) {
    this.job = job;
    this.h = hydrator;
    this.dir = dir;
    this.hooks = hooks;
    this.maxPerOrigin = options.maxPerOrigin ?? options.concurrency;
    this.signal = hooks.signal;
    /** Lines held by the core, not yet released. */
    this.held = 0;
    /** Released lines (joined strings), not yet taken. */
    this.queue = [];
    this.running = false;
    this.error = null;
    this.closed = false;
    this.waiters = [];
    this.bytes = 0;
    this.final = null; // reports once the hydrator is freed
  }

  /** A line of a file: true when the core holds it (it comes back through `take`). */
  hold(line) {
    if (this.closed || this.h.line(line) !== 'held') return false;
    this.held++;
    this.kick();
    return true;
  }

  /** Resolves once the held lines are few enough for a file's body to go on. */
  async room() {
    while (!this.closed && !this.error && this.held > MAX_HELD) await new Promise((r) => this.waiters.push(r));
  }

  /** The next released lines (a joined string), or null. */
  take() {
    return this.queue.shift() ?? null;
  }

  /** Nothing held, nothing running, nothing left to take. */
  idle() {
    return this.held === 0 && !this.running && this.queue.length === 0;
  }

  /** Starts the fetches the core planned, one `Downloads` at a time. */
  kick() {
    if (this.running || this.closed || this.error) return;
    const dl = this.h.downloads(this.job.engine, this.maxPerOrigin);
    // Nothing new to fetch: a held line whose attachments were all settled already goes out now.
    if (!dl) return this.release();
    this.running = true;
    this.run(dl)
      .catch((e) => {
        if (!this.closed) this.error = fromCore(e);
      })
      .finally(() => {
        this.running = false;
        this.release();
        this.kick();
        this.wakeAll();
      });
  }

  wakeAll() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
    this.hooks.notify();
  }

  /** Held lines the core settled go to the consumer. */
  release() {
    if (this.closed) return;
    const joined = this.h.release();
    if (joined === '') return;
    this.held -= joined.split('\n').length;
    this.queue.push(joined);
    this.wakeAll();
  }

  /** Runs one `Downloads` of planned attachment files to its end. */
  async run(dl) {
    const self = this;
    const runs = new Map();
    let over = false;
    let freed = false;
    const free = () => {
      if (!freed) (freed = true), dl.free();
    };
    const ctx = {
      dl,
      client: this.job._client,
      signal: this.signal,
      stats: { bytes: 0 },
      get closed() {
        return over || self.closed;
      },
      active: 0,
      // An attachment is opaque bytes (its PlannedFile has `opaqueFormat`): kept until its result.
      async emit(run) {
        const b = dl.takeBytes();
        if (b.length > 0) run.parts.push(b);
      },
    };
    const runOf = (i) => {
      let run = runs.get(i);
      if (!run) {
        run = { i, file: dl.file(i), parts: [], attempts: 0, bytes: 0, refusal: null, contentType: null, sending: 0 };
        run.ended = run.settled = false;
        runs.set(i, run);
      }
      return run;
    };
    // Wakes the loop below when a request ends (or the stream closes); `dirty` keeps a wake-up that came early.
    let wake = null;
    let dirty = false;
    const poke = () => {
      dirty = true;
      const w = wake;
      wake = null;
      w?.();
    };
    this.poke = poke;
    const sleep = (ms) =>
      dirty
        ? Promise.resolve()
        : new Promise((resolve) => {
            const t = ms === undefined ? null : setTimeout(resolve, ms);
            wake = () => {
              clearTimeout(t);
              resolve();
            };
          });
    /** A file whose result is in and whose last request is over: its body goes to the core. */
    const settle = async (run) => {
      if (!run.ended || run.sending > 0 || run.settled || this.closed) return;
      run.settled = true;
      if (run.refusal) dl.errorBody(run.i, run.refusal);
      // The core reads the file's result: an error fails its attachment (M9).
      if (!this.h.failedIn(dl, run.i)) {
        const id = run.file.index;
        const body = concat(run.parts, run.parts.reduce((n, p) => n + p.byteLength, 0));
        run.parts = [];
        let fetched = null;
        try {
          fetched = this.h.fetched(id, body, run.contentType);
        } catch {
          // The core recorded the typed error in the attachment's report; its resource goes out unchanged (M9).
        }
        if (fetched && this.dir !== null && !this.closed) await writer(this.dir, run.file.fileName, fetched.bytes);
      }
      this.release();
    };
    try {
      for (;;) {
        if (this.closed || this.signal?.aborted) return;
        dirty = false;
        const s = core(() => dl.next(Date.now()));
        for (const i of dl.finished()) runOf(i).ended = true;
        for (const run of runs.values()) await settle(run);
        if (this.closed) return;
        switch (s.type) {
          case 'send': {
            const run = runOf(s.file);
            run.sending++;
            ctx.active++;
            // Its own stop, linked to the stream's: many requests at once, one listener each.
            const link = linked(this.signal);
            transfer(Object.create(ctx, { signal: { value: link.signal } }), run, s.request)
              .catch((e) => {
                if (!this.closed && !this.signal?.aborted) this.error ??= fromCore(e);
              })
              .finally(() => {
                link.unlink();
                run.sending--;
                ctx.active--;
                this.bytes += run.bytes;
                run.bytes = 0;
                if (over && ctx.active === 0) free();
                poke();
              });
            break;
          }
          case 'refreshToken':
            await this.refreshToken(dl);
            break;
          case 'refreshManifest':
            // Attachment links come from the resources, not a manifest: nothing to re-fetch.
            dl.manifestRefreshed(this.job.engine, 'attachment links have no manifest to refresh');
            break;
          case 'wait':
            await sleep(s.delayMs);
            break;
          case 'idle':
            // Every allowed file is in flight: the next response wakes the loop (none in flight: ask again shortly).
            await sleep(ctx.active === 0 ? 10 : undefined);
            break;
          case 'done':
            // Every result is in; a request that is still reading a refusal's words settles its file when it ends.
            if ([...runs.values()].every((r) => r.settled)) return;
            await sleep();
            break;
          default:
            throw new UsageError(`unknown download step ${s.type}`);
        }
      }
    } finally {
      over = true;
      this.poke = null;
      // The core's memory goes once no request of it runs any more.
      if (ctx.active === 0) free();
    }
  }

  async refreshToken(dl) {
    const client = this.job._client;
    const why = client._whyNoTokenRefresh();
    if (why) return dl.tokenUnavailable(why);
    try {
      await client._token(true);
      dl.tokenRefreshed();
    } catch (e) {
      dl.tokenUnavailable(`the token function failed: ${message(e)}`);
    }
  }

  /** One `AttachmentReport` per planned attachment, `error` a typed error. */
  reports() {
    const raw = this.final ?? this.h.reports();
    return raw.map((r) => (r.error ? { ...r, error: attachmentErrorOf(r.error) } : { ...r }));
  }

  failures() {
    return this.final ? this.final.filter((r) => r.error).length : this.h.failures();
  }

  close() {
    if (this.closed) return;
    this.final = this.h.reports();
    this.closed = true;
    this.poke?.();
    this.wakeAll();
    // The running Downloads ends at its next step; the hydrator's memory goes now.
    this.h.free();
  }
}
