"""A running asynchronous operation (``Job``): stepped by Python's own loop
(``wait``, with an optional progress bar) or by asyncio (``wait_async``),
cancelled, woken by a callback. The engine decides every step."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from . import _native
from ._progress import Progress, _Bar
from ._result import Result
from .errors import DeadlineExceededError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import asyncio

    from ._client import Client


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
