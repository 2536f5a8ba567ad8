"""Downloads that never start over and stay polite (issue 14, protocol K1-K3,
K5), through the Python API against the reference server: bodies cut every few
hundred KB are continued by range (bytes on the wire <= 1.05 x the files),
byte-identical to a clean download; a ~1 GB export cut every 100 MB; a server
that allows two connections; a process killed mid-file, resumed by the next."""

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from conftest import FAST, Server, start_server, stop_server

import fhir_async


@pytest.fixture(scope="module")
def big() -> Iterator[Server]:
    s = start_server("--job-ms", "0", "--retry-after", "0", "--patients", "3000", "--file-resources", "4000")
    yield s
    stop_server(s)


def download(server: Server, faults: str, dest: Path, **kw: object) -> fhir_async.DownloadedFiles:
    client = fhir_async.Client(server.base("/bulk/fhir", faults), retry=FAST)
    result = client.export(types=["Patient", "Observation"]).wait(raise_on_failure=True)
    return result.download(dest, **kw)  # type: ignore[arg-type]


def sent(server: Server) -> int:
    return int(server.stats()["file_bytes_sent"])


# protocol K1, issue 14: cut bodies continue with a range; nothing is sent twice
def test_cut_bodies_continue_by_range(big: Server, tmp_path: Path) -> None:
    for gzip in (False, True):  # identity, and gzip within the process (K2)
        big.reset()
        clean = download(big, "", tmp_path / f"clean-{gzip}", gzip=gzip)
        clean_bytes = sent(big)
        big.reset()
        cut = download(big, "cut=200000", tmp_path / f"cut-{gzip}", gzip=gzip)
        cut_bytes = sent(big)
        assert cut_bytes <= clean_bytes * 1.05, (gzip, cut_bytes, clean_bytes)
        assert big.stats()["files"]["206"] > 0
        assert [p.name for p in cut] == [p.name for p in clean]
        for a, b in zip(clean, cut):
            assert a.read_bytes() == b.read_bytes(), a.name


# protocol K3, issue 14: a server that answers 429 above 2 connections: no file fails
def test_two_connections_allowed(big: Server, tmp_path: Path) -> None:
    big.reset()
    files = download(big, "conn=2;slow=2000000", tmp_path / "conn", max_per_origin=6, gzip=False)
    assert not files.failed, files.failed
    assert big.stats()["max_files_in_flight"] <= 3


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# protocol K1, issue 14: a ~1 GB export whose bodies are cut every 100 MB is downloaded with
# bytes on the wire <= 1.05 x the file sizes, byte-identical to a clean download
def test_a_gigabyte_cut_every_100_mb(tmp_path: Path) -> None:
    srv = start_server("--job-ms", "0", "--retry-after", "0", "--patients", "100000")
    try:
        client = fhir_async.Client(srv.base("/bulk/fhir"), retry=FAST)
        result = client.export().wait(raise_on_failure=True)
        clean = result.download(tmp_path / "clean", gzip=False)
        sizes = sum(int(r["bytes"]) for r in clean.reports)
        assert sizes > 900_000_000, sizes
        before = sent(srv)
        cut = download_all(srv, "cut=100000000", tmp_path / "cut")
        wire = sent(srv) - before
        assert not cut.failed, cut.failed
        assert wire <= sizes * 1.05, (wire, sizes)
        assert sum(int(r["rangeResumes"]) for r in cut.reports) >= 6
        assert [p.name for p in cut] == [p.name for p in clean]
        for a, b in zip(clean, cut):
            assert sha256(a) == sha256(b), a.name
    finally:
        stop_server(srv)
        # 2 GB: not left for pytest's kept temporary folders.
        shutil.rmtree(tmp_path, ignore_errors=True)


def download_all(server: Server, faults: str, dest: Path) -> fhir_async.DownloadedFiles:
    client = fhir_async.Client(server.base("/bulk/fhir", faults), retry=FAST)
    return client.export().wait(raise_on_failure=True).download(dest, gzip=False)


# The process the K5 test kills: exports, saves the job, downloads one file at a time.
CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import fhir_async
    base, folder = sys.argv[1], Path(sys.argv[2])
    client = fhir_async.Client(base, retry={"min_wait_ms": 20, "initial_backoff_ms": 20, "max_backoff_ms": 200})
    state = folder / "state.json"
    if state.exists():
        job = client.resume(state.read_text())
    else:
        job = client.export(types=["Patient", "Observation"])
        job.wait(raise_on_failure=True)
        state.write_text(job.to_json())
    job.wait(raise_on_failure=True).download(folder / "out", max_per_origin=1, gzip=False)
    state.write_text(job.to_json())
    """
)


# protocol K5, issue 14: a process killed (SIGKILL) once a file is done and another is part-way;
# `client.resume(state)` in the next process, with the state saved before the download, does not
# fetch the finished file again and continues the part-way one with a range (a 206): the folder's
# progress journal (.fhir-async-progress.jsonl) holds what the killed process could not save.
def test_a_killed_process_resumes_without_refetching(tmp_path: Path) -> None:
    # Two files: 0.74 MB of Patient, then 2.6 MB of Observation at 1 MB/s, so the Observation
    # file's first checkpoint (journaled after a second of streaming) comes well before it ends.
    srv = start_server("--job-ms", "0", "--retry-after", "0", "--patients", "750")
    try:
        clean = download(srv, "", tmp_path / "clean", gzip=False)
        assert len(clean) == 2
        base = srv.base("/bulk/fhir", "slow=1000000")
        script = tmp_path / "child.py"
        script.write_text(CHILD)
        out = tmp_path / "out"
        proc = subprocess.Popen([sys.executable, str(script), base, str(tmp_path)])
        try:
            wait_for(lambda: one_done_one_part_way(out) or proc.poll() is not None, 60)
            assert proc.poll() is None, "the child ended before it was killed"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        done = {p.name: p.stat().st_mtime_ns for p in out.glob("*.ndjson")}
        assert len(done) == 1, done
        srv.reset()
        subprocess.run([sys.executable, str(script), base, str(tmp_path)], check=True, timeout=120)
        stats = srv.stats()
        fetched = [r for r in stats["requests"] if r["route"] == "bulk.file"]
        assert [r["status"] for r in fetched] == [206], fetched
        for name, mtime in done.items():
            assert (out / name).stat().st_mtime_ns == mtime, f"{name} was written again: {fetched}"
        assert stats["files"]["206"] == 1 and stats["files"].get("200", 0) == 0, stats["files"]
        for a in clean:
            assert sha256(a) == sha256(out / a.name), a.name
        assert sorted(p.name for p in out.iterdir()) == sorted(a.name for a in clean), "no journal, .tmp, .part left"
    finally:
        stop_server(srv)


def one_done_one_part_way(out: Path) -> bool:
    """A finished file in `out`, and a checkpoint of another one in its journal."""
    done = {p.name for p in out.glob("*.ndjson")}
    journal = out / ".fhir-async-progress.jsonl"
    if not done or not journal.exists():
        return False
    for line in journal.read_text().splitlines():
        try:
            record = json.loads(line)["record"]
        except (ValueError, KeyError):
            continue  # a line being written
        if record.get("checkpoint") and record["fileName"] not in done:
            return True
    return False


def wait_for(cond: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
