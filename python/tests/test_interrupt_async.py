"""Ctrl-C stops a wait or a download within a second and leaves no temp
file; asyncio runs many jobs at once without blocking the loop."""

from __future__ import annotations

import _thread
import asyncio
import threading
import time
from pathlib import Path
from typing import List

import pytest

import fhir_async
from conftest import Server, client, ids

TYPES = ["Patient", "Condition", "Observation"]


def interrupt_after(seconds: float) -> threading.Timer:
    t = threading.Timer(seconds, _thread.interrupt_main)
    t.start()
    return t


def test_ctrl_c_stops_a_wait(server: Server) -> None:
    job = client(server.base("/bulk/fhir", "never")).export(types=["Patient"])
    interrupt_after(0.3)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        job.wait()
    assert time.monotonic() - start < 0.3 + 1.0
    # The job survives the interrupt and can still be cancelled.
    assert job.cancel() is not None


def test_ctrl_c_stops_a_download_and_leaves_no_tmp(server: Server, tmp_path: Path) -> None:
    # slow=40000 bytes/s: the files take seconds; interrupt mid-body.
    result = client(server.base("/bulk/fhir", "slow=40000")).export(types=TYPES).wait(raise_on_failure=True)
    seen: List[int] = []

    def watch() -> None:
        # Interrupt once bytes are flowing (bounded wait, no fixed sleep-to-wait).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not list(tmp_path.glob("*.tmp")):
            time.sleep(0.01)
        seen.append(len(list(tmp_path.glob("*.tmp"))))
        _thread.interrupt_main()

    threading.Thread(target=watch, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        result.download(tmp_path, concurrency=3)
    elapsed = time.monotonic() - start
    assert seen and seen[0] > 0, "the download never started writing"
    assert elapsed < 10
    stop = time.monotonic()
    assert not list(tmp_path.glob("*.tmp"))
    assert not list(tmp_path.glob("*.ndjson"))
    del stop


def test_ctrl_c_latency_during_download(server: Server, tmp_path: Path) -> None:
    result = client(server.base("/bulk/fhir", "slow=20000")).export(types=TYPES).wait(raise_on_failure=True)
    fired: List[float] = []

    def fire() -> None:
        fired.append(time.monotonic())
        _thread.interrupt_main()

    threading.Timer(0.5, fire).start()
    with pytest.raises(KeyboardInterrupt):
        result.download(tmp_path, concurrency=2)
    assert time.monotonic() - fired[0] < 1.0
    assert not list(tmp_path.glob("*.tmp"))


def test_ctrl_c_stops_resource_iteration(server: Server) -> None:
    result = client(server.base("/bulk/fhir", "slow=20000")).export(types=TYPES).wait(raise_on_failure=True)
    fired: List[float] = []

    def fire() -> None:
        fired.append(time.monotonic())
        _thread.interrupt_main()

    threading.Timer(0.3, fire).start()
    n = 0
    with pytest.raises(KeyboardInterrupt):
        for _ in result.resources():
            n += 1
    assert time.monotonic() - fired[0] < 1.0


def test_fifty_concurrent_async_jobs(server: Server) -> None:
    c = client(server.base("/bulk/fhir", "ms=300"))
    ticks: List[float] = []

    async def heartbeat(stop: asyncio.Event) -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def main() -> List[fhir_async.Result]:
        stop = asyncio.Event()
        hb = asyncio.create_task(heartbeat(stop))
        jobs = [c.export(types=["Patient"], start=False) for _ in range(50)]
        results = await asyncio.wait_for(asyncio.gather(*(j.wait_async() for j in jobs)), 30)
        stop.set()
        await hb
        return list(results)

    start = time.monotonic()
    results = asyncio.run(main())
    elapsed = time.monotonic() - start
    assert [r.status for r in results] == ["completed"] * 50
    assert len({r.job.status_url for r in results}) == 50
    # Concurrent, not one after the other (each job alone takes >= 300 ms).
    assert elapsed < 50 * 0.3 / 2
    # The loop kept running: no gap much longer than the 10 ms heartbeat.
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    assert max(gaps) < 0.5, max(gaps)


def test_async_cancel_wakes_the_waiter(server: Server) -> None:
    c = client(server.base("/bulk/fhir", "never;retry=30"))

    async def main() -> str:
        job = c.export(types=["Patient"])
        waiter = asyncio.create_task(job.wait_async())
        # Until the waiter sleeps on the server's 30 s Retry-After (bounded).
        for _ in range(500):
            if job._events and job.progress.polls >= 1:
                break
            await asyncio.sleep(0.01)
        assert job._events
        start = time.monotonic()
        await job.cancel_async()
        r = await asyncio.wait_for(waiter, 5)
        assert time.monotonic() - start < 2
        return r.status

    assert asyncio.run(main()) == "cancelled"


class _CancelDuringStep:
    """The native run, with a cancel (and its wake) arriving while a step runs on its thread."""

    def __init__(self, job: fhir_async.Job) -> None:
        self.job = job
        self.inner = job._native
        self.fired = False

    def step(self, block_ms: int) -> object:
        r = self.inner.step(block_ms)
        # The step that made the first poll (now to wait 30 s) has not returned yet.
        if not self.fired and self.inner.progress()["polls"] >= 1:
            self.fired = True
            self.inner.request_cancel()
            self.job._wake()
        return r

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_a_wake_during_a_step_is_not_lost(server: Server) -> None:
    # A cancel whose wake lands while wait_async's step runs on the executor: the waiter goes
    # on at once instead of sleeping out the server's 30 s Retry-After.
    c = client(server.base("/bulk/fhir", "never;retry=30"))

    async def main() -> str:
        job = c.export(types=["Patient"])
        job._native = _CancelDuringStep(job)  # type: ignore[assignment]
        start = time.monotonic()
        r = await asyncio.wait_for(job.wait_async(), 10)
        assert time.monotonic() - start < 5, "the wake was lost"
        return r.status

    assert asyncio.run(main()) == "cancelled"


def test_async_resources_match(server: Server) -> None:
    async def main() -> List[str]:
        job = client(server.base("/bulk/fhir")).export(types=["Patient"], start=False)
        r = await job.wait_async(raise_on_failure=True)
        return ids(list(r.resources()))

    assert len(asyncio.run(main())) == 50


CHILD = r"""
import signal, sys, fhir_async
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even if started with `&`
base, out = sys.argv[1], sys.argv[2]
c = fhir_async.Client(base, retry={"min_wait_ms": 20, "initial_backoff_ms": 20})
r = c.export(types=["Patient", "Condition", "Observation"]).wait(raise_on_failure=True)
print("downloading", flush=True)
try:
    r.download(out, concurrency=3)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
print("finished", flush=True)
"""


def test_sigint_to_a_process_mid_download(server: Server, tmp_path: Path) -> None:
    """A real SIGINT (Ctrl-C in a terminal) to a process that is downloading."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "out"
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, server.base("/bulk/fhir", "slow=30000"), str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "downloading"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not list(out.glob("*.tmp")):
            time.sleep(0.01)
        assert list(out.glob("*.tmp")), "no file was being written"
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=5) == 130
        assert time.monotonic() - sent < 1.0
        assert p.stdout.read().strip() == "interrupted"
        assert not list(out.glob("*.tmp"))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if p.stdout is not None:
            p.stdout.close()
