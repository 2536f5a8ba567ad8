// FhirAsyncClient and its jobs: the engine decides, this file moves bytes and time.

import { Job as CoreJob } from '../wasm/fhir_async_wasm.js';
import { core, fromCore, JobFailedError, raceSignal, UsageError } from './errors.js';
import { exchangeFor, transportKind } from './http.js';
import { resourceStream, JOB_OF } from './download.js';
import { verifyCallback } from './callback.js';
import { schedule } from './schedule.js';

export class FhirAsyncClient {
  #options;
  #token = null;
  #tokenPending = null;
  /** @type {Set<AsyncJob>} jobs that are not finished, for callbacks */
  _live = new Set();

  constructor(options) {
    if (!options || typeof options.baseUrl !== 'string') {
      throw new UsageError('FhirAsyncClient needs { baseUrl }');
    }
    if (options.auth != null && options.token != null) throw new UsageError('pass { token } or { auth }, not both');
    if (options.auth != null && typeof options.auth.token !== 'function') {
      throw new UsageError('auth must come from backendServices({ clientId, key, scope })');
    }
    this.#options = { ...options };
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new UsageError('no fetch available: pass { fetch }');
    this._fetch = options.fetch ? f : f.bind(globalThis);
    this._exchange = exchangeFor(options.fetch);
  }

  /** The FHIR base URL. */
  get baseUrl() {
    return this.#options.baseUrl;
  }

  /**
   * Starts a bulk `$export`; resolves once the server accepted it (the status
   * URL is known) or answered at once. A 429 on the kick-off is waited out as
   * the engine schedules it (`Retry-After`, at most `retry.maxKickoffRetries`
   * times), visible through `onProgress` (phase `kickingOff`, `nextPollAtMs`);
   * `signal` ends that wait (the kick-off is not sent again).
   */
  async export(request = {}) {
    const { callbackUrl, lenient, separateExportStatus, timeoutMs, signal, onProgress, ...exportRequest } = request;
    const operation = { type: 'export', ...exportRequest };
    return this.#start(operation, { callbackUrl, lenient, separateExportStatus }, timeoutMs, signal, onProgress);
  }

  /** Starts any operation with `Prefer: respond-async`. */
  async kickoff(request) {
    if (!request || typeof request.path !== 'string') throw new UsageError('kickoff needs { method, path }');
    const { method = 'POST', path, body, asyncMode, callbackUrl, lenient, timeoutMs, signal, onProgress } = request;
    const operation = {
      type: 'operation',
      method,
      path,
      body: body == null ? null : typeof body === 'string' ? body : JSON.stringify(body),
    };
    return this.#start(operation, { asyncMode, callbackUrl, lenient }, timeoutMs, signal, onProgress);
  }

  /** A job saved with `job.toJson()` (string) or `job.toJSON()` (object), polling again. */
  resume(saved) {
    const json = typeof saved === 'string' ? saved : JSON.stringify(saved);
    const job = new AsyncJob(this, core(() => CoreJob.fromJson(json)));
    job._run();
    return job;
  }

  /**
   * Streams the resources of a finished job: `outcomeOrManifest` is the
   * outcome of `job.wait()` or its `manifest` (see `download.js`). Default
   * kinds: `['output']`.
   */
  resources(outcomeOrManifest, options = {}) {
    const job = outcomeOrManifest?.[JOB_OF];
    if (!job) throw new UsageError('resources() needs the outcome of job.wait() (or its manifest) from this client');
    return resourceStream(job, options);
  }

  /**
   * Verifies a callback POST (its `X-Signature` value, or a headers object)
   * and wakes the job it is about. Returns the payload and how many live jobs it woke.
   */
  handleCallback(body, signature, secret) {
    const payload = verifyCallback(body, signature, secret);
    const effects = [];
    for (const job of this._live) {
      const effect = job._callback(payload);
      if (effect.kind === 'woken') effects.push({ statusUrl: job.statusUrl, effect });
    }
    return { payload, woken: effects.length };
  }

  #config(operation, prefer, timeoutMs) {
    const o = this.#options;
    const clean = (obj) => Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined));
    return {
      baseUrl: o.baseUrl,
      operation: clean(operation),
      prefer: clean({ ...(o.prefer ?? {}), ...prefer }),
      retry: o.retry ?? {},
      timeoutMs: timeoutMs ?? o.timeoutMs ?? null,
      allowedOrigins: o.allowedOrigins ?? [],
    };
  }

  async #start(operation, prefer, timeoutMs, signal, onProgress) {
    const config = this.#config(operation, prefer, timeoutMs);
    const job = new AsyncJob(this, core(() => new CoreJob(config)));
    if (onProgress) job.onProgress(onProgress);
    job._run();
    try {
      await job._accepted(signal);
    } catch (e) {
      // Aborted while kicking off (a 429 wait): the engine ends the job without
      // sending the kick-off again (or cancels it if it was accepted meanwhile).
      if (signal?.aborted) job._abandon();
      throw e;
    }
    return job;
  }

  /** Why no new token can be had after a 401 (`null`: the token function is asked again). */
  _whyNoTokenRefresh() {
    if (this.#options.auth) return null;
    const t = this.#options.token;
    if (t == null) return 'no token is configured';
    if (typeof t === 'string') return 'the token is a fixed string';
    return null;
  }

  /** The bearer token (`force`: ask the token function again). */
  async _token(force = false) {
    if (this.#options.auth) return this.#options.auth.token(this, force);
    const t = this.#options.token;
    if (t == null) return null;
    if (typeof t === 'string') return t;
    if (this.#token !== null && !force) return this.#token;
    // One refresh at a time, shared by every job of the client.
    if (!this.#tokenPending) {
      this.#tokenPending = Promise.resolve()
        .then(() => t())
        .then(
          (v) => {
            this.#token = v;
            this.#tokenPending = null;
            return v;
          },
          (e) => {
            this.#tokenPending = null;
            throw e;
          },
        );
    }
    return this.#tokenPending;
  }

  /** Client options the download needs. */
  get _retry() {
    return this.#options.retry ?? null;
  }
}

export class AsyncJob {
  #client;
  #core;
  #loop = null;
  #settled = false;
  #refreshing = null;
  #wait = null; // this job's entry in the shared schedule while it waits
  #listeners = null; // Sets made on first use: a hundred thousand idle jobs stay small (issue 21)
  #changed = null;
  #dueAt = null;
  #stats = { requests: 0, polls: 0, maxPollLatenessMs: 0, totalPollLatenessMs: 0 };

  constructor(client, coreJob) {
    this.#client = client;
    this.#core = coreJob;
  }

  /** The status URL, once the kick-off was accepted. */
  get statusUrl() {
    return this.#core.statusUrl ?? null;
  }

  /** Requests sent, status polls, and how late polls were against their due times (worst, total). */
  get stats() {
    return { ...this.#stats };
  }

  /** The low-level engine job (advanced use). */
  get engine() {
    return this.#core;
  }

  /** Calls `listener(progress)` on every change; returns an unsubscribe function. */
  onProgress(listener) {
    (this.#listeners ??= new Set()).add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** A progress snapshot now. */
  progress() {
    // While a 429'd kick-off waits, the engine reports the next attempt as
    // `nextPollAtMs` itself (issue 10 §2: the wait is visible).
    return this.#core.progress(Date.now());
  }

  /** Warnings that did not stop the job. */
  warnings() {
    return this.#core.warnings();
  }

  /** The outcome: manifest, bundle, resource or OperationOutcome (failure is an outcome). */
  async wait({ signal, throwOnFailure = false } = {}) {
    const outcome = await raceSignal(this._run(), signal);
    // A cancelled outcome never throws (issue 11 §3): it is what was asked for.
    if (throwOnFailure && outcome.status === 'failed') {
      throw new JobFailedError(outcome);
    }
    return outcome;
  }

  /** Cancels the job; resolves with the engine's CancelResult (`null` if it had already ended). */
  async cancel({ signal } = {}) {
    this.#core.cancel(Date.now());
    this.#notify();
    this.#interrupt(); // the cancel goes out before any wait; the poll schedule is kept
    const run = this._run();
    await raceSignal(
      this.#until(() => this.#core.cancelResult() != null || this.#core.isFinished, run),
      signal,
    );
    return this.#core.cancelResult();
  }

  /** DELETEs the status URL after the download (only on a completed job). */
  async cleanup({ signal } = {}) {
    core(() => this.#core.cleanup());
    this.#restart(); // the job is done; drive it again for the DELETE
    await raceSignal(this._run(), signal);
    return this.#core.cleanupResult();
  }

  /** Polls now instead of at the scheduled time (after a restart, or a callback). */
  pollNow() {
    this.#core.pollNow(Date.now());
    this.#interrupt();
  }

  /** Deprecated alias of `pollNow()` (issue 11 §3), kept for one release. */
  wake() {
    this.pollNow();
  }

  /**
   * Hands a callback POST to this job: verifies `signature` (the
   * `X-Signature` value, or a headers object) with `secret`, then returns
   * `{kind: 'woken' | 'ignored', reason?}`. Throws `CallbackError` when refused.
   */
  handleCallback(body, signature, secret) {
    return this._callback(verifyCallback(body, signature, secret));
  }

  /** Ends the current wait so the loop asks the engine again (an early ask is harmless). */
  #interrupt() {
    const w = this.#wait;
    this.#wait = null;
    if (w && schedule.remove(w)) w.fn(); // a wait that already ran is not run twice
  }

  /** The state to save, as a string; `client.resume(saved)` continues the job. Contains no token. */
  toJson() {
    return this.#core.toJson();
  }

  /** The state to save as an object (what `JSON.stringify(job)` writes). */
  toJSON() {
    return JSON.parse(this.#core.toJson());
  }

  /** The download plan of the finished job (advanced use). */
  downloadPlan() {
    return this.#core.downloadPlan();
  }

  /** Streams the resources of this finished job (default kinds: `['output']`). */
  resources(options = {}) {
    return resourceStream(this, options);
  }

  // ---- internals used by the client and the downloads ----

  get _client() {
    return this.#client;
  }

  _callback(payload) {
    const effect = this.#core.handleCallback(payload, Date.now());
    if (effect.kind === 'woken') this.#interrupt(); // the engine already moved the poll to now
    return effect;
  }

  /** Re-fetches the manifest (expired file URLs); resolves once the fresh plan is in. */
  _refreshManifest() {
    // Files downloaded side by side may all find their URLs expired: one refresh serves them all.
    if (!this.#refreshing) {
      this.#refreshing = (async () => {
        try {
          if (this.#loop && !this.#settled) await this.#loop.catch(() => {});
          core(() => this.#core.refreshManifest(Date.now()));
          this.#restart();
          try {
            await this._run();
          } catch (e) {
            // The refresh failed and the job kept its result (K8): wait() gets it again.
            if (this.#core.isFinished && !this.#core.error()) this.#loop = null;
            throw e;
          }
        } finally {
          this.#refreshing = null;
        }
      })();
    }
    return this.#refreshing;
  }

  /** The caller gave up while the kick-off was pending: end the job (cancel if accepted). */
  _abandon() {
    this.#core.cancel(Date.now());
    this.#interrupt();
  }

  /** Lets `_run()` drive a finished job again (cleanup, manifest refresh). */
  #restart() {
    if (this.#loop && !this.#settled) throw new UsageError('the job is still running');
    this.#loop = null;
  }

  /** Starts (or joins) the driving loop; resolves with the outcome. */
  _run() {
    if (!this.#loop) {
      this.#client._live.add(this);
      this.#settled = false;
      this.#loop = this.#drive().finally(() => {
        this.#settled = true;
        this.#client._live.delete(this);
        this.#notify();
      });
      this.#loop.catch(() => {}); // rejections surface through wait(); never unhandled
    }
    return this.#loop;
  }

  /** Resolves once the kick-off was accepted or the job ended. */
  async _accepted(signal) {
    await raceSignal(this.#until(() => this.statusUrl !== null || this.#core.isFinished, this.#loop), signal);
    const err = this.#core.error();
    if (err && this.statusUrl === null) throw fromCore(err);
  }

  async #drive() {
    for (;;) {
      const now = Date.now();
      const action = core(() => this.#core.nextAction(now));
      switch (action.type) {
        case 'send':
          await this.#send(action.request, now);
          break;
        case 'wait':
          this.#dueAt = action.untilMs;
          this.#emit();
          // One timer for every job's wait (schedule.js): O(log n) per wait.
          await new Promise((resolve) => {
            this.#wait = schedule.add(action.untilMs, resolve);
          });
          this.#wait = null;
          break;
        case 'refreshToken': {
          // A fixed token (or none) is not sent again: the engine ends the job
          // with Unauthorized naming why (issue 10 §2, 401 messages).
          const why = this.#client._whyNoTokenRefresh();
          if (why) core(() => this.#core.tokenUnavailable(why));
          else await this.#client._token(true);
          break;
        }
        case 'done': {
          const outcome = action.outcome;
          linkOutcome(outcome, this);
          this.#emit();
          return outcome;
        }
        default:
          throw new UsageError(`unknown action ${action.type}`);
      }
    }
  }

  async #send(request, now) {
    this.#stats.requests++;
    if (request.kind === 'status') {
      this.#stats.polls++;
      if (this.#dueAt !== null) {
        const late = Math.max(0, now - this.#dueAt);
        this.#stats.maxPollLatenessMs = Math.max(this.#stats.maxPollLatenessMs, late);
        this.#stats.totalPollLatenessMs += late;
      }
    }
    this.#dueAt = null;
    let response;
    // A token that cannot be had (AuthError) ends the job: it is not a transport error.
    const token = request.auth ? await this.#client._token() : null;
    try {
      response = await this.#client._exchange(request, token);
    } catch (e) {
      core(() => this.#core.handleTransportError(request.id, transportKind(e), String(e?.cause?.message ?? e?.message ?? e), Date.now()));
      this.#notify();
      return;
    }
    // A body past its ceiling was not read to its end (K9): the engine ends the job.
    core(() =>
      response.body === null
        ? this.#core.responseTooLarge(request.id, Date.now())
        : this.#core.handleResponse(request.id, response.status, response.headers, response.body, response.url, Date.now()),
    );
    this.#notify();
  }

  #emit() {
    if (!this.#listeners?.size) return;
    const p = this.progress();
    for (const l of this.#listeners) {
      try {
        l(p);
      } catch {
        // A listener's bug must not stop the job.
      }
    }
  }

  #notify() {
    if (!this.#changed?.size) return;
    const waiters = [...this.#changed];
    this.#changed.clear();
    for (const w of waiters) w();
  }

  /** Resolves when `cond()` holds, re-checked after every response; rethrows if `loop` fails first. */
  async #until(cond, loop) {
    // The loop's end notifies too (`_run`), so nothing waits on `loop` itself while it runs:
    // a hundred thousand running jobs keep no reaction each on their loops (issue 21).
    while (!cond()) {
      if (loop && this.#settled) {
        await loop; // rethrows the job's error; a finished job cannot change any more
        return;
      }
      await new Promise((resolve) => (this.#changed ??= new Set()).add(resolve));
    }
  }
}

/**
 * Links an outcome to its job (non-enumerable, so JSON is unchanged) and gives
 * it a `manifest` getter (issue 11 §3: `result.manifest` works): the Bulk
 * manifest of the result, or `null`. The manifest carries the same link, so
 * `client.resources(result.manifest)` works too.
 */
function linkOutcome(outcome, job) {
  Object.defineProperty(outcome, JOB_OF, { value: job, enumerable: false });
  const body = outcome.result;
  const manifest = body?.kind === 'manifest' || body?.kind === 'asyncJob' ? (body.manifest ?? null) : null;
  if (manifest && typeof manifest === 'object') Object.defineProperty(manifest, JOB_OF, { value: job, enumerable: false });
  Object.defineProperty(outcome, 'manifest', { get: () => manifest, enumerable: false });
}
