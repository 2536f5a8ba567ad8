"""The typed Python API over the native client: ``Client``, ``Job``, ``Result``.

Every protocol decision is made by the Rust engine, and the native client
(``fhir-async-client``) does the HTTP, the files and the threads without the
GIL. This file only shapes arguments and results.
"""

from __future__ import annotations

import itertools
import datetime as _dt
import json
import operator
import os
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
    overload,
)


from . import _native
from .errors import CancelledError, DeadlineExceededError, FhirAsyncWarning, JobFailedError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import asyncio

    import pandas
    import polars
    import pyarrow

TokenSource = Union[str, Callable[[], str], None]
"""A bearer token: none, a fixed string, or a callable asked again after a 401."""

Instant = Union[str, _dt.datetime]

CountCheck = Literal["strict", "lenient"]
"""What an output file whose resources differ from the manifest's count
does: fail (``"strict"``, the default; the other files are kept) or
complete with a note. Only lines that parse as JSON objects count. An error
file is evidence: whatever the check, its lines are kept and a mismatch is
a warning in its report (issue 19)."""

OnInvalidLine = Literal["report", "raise"]
"""What a line that is not JSON does: skipped and reported (``"report"``, the
default), or ``InvalidLineError`` (``"raise"``)."""

_RETRY_FIELDS = (
    "minWaitMs",
    "maxWaitMs",
    "initialBackoffMs",
    "maxBackoffMs",
    "backoffFactorPercent",
    "jitterPercent",
    "seed",
    "maxRetries",
    "maxKickoffRetries",
    "maxDownloadRetries",
    "requestTimeoutMs",
    "maxResponseBytes",
)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _retry_config(retry: Optional[Mapping[str, int]]) -> Dict[str, int]:
    """Accepts snake_case (``min_wait_ms``) or the engine's camelCase keys."""
    out: Dict[str, int] = {}
    for key, value in (retry or {}).items():
        camel = _camel(key)
        if camel not in _RETRY_FIELDS:
            raise UsageError(f"unknown retry option {key!r}; known: {', '.join(_RETRY_FIELDS)}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise UsageError(f"retry option {key!r} must be a non-negative int")
        out[camel] = value
    return out


def _instant(value: Optional[Instant]) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            raise UsageError("a datetime for since/until must be timezone-aware")
        return value.isoformat()
    return value


def _ms(seconds: Optional[float]) -> Optional[int]:
    return None if seconds is None else max(0, int(seconds * 1000))


_executor_lock = threading.Lock()
_executor: Optional[ThreadPoolExecutor] = None


def _async_executor() -> ThreadPoolExecutor:
    """Threads for the HTTP round trips of ``wait_async`` (waits stay on the loop)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="fhir-async")
        return _executor


@dataclass(frozen=True)
class BackendServices:
    """SMART Backend Services (``client_credentials``):
    ``Client(base, auth=BackendServices("client-1", key="key.pem",
    scope="system/*.read"))``. ``key`` is the path of a PEM file (PKCS#8 RSA
    or P-384 EC), of a private JWK or JWKS (JSON), a JWK / JWKS dict, or the
    PEM text itself (a str starting ``-----BEGIN``, or bytes); ``key_env``
    names an environment variable holding the PEM or JWK / JWKS text instead.
    RS384 or ES384 follows from the key, and each token request carries an
    assertion signed with it. A symmetric client gives ``client_secret``
    instead of a key (``client_secret_basic``: the id and secret in
    ``Authorization: Basic`` of the token request, nothing signed), or
    ``client_secret_env`` (an environment variable's name) or
    ``client_secret_file`` (a file holding it; surrounding whitespace is
    dropped). The env and file forms are read where the ``Client`` is built,
    so a task of ``fhir_async.dask`` carries their names, never the secret
    (inline secrets and key material are refused there).
    ``token_url`` is found by discovery (``.well-known/smart-configuration``)
    when None; ``kid`` picks the key of a JWKS and names it in the assertion.
    Tokens are renewed before they expire and after a 401; a refusal raises
    ``AuthError`` with the server's ``error`` and ``error_description``.
    Neither the tokens, the key nor the secret appear in a repr, an error or
    the saved state. ``_clock_offset_ms`` is for tests only: the client's
    clock (assertions' ``iat``/``exp``) is this far off."""

    client_id: str
    key: Union[str, "os.PathLike[str]", Mapping[str, Any], bytes, None] = None
    scope: str = "system/*.read"
    token_url: Optional[str] = None
    kid: Optional[str] = None
    client_secret: Optional[str] = None
    client_secret_env: Optional[str] = None
    client_secret_file: Union[str, "os.PathLike[str]", None] = None
    key_env: Optional[str] = None
    _clock_offset_ms: int = 0

    def __post_init__(self) -> None:
        given = [
            name
            for name in ("key", "key_env", "client_secret", "client_secret_env", "client_secret_file")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise UsageError(
                "BackendServices takes one of key (PEM/JWK path, JWK dict or PEM text), key_env, "
                f"client_secret, client_secret_env or client_secret_file; got {', '.join(given) or 'none'}"
            )
        if self.client_secret is not None and (not isinstance(self.client_secret, str) or not self.client_secret):
            raise UsageError("client_secret must be a non-empty str")
        for name in ("client_secret_env", "key_env"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise UsageError(f"{name} must be the name of an environment variable (a non-empty str)")

    @property
    def inline_credential(self) -> Optional[str]:
        """Which field holds a secret or key material itself (``client_secret``,
        ``key``), or None when only names travel (a key file's path, an
        environment variable's name, a secret file's path)."""
        if self.client_secret is not None:
            return "client_secret"
        if isinstance(self.key, (Mapping, bytes, bytearray)) or _is_pem(self.key):
            return "key"
        return None

    def __repr__(self) -> str:
        if self.client_secret is not None:
            cred = "client_secret='***'"
        elif self.client_secret_env is not None:
            cred = f"client_secret_env={self.client_secret_env!r}"
        elif self.client_secret_file is not None:
            cred = f"client_secret_file={os.fspath(self.client_secret_file)!r}"
        elif self.key_env is not None:
            cred = f"key_env={self.key_env!r}"
        elif self.inline_credential == "key":
            cred = f"key={'<jwk>' if isinstance(self.key, Mapping) else '<pem>'!r}"
        else:
            cred = f"key={os.fspath(self.key)!r}"  # type: ignore[arg-type]
        return f"BackendServices(client_id={self.client_id!r}, {cred}, scope={self.scope!r})"

    def _native(self) -> Dict[str, Any]:
        """The settings the native client takes; the env and file forms are read here, now."""
        out: Dict[str, Any] = {
            "client_id": self.client_id,
            "scope": self.scope,
            "token_url": self.token_url,
            "kid": self.kid,
            "clock_offset_ms": self._clock_offset_ms,
        }
        if self.client_secret is not None:
            out["client_secret"] = self.client_secret
        elif self.client_secret_env is not None:
            out["client_secret"] = _from_env(self.client_secret_env, "the client secret")
        elif self.client_secret_file is not None:
            out["client_secret"] = _from_file(self.client_secret_file, "the client secret")
        elif self.key_env is not None:
            text = _from_env(self.key_env, "the private key")
            out["key_jwk" if text.startswith("{") else "key_pem"] = text
        elif isinstance(self.key, Mapping):
            out["key_jwk"] = json.dumps(dict(self.key))
        elif isinstance(self.key, (bytes, bytearray)):
            out["key_pem"] = bytes(self.key).decode("utf-8", "replace")
        elif _is_pem(self.key):
            out["key_pem"] = self.key
        else:
            out["key_path"] = os.fspath(self.key)  # type: ignore[arg-type]
        return out


def _is_pem(key: Any) -> bool:
    return isinstance(key, str) and key.lstrip().startswith("-----BEGIN")


def _from_env(name: str, what: str) -> str:
    """The value of environment variable ``name`` here (a worker's own
    environment); a ``UsageError`` naming the variable (never a value) when unset."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise UsageError(f"the environment variable {name} ({what}) is not set here")
    return value


def _from_file(path: Union[str, "os.PathLike[str]"], what: str) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise UsageError(f"{os.fspath(path)} ({what}) cannot be read here: {e.strerror}") from None
    if not value:
        raise UsageError(f"{os.fspath(path)} ({what}) is empty")
    return value


@dataclass(frozen=True)
class Progress:
    """A snapshot of a job for display. ``message`` is the server's
    ``X-Progress`` text; ``percent`` is read from it when it carries one."""

    phase: str
    message: Optional[str]
    percent: Optional[float]
    polls: int
    next_poll_in_ms: Optional[int]
    next_poll_at_ms: Optional[int]
    status_url: Optional[str]
    partial_files: int
    warning: Optional[str] = None
    """The latest warning of the job (a clamped ``Retry-After``, ...)."""

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> "Progress":
        return cls(
            phase=d["phase"],
            message=d.get("message"),
            percent=d.get("percent"),
            polls=d.get("polls", 0),
            next_poll_in_ms=d.get("nextPollInMs"),
            next_poll_at_ms=d.get("nextPollAtMs"),
            status_url=d.get("statusUrl"),
            partial_files=d.get("partialFiles", 0),
            warning=d.get("warning"),
        )


class Client:
    """A FHIR server to start asynchronous operations on.

    ``timeout`` is the overall deadline of each job in seconds (None: none);
    ``retry`` tunes polling and retries (``min_wait_ms``, ``initial_backoff_ms``,
    ``max_retries``, ...) and holds the ceiling on a status, manifest or
    result answer's body, ``max_response_bytes`` (256 MiB by default; past
    it: ``ResponseTooLargeError``, with memory bounded by it); ``allowed_origins`` are other origins that may
    receive the token for file downloads. ``token`` is None, a str, or a
    callable returning a str (asked again after a 401); ``auth`` is
    ``BackendServices(...)`` for SMART Backend Services instead.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: TokenSource = None,
        timeout: Optional[float] = None,
        retry: Optional[Mapping[str, int]] = None,
        allowed_origins: Sequence[str] = (),
        auth: Optional[BackendServices] = None,
    ) -> None:
        if not isinstance(base_url, str) or not base_url:
            raise UsageError("base_url must be a non-empty string")
        if token is not None and not isinstance(token, str) and not callable(token):
            raise UsageError("token must be None, a str, or a callable returning a str")
        if auth is not None and not isinstance(auth, BackendServices):
            raise UsageError("auth must be a fhir_async.BackendServices")
        if auth is not None and token is not None:
            raise UsageError("pass token= or auth=, not both")
        self.base_url = base_url
        self._timeout_ms = _ms(timeout)
        self._retry = _retry_config(retry)
        self._allowed_origins = list(allowed_origins)
        # How to build this client again in another process (fhir_async.dask); never pickled as is.
        self._token, self._auth = token, auth
        self._native = _native.Client(base_url, token, None if auth is None else auth._native())

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def _config(self, operation: Dict[str, Any], prefer: Dict[str, Any]) -> str:
        return json.dumps(
            {
                "baseUrl": self.base_url,
                "operation": operation,
                "prefer": prefer,
                "retry": self._retry,
                "timeoutMs": self._timeout_ms,
                "allowedOrigins": self._allowed_origins,
            }
        )

    def export(
        self,
        *,
        types: Optional[Sequence[str]] = None,
        since: Optional[Instant] = None,
        until: Optional[Instant] = None,
        type_filters: Optional[Sequence[str]] = None,
        elements: Optional[Sequence[str]] = None,
        patients: Optional[Sequence[str]] = None,
        level: str = "system",
        group_id: Optional[str] = None,
        post: bool = False,
        output_format: Optional[str] = None,
        include_associated_data: Optional[Sequence[str]] = None,
        organize_output_by: Optional[str] = None,
        allow_partial_manifests: Optional[bool] = None,
        lenient: bool = False,
        separate_export_status: bool = False,
        callback_url: Optional[str] = None,
        start: bool = True,
    ) -> "Job":
        """Starts a Bulk Data ``$export`` (``level``: system, patient, group).

        With ``start=True`` this returns once the server accepted the kick-off,
        so ``status_url`` is known (see ``Job.start``: a 429 on the kick-off is
        waited out as its ``Retry-After`` says, within ``max_kickoff_retries``;
        then ``RetriesExhaustedError``). With ``start=False`` the first ``wait``
        sends it.
        """
        op: Dict[str, Any] = {
            "type": "export",
            "level": level,
            "groupId": group_id,
            "types": list(types or []),
            "since": _instant(since),
            "until": _instant(until),
            "typeFilters": list(type_filters or []),
            "elements": list(elements or []),
            "patients": list(patients or []),
            "includeAssociatedData": list(include_associated_data or []),
            "organizeOutputBy": organize_output_by,
            "allowPartialManifests": allow_partial_manifests,
            "outputFormat": output_format,
            "post": post,
        }
        prefer = {
            "lenient": lenient,
            "separateExportStatus": separate_export_status,
            "callbackUrl": callback_url,
        }
        return self._new(op, prefer, start)

    def kickoff(
        self,
        method: str,
        path: str,
        body: Union[None, str, Mapping[str, Any]] = None,
        *,
        async_mode: Optional[str] = None,
        callback_url: Optional[str] = None,
        lenient: bool = False,
        start: bool = True,
    ) -> "Job":
        """Starts any operation with ``Prefer: respond-async``: ``method`` is
        GET, POST or DELETE; ``path`` is relative to the base (``$reindex``,
        ``Patient?name=x``, ``""`` for a transaction); ``async_mode`` is
        ``"bundle"`` or ``"redirect"``. With ``start=True`` it returns once
        the kick-off was accepted, like ``export()`` (see ``Job.start``)."""
        text = body if body is None or isinstance(body, str) else json.dumps(body)
        op = {"type": "operation", "method": method.upper(), "path": path, "body": text}
        prefer = {"asyncMode": async_mode, "callbackUrl": callback_url, "lenient": lenient}
        return self._new(op, prefer, start)

    def resume(self, state: str) -> "Job":
        """A job saved with ``Job.to_json()``, in this process or another one.
        The resumed run's deadline is this client's ``timeout`` from now (None:
        none), not the first run's: it bounds the waits, polls and manifest
        refreshes of what follows (issue 19)."""
        return Job(self, self._native.resume(state, self._timeout_ms))

    def stop(self) -> None:
        """Stops every call of this client in progress, from any thread (a
        UI's stop button): each raises ``StoppedError`` (code ``stopped``),
        an internal stop, not the server's cancel; the jobs can be waited for
        again. Ctrl-C raises ``KeyboardInterrupt`` instead."""
        self._native.stop()

    def resources(
        self,
        result_or_manifest: Union["Result", "Manifest"],
        resource_type: Union[None, str, Sequence[str]] = None,
        **options: Any,
    ) -> "ResourceStream":
        """The resources of a finished job: ``result_or_manifest`` is a
        ``Result`` or its ``result.manifest``. Same options as ``Result.resources``."""
        result = result_or_manifest._result if isinstance(result_or_manifest, Manifest) else result_or_manifest
        if not isinstance(result, Result) or result.job._client is not self:
            raise UsageError("resources() needs a Result of this client (or its result.manifest)")
        return result.resources(resource_type, **options)

    def _new(self, op: Dict[str, Any], prefer: Dict[str, Any], start: bool) -> "Job":
        job = Job(self, self._native.job(self._config(op, prefer)))
        if start:
            job.start()
        return job


class Job:
    """A running asynchronous operation. ``wait()`` (or ``await
    wait_async()``) drives it to the end and returns its ``Result``."""

    def __init__(self, client: Client, native: _native.Run) -> None:
        self._client = client
        self._native = native
        self._events: List[Tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._events_lock = threading.Lock()

    @property
    def native(self) -> _native.Run:
        """The native client's job."""
        return self._native

    @property
    def status_url(self) -> Optional[str]:
        return self._native.status_url()

    @property
    def progress(self) -> Progress:
        return Progress._from(self._native.progress())

    @property
    def is_finished(self) -> bool:
        return self._native.is_finished()

    @property
    def outcome(self) -> Optional[Dict[str, Any]]:
        return self._native.outcome()

    @property
    def warnings(self) -> List[str]:
        return self._native.warnings()

    def to_json(self) -> str:
        """The whole state (no token), for ``Client.resume`` after a restart."""
        return self._native.to_json()

    def __repr__(self) -> str:
        p = self.progress
        pct = "" if p.percent is None else f" {p.percent:.0f}%"
        return f"<Job {p.phase}{pct} polls={p.polls} status_url={p.status_url!r}>"

    def start(self) -> "Job":
        """Sends the kick-off and returns once the server accepted it (the
        status URL is known) or the job ended at once (a synchronous answer).

        A 429 (or 5xx, or a connection that never reached the server) on the
        kick-off is waited out as the engine schedules it (``Retry-After``,
        bounded by the ``max_kickoff_retries`` retry option) while
        ``progress.phase`` reads ``"kickingOff"``; when the retries run out
        this raises the typed error (``RetriesExhaustedError``). Ctrl-C stops the
        wait within a second (``KeyboardInterrupt``). In asyncio code, pass
        ``start=False`` to ``export()`` and ``await job.wait_async()``: the
        kick-off (and its 429 waits) then run without blocking the loop."""
        kind, _ = self._native.step(0)
        # issue 10 §2: a kick-off answered 429 leaves the engine waiting to retry it;
        # step through that wait (the engine's own schedule) until it is accepted.
        while kind == "wait" and self._native.status_url() is None:
            kind, _ = self._native.step(250)
        return self

    def poll(self) -> bool:
        """Does whatever is due now without waiting; True once the job is over."""
        kind, _ = self._native.step(0)
        return kind == "done"

    def wait(
        self,
        *,
        progress: Optional[bool] = False,
        raise_on_failure: bool = False,
        timeout: Optional[float] = None,
    ) -> "Result":
        """Drives the job to its end. Ctrl-C stops it within a second.
        ``progress=True`` shows a tqdm bar (terminal or Jupyter) when tqdm is
        installed; ``timeout`` (seconds) raises ``DeadlineExceededError`` from
        this call only (the job goes on and can be waited for again).
        ``raise_on_failure=True`` raises ``JobFailedError`` when the job
        failed; a cancelled job is a result, never an exception."""
        bar = _Bar(self) if progress else None
        timeout_ms = _ms(timeout)
        deadline = None if timeout_ms is None else _native.now_ms() + timeout_ms
        try:
            while True:
                # Short steps: another thread's cancel or callback waits at most one.
                block = 250
                if deadline is not None:
                    left = deadline - _native.now_ms()
                    if left <= 0:
                        raise DeadlineExceededError(
                            f"the job did not finish within {timeout} s", code="wait_timeout"
                        )
                    block = min(block, left)
                kind, value = self._native.step(block)
                if bar is not None:
                    bar.update()
                if kind == "done":
                    return self._result(value, raise_on_failure)
        finally:
            if bar is not None:
                bar.close()

    async def wait_async(self, *, raise_on_failure: bool = False) -> "Result":
        """Like ``wait()``, for asyncio: HTTP runs on worker threads without
        the GIL, waits are ``asyncio`` sleeps; the event loop never blocks."""
        import asyncio  # here, not at module level: it costs ~80 ms of import time

        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._events_lock:
            self._events.append((loop, event))
        try:
            while True:
                # Cleared before the step, not after: a wake (cancel, callback) that comes while
                # the step runs on its thread is not lost to a 30 s sleep.
                event.clear()
                kind, value = await loop.run_in_executor(_async_executor(), self._native.step, 0)
                if kind == "done":
                    # Other waiters of this job sleep until their next poll: the job is over now.
                    self._wake()
                    return self._result(value, raise_on_failure)
                try:
                    await asyncio.wait_for(event.wait(), max(value, 1) / 1000)
                except asyncio.TimeoutError:
                    pass
        finally:
            with self._events_lock:
                self._events.remove((loop, event))

    def cancel(self) -> Optional[Dict[str, Any]]:
        """Cancels the job (DELETE on the status URL, or the server's own
        cancel) and waits for the answer. Returns the cancel result, e.g.
        ``{"kind": "accepted", ...}``; a job already over stays as it was."""
        self._request_cancel()
        self.wait()
        return self._native.cancel_result()

    def poll_now(self) -> bool:
        """Brings the next status poll forward to now, overriding the
        server's ``Retry-After`` once (use sparingly). True if the job was
        waiting to poll."""
        changed = self._native.poll_now()
        self._wake()
        return changed

    def cleanup(self) -> Optional[Dict[str, Any]]:
        """Asks the server to delete the files (DELETE on the status URL,
        protocol F3) once they are downloaded; returns how it answered."""
        result: Optional[Dict[str, Any]] = self._native.cleanup()
        return result

    async def cancel_async(self) -> Optional[Dict[str, Any]]:
        """``cancel()`` for asyncio."""
        self._request_cancel()
        await self.wait_async()
        return self._native.cancel_result()

    def _request_cancel(self) -> None:
        self._native.request_cancel()
        self._wake()

    def _wake(self) -> None:
        """Ends the current wait of every ``wait_async`` on this job."""
        with self._events_lock:
            for loop, event in self._events:
                loop.call_soon_threadsafe(event.set)

    def handle_callback(self, body: bytes, signature: Optional[str], secret: str) -> Dict[str, Any]:
        """A callback POST (the exact body, its ``X-Signature`` header, the
        shared secret): verified (``CallbackError`` with code
        ``bad_signature`` or ``malformed`` otherwise), then the job polls at
        once to confirm. Returns ``{"kind": "woken" | "ignored", "reason"?}``."""
        _native.verify_callback(body, signature, secret)
        effect: Dict[str, Any] = self._native.handle_callback(body)
        self._wake()
        return effect

    def result(self) -> "Result":
        """The result of a finished job (raises ``UsageError`` before that)."""
        summary = self._native.outcome_summary()
        if summary is None:
            exc = self._native.exception()
            if exc is not None:
                raise exc
            raise UsageError("the job is not finished; call wait() first")
        return Result(self, summary)

    def _result(self, summary: Dict[str, Any], raise_on_failure: bool) -> "Result":
        result = Result(self, summary)
        if raise_on_failure and result.status == "failed":
            result.raise_for_status()
        return result


class Result:
    """How a job ended: ``status`` is ``completed``, ``completedWithErrors``,
    ``failed`` or ``cancelled``. Server-reported failure is a result, not an
    exception, until ``raise_for_status()``.

    The payload (``outcome["result"]``: a manifest, a Bundle, ...) becomes
    Python objects only when first asked for (``outcome``, ``body``,
    ``manifest``, ``files``), so ``wait()`` then ``download()`` of a manifest
    of 100,000 files builds no 100,000 dicts."""

    def __init__(self, job: Job, summary: Dict[str, Any]) -> None:
        self.job = job
        self._summary = summary
        self._outcome: Optional[Dict[str, Any]] = None
        self.last_reports: Sequence[Dict[str, Any]] = []

    @property
    def outcome(self) -> Dict[str, Any]:
        """The whole outcome, as the engine's camelCase JSON."""
        if self._outcome is None:
            outcome = self.job._native.outcome()
            self._outcome = dict(self._summary) if outcome is None else outcome
        return self._outcome

    @property
    def status(self) -> str:
        status: str = self._summary["status"]
        return status

    @property
    def ok(self) -> bool:
        """Whether the job succeeded (possibly with errors in the manifest): the engine's word."""
        return bool(self._summary.get("ok"))

    @property
    def message(self) -> Optional[str]:
        return self._summary.get("message")

    @property
    def http_status(self) -> Optional[int]:
        return self._summary.get("httpStatus")

    @property
    def warnings(self) -> List[str]:
        """What did not stop the job but is worth knowing (clamped ``Retry-After``, ...)."""
        return list(self._summary.get("warnings") or [])

    @property
    def body(self) -> Dict[str, Any]:
        """The result payload: ``{"kind": "manifest"|"bundle"|"asyncJob"|
        "operationOutcome"|"resource"|"text"|"empty", ...}``."""
        body: Dict[str, Any] = self.outcome["result"]
        return body

    @property
    def manifest(self) -> Optional["Manifest"]:
        """The manifest, if the result has one: a dict that also works as
        ``client.resources(result.manifest)``."""
        found: Optional[Dict[str, Any]] = self.body.get("manifest")
        return None if found is None else Manifest(found, self)

    @property
    def files(self) -> List[Dict[str, Any]]:
        """The download plan: one entry per file (``kind``, ``resourceType``,
        ``url``, ``expectedCount``, ``fileName``, ``sendToken``, ``blocked``)."""
        plan: List[Dict[str, Any]] = self.job._native.download_plan()
        return plan

    def raise_for_status(self) -> "Result":
        """Raises ``JobFailedError`` (failed) or ``CancelledError`` (a
        cancelled job has no files); returns self otherwise."""
        if self.status == "failed":
            raise JobFailedError(
                self.message or f"the job failed (HTTP {self.http_status})",
                outcome=self.outcome,
                operation_outcome=self._summary.get("operationOutcome"),
            )
        if self.status == "cancelled":
            raise CancelledError("the job was cancelled")
        return self

    def resources(
        self,
        resource_type: Union[None, str, Sequence[str]] = None,
        *,
        kinds: Sequence[str] = ("output",),
        kind: Optional[str] = None,
        count_check: CountCheck = "strict",
        on_invalid_line: OnInvalidLine = "report",
        max_per_origin: int = 1,
        concurrency: Optional[int] = None,
        max_line: Optional[int] = None,
    ) -> "ResourceStream":
        """Streams the resources of the export's files as dicts, downloading
        ahead in the background (``kinds``: output, error, deleted; default
        output; ``kind=`` is the old single-kind spelling). By default files
        come one after the other in manifest order; ``max_per_origin=N``
        (``concurrency`` is its old name) downloads N at once from one
        origin, and the files' resources then interleave (each file's in
        order). ``close()`` the stream to stop the download early.

        A line that is not JSON never stops the stream: with
        ``on_invalid_line="report"`` (the default) it is skipped, every valid
        line is still delivered, the line is recorded in its file's report
        (``ResourceStream.reports``) and a ``FhirAsyncWarning`` names the file
        once; with ``"raise"`` the stream raises ``InvalidLineError`` (file,
        line number, message) and ends. A file that fails (HTTP error, count
        mismatch with ``count_check="strict"``, ...) is reported and warned
        about, and the stream goes on with the next file; with
        ``count_check="lenient"`` a count mismatch is only noted in the report.
        A file that changes on the server after some of its lines were handed
        out (a continuation answered with other bytes, protocol K7) fails with
        ``FileChangedError``: the stream never mixes two versions of a file.
        ``max_line`` is the longest line accepted, in bytes (protocol K9;
        None: 64 MiB); a longer one fails its file (code ``line_too_long``)."""
        self.raise_for_status()
        types = [resource_type] if isinstance(resource_type, str) else resource_type
        it = self.job._native.resources(
            types=None if types is None else list(types),
            kinds=[kind] if kind is not None else list(kinds),
            count_check=count_check,
            on_invalid_line=on_invalid_line,
            max_per_origin=_per_origin(max_per_origin, concurrency),
            max_line=_max_line(max_line),
        )
        return ResourceStream(it)

    def download(
        self,
        directory: Union[str, "os.PathLike[str]"],
        *,
        max_per_origin: int = 4,
        concurrency: Optional[int] = None,
        types: Optional[Sequence[str]] = None,
        kinds: Sequence[str] = ("output", "error", "deleted"),
        progress: Optional[bool] = False,
        gzip: bool = True,
        count_check: CountCheck = "strict",
        on_invalid_line: OnInvalidLine = "report",
        files: Optional[Sequence[str]] = None,
        max_line: Optional[int] = None,
    ) -> "DownloadedFiles":
        """Downloads the files into ``directory`` (created if needed), at most
        ``max_per_origin`` at once from one origin (``concurrency`` is its
        old name; ``kinds`` defaults to all three lists). Each file is written to
        ``NAME.tmp`` and renamed once complete and its line count matches the
        manifest; on Ctrl-C no ``.tmp`` file remains.

        One bad file never loses the others: a file that fails (its count
        differs from the manifest's with ``count_check="strict"``, an HTTP
        error, retries exhausted, a blocked URL, an invalid line with
        ``on_invalid_line="raise"``) leaves nothing behind and is a report
        entry whose ``error`` is the typed exception; every good file is kept,
        and one ``FhirAsyncWarning`` sums up the problems. With
        ``count_check="lenient"`` a mismatching file is kept and its report
        says so (``countMismatch``, ``warnings``). Lines are written as the
        server sent them; a line counts as a resource only if it parses as a
        JSON object (issue 19): the others are counted in the report
        (``invalidLines``, ``invalid``), not in ``resources``. A file that
        changed on the server mid-download (a continuation answered with
        other bytes, protocol K7) is started over from byte 0, so each file
        holds exactly one version of it. Messages and warnings name a file's
        URL without its query (a signed URL is a credential, K10).

        Returns the paths of the files written, in manifest order (a
        sequence built on demand: 100,000 files cost no 100,000 objects);
        ``.reports`` and ``last_reports`` have one report per planned file,
        ``.failed`` the failed ones.

        ``files`` selects files of the plan by ``fileName`` (``result.files``),
        e.g. one per task of a cluster (``fhir_async.dask``); a name not in
        the plan is a ``UsageError``. ``max_line`` is the longest line
        accepted, in bytes (protocol K9; None: 64 MiB); a longer one fails its
        file (code ``line_too_long``)."""
        if isinstance(files, str):
            raise UsageError("files must be a sequence of fileName strings, not one str")
        self.raise_for_status()
        per_origin = _per_origin(max_per_origin, concurrency)
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        bar = _DownloadBar() if progress else None
        try:
            native = self.job._native.download(
                str(target),
                max_per_origin=per_origin,
                types=None if types is None else list(types),
                kinds=list(kinds),
                gzip=gzip,
                progress=None if bar is None else bar.update,
                count_check=count_check,
                on_invalid_line=on_invalid_line,
                files=None if files is None else list(files),
                max_line=_max_line(max_line),
            )
        finally:
            if bar is not None:
                bar.close()
        written = DownloadedFiles(native)
        self.last_reports = written.reports
        count, lines = native.problems(5)
        if count:
            more = f" (and {count - len(lines)} more)" if count > len(lines) else ""
            warnings.warn(
                f"{count} of {len(native)} files had problems; the good files were kept "
                f"(see .failed and .reports): " + "; ".join(lines) + more,
                FhirAsyncWarning,
                stacklevel=2,
            )
        return written

    def to_arrow(self, resource_type: str) -> "pyarrow.Table":
        """The resources of one type as a ``pyarrow.Table``, built in Rust:
        the type's files are downloaded (the engine's per-file rules, as
        ``download()``: a failed file is warned about and left out) into a
        temporary folder, read into Arrow batches by the client's tables
        module and handed over through the Arrow PyCapsule interface (no
        copy). One column per top-level field (nested values are structs
        and lists) and ``_extra``: the JSON text of the fields that did not
        fit the inferred schema (null when all fit), so no field is lost.
        Needs pyarrow (``pip install 'fhir-async[arrow]'``)."""
        from . import _tables

        _tables._pyarrow()
        with tempfile.TemporaryDirectory(prefix="fhir-async-") as scratch:
            paths = self._download_quietly(scratch, [resource_type])
            return _tables.arrow_table(paths)

    def to_parquet(self, directory: Union[str, "os.PathLike[str]"]) -> List[Dict[str, Any]]:
        """Every resource type of the output as ``<directory>/<Type>.parquet``
        (zstd, row groups bounded in memory), written in Rust from the
        downloaded files (a temporary folder, removed after). Returns one
        dict per type: ``resourceType``, ``path``, ``rows``, ``row_groups``,
        ``bytes``, ``extra_rows`` (rows with an ``_extra`` value). Needs no
        Python package beyond this one."""
        from . import _tables

        Path(directory).mkdir(parents=True, exist_ok=True)
        # The NDJSON lands beside the output (its file system, not /tmp's), then goes.
        with tempfile.TemporaryDirectory(prefix=".fhir-async-", dir=directory) as scratch:
            paths = self._download_quietly(scratch, None)
            by_name = {f["fileName"]: f.get("resourceType") for f in self.files}
            files = [(str(by_name[p.name]), p) for p in paths if by_name.get(p.name)]
            return _tables.folder_to_parquet(files, directory)

    def to_pandas(self, resource_type: str) -> "pandas.DataFrame":
        """The resources of one type as a pandas DataFrame, from
        ``to_arrow()`` (issue 15): one column per top-level field, nested
        objects as dicts, arrays as numpy arrays, and the ``_extra`` column.
        Needs pandas and pyarrow (``pip install 'fhir-async[pandas]'``)."""
        from . import _tables

        return _tables.to_pandas(self.to_arrow(resource_type))

    def to_polars(self, resource_type: str) -> "polars.DataFrame":
        """The resources of one type as a polars DataFrame, from
        ``to_arrow()`` (no copy). Needs polars (``pip install 'fhir-async[polars]'``)."""
        from . import _tables

        return _tables.to_polars(self.to_arrow(resource_type))

    def _download_quietly(self, directory: str, types: Optional[List[str]]) -> List[Path]:
        """The output files of ``types`` (None: all) into ``directory``; a
        file that failed is left out and warned about, as ``download()`` does."""
        paths = self.download(directory, types=types, kinds=("output",))
        if types is not None:
            wanted = {f["fileName"] for f in self.files if f.get("resourceType") in types}
            return [p for p in paths if p.name in wanted]
        return list(paths)

    def cleanup(self) -> Optional[Dict[str, Any]]:
        """Deprecated alias of ``job.cleanup()`` (issue 11: cleanup is on the job)."""
        return self.job.cleanup()

    def __repr__(self) -> str:
        return f"<Result {self.status} http={self.http_status} files={self._summary.get('files', 0)}>"


def _max_line(max_line: Optional[int]) -> Optional[int]:
    """The ``max_line`` ceiling (bytes), checked: None or a positive int."""
    if max_line is not None and (not isinstance(max_line, int) or isinstance(max_line, bool) or max_line < 1):
        raise UsageError("max_line must be None or an int of at least 1 (bytes)")
    return max_line


def _per_origin(max_per_origin: int, concurrency: Optional[int]) -> int:
    """``concurrency`` is the old name of ``max_per_origin``."""
    value = max_per_origin if concurrency is None else concurrency
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UsageError("max_per_origin must be an int of at least 1")
    return value


class Manifest(Dict[str, Any]):
    """A result's manifest (the server's JSON as a dict) that remembers its
    result, so ``client.resources(result.manifest)`` works."""

    def __init__(self, data: Mapping[str, Any], result: "Result") -> None:
        super().__init__(data)
        self._result = result


def _position(index: int, n: int, what: str) -> int:
    """A sequence index (negative counts from the end) as a position, or IndexError."""
    if index < 0:
        index += n
    if not 0 <= index < n:
        raise IndexError(f"{what} index out of range")
    return index


class DownloadedFiles(Sequence[Path]):
    """The paths ``Result.download()`` wrote, in manifest order, built on
    demand. ``reports`` has one report per planned file (``path`` for a file
    written; ``error``, the typed exception, for one that failed); ``failed``
    lists the failed ones."""

    def __init__(self, native: _native.DownloadReports) -> None:
        self._native = native
        self.reports = FileReports(native)

    @property
    def failed(self) -> List[Dict[str, Any]]:
        return self._native.failed()

    def __len__(self) -> int:
        return self._native.ok_count

    @overload
    def __getitem__(self, index: int) -> Path: ...

    @overload
    def __getitem__(self, index: slice) -> List[Path]: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[Path, List[Path]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self._native.ok_path(_position(index, len(self), "path"))

    def __repr__(self) -> str:
        return f"<DownloadedFiles {len(self)} of {len(self._native)} files, {len(self._native) - len(self)} failed>"


class FileReports(Sequence[Dict[str, Any]]):
    """One report per planned file of a download, as dicts built on demand."""

    def __init__(self, native: _native.DownloadReports) -> None:
        self._native = native

    def __len__(self) -> int:
        return len(self._native)

    @overload
    def __getitem__(self, index: int) -> Dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> List[Dict[str, Any]]: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[Dict[str, Any], List[Dict[str, Any]]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self._native.report(_position(index, len(self), "report"))

    def __repr__(self) -> str:
        return f"<FileReports {len(self)} files>"


def read_ndjson(
    paths: Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]],
    *,
    on_invalid_line: OnInvalidLine = "report",
) -> "NdjsonFiles":
    """Streams the resources of local NDJSON files (e.g. what ``download()``
    wrote) as dicts: read and split on a background thread, parsed like
    ``Result.resources()``, with the same ``on_invalid_line`` choice (a line
    that is not JSON is skipped and reported, or raises ``InvalidLineError``).
    The files of one type also become a table: ``.to_arrow()``,
    ``.to_parquet(path)``, ``.to_pandas()``, ``.to_polars()`` (built in Rust)."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    names = [os.fspath(p) for p in items]
    it = _native.read_ndjson(names, on_invalid_line=on_invalid_line)
    return NdjsonFiles(it, names)


def _orjson_loads() -> Optional[Callable[[bytes], Any]]:
    try:
        import orjson
    except ImportError:
        return None
    loads: Callable[[bytes], Any] = orjson.loads
    return loads


class ResourceStream(Iterator[Dict[str, Any]]):
    """Lines arrive from Rust in batches of ~256 KiB. With orjson installed
    they are parsed by ``orjson.loads`` in a C-level pipeline (measured
    faster than building dicts from Rust); otherwise by the native parser.
    A line that does not parse is skipped and reported (``reports``), or
    raises ``InvalidLineError`` with ``on_invalid_line="raise"``."""

    def __init__(self, it: _native.ResourceIterator) -> None:
        self._it = it
        loads = _orjson_loads()
        self._items: Iterator[Any]
        if loads is None:
            self._items = it
        else:
            self._loads = loads
            batches = map(self._parse, iter(it.next_raw_batch, []))
            self._items = itertools.chain.from_iterable(batches)

    def _parse(self, lines: List[bytes]) -> Iterator[Any]:
        """One batch (lines of one file) through ``orjson.loads`` at C speed;
        a line that fails is reported (issue 10 §1) and the rest go on."""
        src = iter(lines)
        items = map(self._loads, src)
        while True:
            try:
                # Not list(map(...)): a batch of live dicts makes the GC scan them (+40 %).
                yield from items
                return
            except ValueError as e:  # orjson.JSONDecodeError is a ValueError
                # The failed line is the last one `map` took from `src`.
                exc = self._it.report_invalid(len(lines) - operator.length_hint(src) - 1, str(e))
                if exc is not None:
                    raise exc from None

    @property
    def reports(self) -> List[Dict[str, Any]]:
        """The reports of the files finished so far: the engine's figures
        (``resources``, ``invalidLines``, ``invalid`` = ``[{"line", "message"}]``,
        ``countMismatch``, ``warnings``), or ``error`` for a file that failed."""
        return self._it.reports()

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        # The C-level iterator itself: a `for` loop then makes no Python call per resource.
        return self._items

    def __next__(self) -> Dict[str, Any]:
        value: Dict[str, Any] = next(self._items)
        return value

    def close(self) -> None:
        """Stops the background download; the stream ends (lines already
        handed to a running ``for`` loop may still arrive)."""
        self._it.close()
        self._items = iter(())

    def __repr__(self) -> str:
        return repr(self._it)


class NdjsonFiles(ResourceStream):
    """``read_ndjson``'s stream, which also makes a table of its files (one
    resource type): read by the Rust tables module, not through dicts."""

    def __init__(self, it: _native.ResourceIterator, paths: List[str]) -> None:
        super().__init__(it)
        self.paths = paths

    def to_arrow(self) -> "pyarrow.Table":
        """The files as a ``pyarrow.Table`` (see ``Result.to_arrow``); the
        dict stream is closed."""
        from . import _tables

        self.close()
        return _tables.arrow_table(self.paths)

    def to_parquet(self, path: Union[str, "os.PathLike[str]"]) -> Dict[str, Any]:
        """The files as one Parquet file at ``path`` (zstd, row groups bounded
        in memory); returns ``{"rows", "row_groups", "bytes", "extra_rows"}``."""
        from . import _tables

        self.close()
        return dict(_tables.ndjson_to_parquet(self.paths, path))

    def to_pandas(self) -> "pandas.DataFrame":
        from . import _tables

        return _tables.to_pandas(self.to_arrow())

    def to_polars(self) -> "polars.DataFrame":
        from . import _tables

        return _tables.to_polars(self.to_arrow())


def _tqdm() -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class _Bar:
    """A tqdm bar over a job's progress (percent when the server says it)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        tqdm = _tqdm()
        self.bar = None if tqdm is None else tqdm(total=100, unit="%", desc="export", leave=True)

    def update(self) -> None:
        if self.bar is None:
            return
        p = self.job.progress
        if p.percent is not None:
            self.bar.n = p.percent
        elif p.phase == "done":
            self.bar.n = 100
        self.bar.set_description(p.phase, refresh=False)
        self.bar.set_postfix_str(p.message or f"polls={p.polls}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _DownloadBar:
    """A tqdm bar over files; its total comes with the first update."""

    def __init__(self) -> None:
        self.tqdm = _tqdm()
        self.bar: Any = None

    def update(self, nbytes: int, resources: int, done: int, total: int) -> None:
        if self.tqdm is None:
            return
        if self.bar is None:
            self.bar = self.tqdm(total=total, unit="file", desc="download", leave=True)
        self.bar.n = done
        self.bar.set_postfix_str(f"{nbytes / 1e6:.1f} MB, {resources} resources", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
