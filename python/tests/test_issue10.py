"""Issue 10, as the Python binding answers it: bad lines and bad files lose
nothing else, a 429 on the kick-off is waited out, User-Agent, the server's
own words in 401 and file errors."""

from __future__ import annotations

import _thread
import threading
import time
from pathlib import Path
from typing import Any, List

import pytest

import fhir_async
from conftest import Server, client
from stub_server import Stub, StubFile, outcome, stub  # noqa: F401 - `stub` is a fixture

LINES = b'{"resourceType":"Patient","id":"a"}\n{not json}\n{"resourceType":"Patient","id":"c"}\n'
GOOD = b'{"resourceType":"Patient","id":"d"}\n'


def stub_result(stub: Stub, **files: StubFile) -> fhir_async.Result:
    stub.files.update(files)
    return client(stub.base).export(types=["Patient"]).wait(raise_on_failure=True)


# -- §1: a non-JSON line --------------------------------------------------------


@pytest.mark.parametrize("parser", ["orjson", "native"])
def test_invalid_line_is_skipped_reported_once_and_the_rest_delivered(
    stub: Stub, parser: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # issue 10 §3: `{not json}` passes the structural check; every valid line
    # (after it, and in the next file) is delivered, the bad one is reported once.
    if parser == "native":
        from fhir_async import _files

        monkeypatch.setattr(_files, "_orjson_loads", lambda: None)
    # issue 19 §7: the invalid line is no resource, so the count is of the two others.
    result = stub_result(stub, bad=StubFile(LINES, count=2), good=StubFile(GOOD, count=1))
    stream = result.resources(max_per_origin=1)  # one file after the other: the order below
    with pytest.warns(fhir_async.FhirAsyncWarning, match="line 2"):
        got = [r["id"] for r in stream]
    assert got == ["a", "c", "d"]
    bad, good = stream.reports
    assert bad["url"].endswith("/files/bad") and good["url"].endswith("/files/good")
    assert bad["invalidLines"] == 1, bad
    assert bad["firstInvalidLine"] == 2
    assert [i["line"] for i in bad["invalid"]] == [2]
    assert bad["invalid"][0]["message"]
    assert bad["resources"] == 2 and "error" not in bad
    assert good["invalidLines"] == 0


@pytest.mark.parametrize("parser", ["orjson", "native"])
def test_invalid_line_raises_when_asked(stub: Stub, parser: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 10 §1: on_invalid_line="raise" gives the typed InvalidLineError (file, line, message).
    if parser == "native":
        from fhir_async import _files

        monkeypatch.setattr(_files, "_orjson_loads", lambda: None)
    result = stub_result(stub, bad=StubFile(LINES, count=2))
    got: List[str] = []
    with pytest.raises(fhir_async.InvalidLineError) as e:
        for r in result.resources(on_invalid_line="raise"):
            got.append(r["id"])
    assert got == ["a"]
    err = e.value
    assert err.code == "invalid_line" and err.line == 2
    assert err.file is not None and err.file.endswith("/files/bad")
    assert isinstance(err, fhir_async.DownloadError) and isinstance(err, ValueError)
    assert "line 2" in str(err)


def test_read_ndjson_reports_or_raises_invalid_lines(tmp_path: Path) -> None:
    # issue 10 §1: the same choice for local files.
    bad = tmp_path / "bad.ndjson"
    bad.write_bytes(LINES)
    good = tmp_path / "good.ndjson"
    good.write_bytes(GOOD)
    stream = fhir_async.read_ndjson([bad, good])
    with pytest.warns(fhir_async.FhirAsyncWarning, match="bad.ndjson"):
        assert [r["id"] for r in stream] == ["a", "c", "d"]
    first, second = stream.reports
    assert first["path"] == str(bad) and first["invalidLines"] == 1 and first["invalid"][0]["line"] == 2
    assert second["resources"] == 1 and second["invalidLines"] == 0
    with pytest.raises(fhir_async.InvalidLineError) as e:
        list(fhir_async.read_ndjson(bad, on_invalid_line="raise"))
    assert e.value.line == 2 and e.value.file == str(bad)
    with pytest.raises(fhir_async.UsageError):
        fhir_async.read_ndjson(bad, on_invalid_line="ignore")  # type: ignore[arg-type]


def test_download_strict_lines_fail_only_that_file(stub: Stub, tmp_path: Path) -> None:
    # issue 10 §1-2: on disk, lines are kept as sent and counted; "raise" fails that file only.
    result = stub_result(stub, bad=StubFile(b'{"id":"a"}\nnot json\n', count=1), good=StubFile(GOOD, count=1))
    with pytest.warns(fhir_async.FhirAsyncWarning, match="invalid line"):
        paths = result.download(tmp_path / "kept")
    assert len(paths) == 2
    assert paths.reports[0]["invalidLines"] == 1 and paths.reports[0]["invalid"][0]["line"] == 2
    with pytest.warns(fhir_async.FhirAsyncWarning, match="failed"):
        paths = result.download(tmp_path / "strict", on_invalid_line="raise")
    assert [p.name for p in paths] == [paths.reports[1]["fileName"]]
    [failed] = paths.failed
    assert isinstance(failed["error"], fhir_async.InvalidLineError) and failed["error"].line == 2
    assert sorted(p.name for p in (tmp_path / "strict").iterdir()) == [paths[0].name]


# -- §2: one bad file never loses the rest --------------------------------------


def test_count_mismatch_fails_only_that_file(stub: Stub, tmp_path: Path) -> None:
    # issue 10 §2: an output file whose count is wrong is a per-file report naming its kind;
    # every good file is written and renamed into place. (An error file whose count is wrong is
    # kept since issue 19: tests/test_issue19.py.)
    result = stub_result(
        stub,
        short=StubFile(b'{"resourceType":"Patient","id":"a"}\n', count=5),
        good=StubFile(GOOD, count=1),
    )
    with pytest.warns(fhir_async.FhirAsyncWarning, match="1 of 2 files"):
        paths = result.download(tmp_path)
    assert [p.name for p in paths] == [result.files[1]["fileName"]]
    [failed] = paths.failed
    err = failed["error"]
    assert failed["kind"] == "output"
    assert isinstance(err, fhir_async.DownloadError) and err.code == "count_mismatch"
    assert "Patient output file" in str(err) and "5" in str(err)
    assert err.details["expected"] == 5 and err.details["actual"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    assert len(paths.reports) == 2 and result.last_reports[1]["resources"] == 1


def test_lenient_count_check_keeps_the_file_and_says_so(server: Server, tmp_path: Path) -> None:
    # issue 10 §2: count_check="lenient": the file completes; its report notes the mismatch.
    result = client(server.base("/bulk/fhir", "partial;errcount=100")).export(types=["Patient", "Condition"]).wait()
    paths = result.download(tmp_path, count_check="lenient")
    assert len(paths) == 2 and not paths.failed
    report = next(r for r in paths.reports if r["kind"] == "error")
    assert report["countMismatch"] == {"expected": 100, "actual": 1}
    assert any("error file (OperationOutcome)" in w for w in report["warnings"])
    with pytest.raises(fhir_async.UsageError):
        result.download(tmp_path, count_check="loose")  # type: ignore[arg-type]


def test_resource_stream_goes_on_after_a_failed_file(stub: Stub) -> None:
    # issue 10 §2: in a stream, a failed file is reported and the next file is still read.
    result = stub_result(
        stub,
        short=StubFile(b'{"resourceType":"Patient","id":"a"}\n', count=5),
        good=StubFile(GOOD, count=1),
    )
    stream = result.resources(max_per_origin=1)  # one file after the other: the order below
    with pytest.warns(fhir_async.FhirAsyncWarning, match="failed"):
        got = [r["id"] for r in stream]
    assert got == ["a", "d"]
    short, good = stream.reports
    assert short["error"].code == "count_mismatch" and "Patient output file" in str(short["error"])
    assert good["resources"] == 1
    assert sorted(r["id"] for r in result.resources(count_check="lenient")) == ["a", "d"]


def test_downloaded_files_are_a_sequence_built_on_demand(server: Server, tmp_path: Path) -> None:
    # issue 10 §3 (memory): paths and reports are built when asked for, one at a time.
    result = client(server.base("/bulk/fhir")).export(types=["Patient", "Condition", "Observation"]).wait()
    paths = result.download(tmp_path)
    assert isinstance(paths, fhir_async.DownloadedFiles) and len(paths) == 3
    assert paths[-1] == paths[2] and paths[0:2] == [paths[0], paths[1]]
    assert list(paths) == [tmp_path / f["fileName"] for f in result.files]
    assert [r["path"] for r in paths.reports] == list(paths)
    with pytest.raises(IndexError):
        paths[3]


# -- §2: a 429 on the kick-off --------------------------------------------------


def test_export_returns_once_a_429_kickoff_is_accepted(server: Server) -> None:
    # issue 10 §2: export() waits out 429s (Retry-After) and returns with the status URL.
    c = client(server.base("/bulk/fhir", "kick429=2"))
    job = c.export(types=["Patient"], start=False)
    phases: List[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            phases.append(job.progress.phase)
            time.sleep(0.02)

    t = threading.Thread(target=watch)
    t.start()
    start = time.monotonic()
    try:
        job.start()
    finally:
        done.set()
        t.join(5)
    assert job.status_url is not None
    assert 1.5 < time.monotonic() - start < 10, "two Retry-After: 1 waits"
    assert "kickingOff" in phases
    assert job.wait().ok


def test_kickoff_429_that_outlasts_the_retries_raises(server: Server) -> None:
    # issue 10 §2: when the kick-off retries run out, export() raises the typed error.
    c = client(server.base("/bulk/fhir", "kick429=9"), retry={"max_kickoff_retries": 1, "min_wait_ms": 20})
    with pytest.raises(fhir_async.RetriesExhausted) as e:
        c.export(types=["Patient"])
    assert e.value.code == "retries_exhausted"


def test_ctrl_c_during_a_kickoff_429_wait(server: Server) -> None:
    # issue 10 §2: Ctrl-C ends the wait for the kick-off's Retry-After (30 s here) at once.
    c = client(server.base("/bulk/fhir", "kick429ms=1;retry=30"))
    threading.Timer(0.3, _thread.interrupt_main).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        c.export(types=["Patient"])
    assert time.monotonic() - start < 2


# -- §2: User-Agent -------------------------------------------------------------


def test_every_request_says_fhir_async_python(server: Server, tmp_path: Path) -> None:
    # issue 10 §2: `fhir-async/<version> (python)` on kick-off, polls, manifest and files.
    result = client(server.base("/bulk/fhir")).export(types=["Patient"]).wait()
    result.download(tmp_path)
    job_id = result.files[0]["url"].split("/_files/")[1].split("/")[0]
    mine = [q for q in server.stats()["requests"] if q["job"] == job_id]
    assert {q["route"].split(".")[1] for q in mine} >= {"kickoff", "status", "file"}
    want = f"fhir-async/{fhir_async.__version__} (python)"
    assert {q["headers"].get("user-agent") for q in mine} == {want}


# -- §2: 401 messages -----------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong"])
def test_401_without_a_refresh_says_why_and_shows_the_server_text(auth_server: Server, token: Any) -> None:
    # issue 10 §2: no token or a fixed string: the refused token is not sent again,
    # the message says why no refresh happened and carries the server's own words.
    before = auth_server.stats()["routes"].get("bulk.unauthorized", 0)
    with pytest.raises(fhir_async.Unauthorized) as e:
        client(auth_server.base("/bulk/fhir"), token=token).export(types=["Patient"]).wait()
    text = str(e.value)
    assert "even after a token refresh" not in text
    assert ("no token was configured" if token is None else "fixed string") in text
    server_text = "Authorization: Bearer token required" if token is None else "The access token is not valid"
    assert server_text in text and e.value.details.get("serverMessage") == server_text
    assert auth_server.stats()["routes"].get("bulk.unauthorized", 0) - before == 1, "sent once"
    assert token is None or token not in text


def test_file_401_with_a_fixed_token_is_not_retried_with_it(stub: Stub, tmp_path: Path) -> None:
    # issue 10 §2: a file answering 401 to a fixed token fails that file, once, with the server text.
    stub.requires_token = True
    stub.files["p"] = StubFile(outcome("Invalid token jwt malformed"), count=1, status=401,
                               content_type="application/fhir+json")
    result = client(stub.base, token="tok-SECRET-123").export(types=["Patient"]).wait()
    with pytest.warns(fhir_async.FhirAsyncWarning):
        paths = result.download(tmp_path)
    [failed] = paths.failed
    err = failed["error"]
    assert err.code == "unauthorized" and "Invalid token jwt malformed" in str(err)
    assert "fixed string" in str(err) and "tok-SECRET-123" not in str(err) + repr(err.details)
    assert sum(1 for path, _ in stub.requests if path == "/files/p") == 1


# -- §2: the server's words in file errors --------------------------------------


def test_410_after_the_manifest_refresh_shows_the_server_text(stub: Stub, tmp_path: Path) -> None:
    # issue 10 §2: the manifest was re-fetched once, the file still answers 410: say both.
    stub.files["p"] = StubFile(outcome("Export files were purged"), count=1, status=410,
                               content_type="application/fhir+json")
    result = client(stub.base).export(types=["Patient"]).wait()
    with pytest.warns(fhir_async.FhirAsyncWarning, match="purged"):
        paths = result.download(tmp_path)
    err = paths.failed[0]["error"]
    assert err.code == "http" and err.details["status"] == 410
    assert err.details["manifestRefreshed"] is True and "re-fetched" in str(err)
    assert "Export files were purged" in str(err) and err.details["serverMessage"] == "Export files were purged"
    assert stub.manifests == 2


def test_http_error_body_text_is_bounded(stub: Stub, tmp_path: Path) -> None:
    # issue 10 §2: at most 64 KiB of an error body is read; plain text works too.
    stub.files["p"] = StubFile(b"Bad Request: the export has no such file " + b"x" * 200_000, count=1,
                               status=400, content_type="text/plain")
    result = client(stub.base).export(types=["Patient"]).wait()
    with pytest.warns(fhir_async.FhirAsyncWarning):
        paths = result.download(tmp_path)
    err = paths.failed[0]["error"]
    assert err.details["status"] == 400
    assert "Bad Request: the export has no such file" in str(err) and len(str(err)) < 70_000

