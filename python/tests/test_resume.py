"""Downloads that never start over and stay polite (issue 14, protocol K1-K3),
through the Python API against the reference server: bodies cut every few
hundred KB are continued by range (bytes on the wire <= 1.05 x the files),
byte-identical to a clean download; a server that allows two connections."""

from pathlib import Path
from typing import Iterator

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
