"""Issue 19, "nothing lost, nothing mixed": the rare but legal paths of a
download, from Python, against the reference server's faults (protocol K1,
K5-K10). One test per case of the issue that concerns Python, named for it:
every resource arrives exactly once and unmixed, or its file fails with a
typed error."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import urllib.parse
import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set

import pytest

import fhir_async
from conftest import FAST, Server, client, ids, read_ndjson, start_server, stop_server

TYPES = ["Patient", "Observation"]


@pytest.fixture(scope="module")
def files_server() -> Iterator[Server]:
    # Several files per type (150 lines each), so a refreshed manifest can list them in another order.
    s = start_server("--job-ms", "100", "--retry-after", "0", "--patients", "300", "--file-resources", "150")
    yield s
    stop_server(s)


def export(server: Server, faults: str, types: List[str] = TYPES, **kw: Any) -> fhir_async.Result:
    return client(server.base("/bulk/fhir", faults), **kw).export(types=types).wait(raise_on_failure=True)


def clean_ids(server: Server, types: List[str] = TYPES) -> List[str]:
    return ids(list(export(server, "", types).resources()))


def one_type_per_file(paths: List[Path]) -> None:
    for p in paths:
        kinds = {r["resourceType"] for r in read_ndjson([p])}
        assert kinds == {p.name.split(".")[0]}, (p.name, kinds)


# -- 1. a refreshed manifest lists the same files in another order ---------------------------


def test_refreshed_manifest_in_another_order_mid_file(files_server: Server, tmp_path: Path) -> None:
    # issue 19 §1, protocol K6: the first links serve one request (cut mid-file), the refreshed
    # manifest lists the files reversed and without counts: each file is matched by what it is,
    # never by position, so no file is continued with another file's bytes.
    want = clean_ids(files_server)
    faults = "reorder;expireafter;cut=4000"
    result = export(files_server, faults)
    assert all("count" not in f for f in result.manifest["output"])  # type: ignore[index]
    assert len(result.files) >= 4
    files_server.reset()
    paths = result.download(tmp_path)
    assert not paths.failed, paths.failed
    stats = files_server.stats()
    assert stats["files"]["cut"] > 0, "bodies were cut mid-file"
    assert any(r["route"] == "bulk.status" for r in stats["requests"]), "the manifest was refreshed"
    assert ids(read_ndjson(list(paths))) == want, "every resource exactly once"
    one_type_per_file(list(paths))
    assert sum(r["resources"] for r in paths.reports) == len(want)

    # The same through a stream (a fresh job: its first links serve one request again).
    result = export(files_server, faults)
    stream = result.resources()
    got = list(stream)
    assert ids(got) == want, "every resource exactly once"
    assert not any("error" in r for r in stream.reports), stream.reports
    assert Counter(r["resourceType"] for r in got) == Counter(w.split("/")[0] for w in want)
    # Each file's report: its own type's resources, as many as the clean export's file holds.
    clean = {f["fileName"]: f["expectedCount"] for f in export(files_server, "").files}
    assert sorted((r["fileName"], r["resources"]) for r in stream.reports) == sorted(clean.items())


# -- 2. a ranged retry is answered 200 with a new ETag ---------------------------------------


def second_version(lines: List[Dict[str, Any]]) -> List[str]:
    """The reference server's second version of a file (`changeafter`): resources `{Type}-{k}`
    with k % 3 == 2 left out, `meta.versionId` "2"."""
    return [f"{r['resourceType']}/{r['id']}" for r in lines if int(r["id"].rsplit("-", 1)[1]) % 3 != 2]


def changed_files(server: Server, result: fhir_async.Result) -> Set[str]:
    """The files the reference server switched to their second version (`changeafter`)."""
    job = urllib.parse.parse_qs(urllib.parse.urlsplit(result.job.status_url or "").query)["_jobId"][0]
    changed: List[str] = server.stats()["jobs"][job].get("changed", [])
    return set(changed)


def test_file_changed_after_a_cut(files_server: Server, tmp_path: Path) -> None:
    # issue 19 §2, protocol K1/K7: a continuation answered 200 with another version. The folder
    # holds exactly one version of each file (the new one, whole); a stream that already handed
    # out lines of the old one fails that file with FileChangedError and mixes nothing.
    faults = "changeafter;cut=4000"  # gzip bytes: every file is cut, so continued, so changed
    clean_files = export(files_server, "", ["Patient"]).download(tmp_path / "clean")
    result = export(files_server, faults, ["Patient"])
    paths = result.download(tmp_path / "changed")
    assert not paths.failed, paths.failed
    assert [p.name for p in paths] == [p.name for p in clean_files]
    changed = changed_files(files_server, result)
    assert len(changed) == len(paths) >= 2, changed
    for old, new in zip(clean_files, paths):
        lines = read_ndjson([new])
        versions = {r["meta"]["versionId"] for r in lines}
        assert versions == {"2"}, (new.name, versions)
        want = second_version(read_ndjson([old]))
        assert [f"{r['resourceType']}/{r['id']}" for r in lines] == want, new.name
    assert [r["resources"] for r in paths.reports] == [len(read_ndjson([p])) for p in paths]

    result = export(files_server, faults, ["Patient"])
    stream = result.resources()
    with pytest.warns(fhir_async.FhirAsyncWarning, match="changed"):
        got = list(stream)
    assert got, "lines of the first version were handed out before the change"
    assert {r["meta"]["versionId"] for r in got} == {"1"}, "nothing of the second version mixed in"
    assert len(ids(got)) == len(set(ids(got)))
    assert len(changed_files(files_server, result)) == len(stream.reports)
    for r in stream.reports:
        err = r["error"]
        assert isinstance(err, fhir_async.FileChangedError) and isinstance(err, fhir_async.DownloadError)
        assert err.code == "file_changed" and err.details["taken"] > 0, err.details
    assert len(got) == sum(r["error"].details["taken"] for r in stream.reports)


# -- 3. the manifest refresh fails ----------------------------------------------------------


def test_refresh_failure_keeps_the_job(files_server: Server, tmp_path: Path) -> None:
    # issue 19 §3, protocol K8: the refresh the expired links need answers 500 until the retries
    # run out: the job keeps its result, the files fail with the refresh's cause, and once the
    # server recovered a second download (of the saved state too) completes without a kick-off.
    retry = dict(FAST, max_retries=2)
    c = client(files_server.base("/bulk/fhir", "refresh500=4;expire"), retry=retry)
    job = c.export(types=["Patient"])
    result = job.wait(raise_on_failure=True)
    with pytest.warns(fhir_async.FhirAsyncWarning):
        paths = result.download(tmp_path)
    assert len(paths) == 0 and paths.failed
    for f in paths.failed:
        err = f["error"]
        assert isinstance(err, fhir_async.RefreshFailedError) and err.code == "refresh_failed", err
        cause = err.details["cause"]
        assert "500" in cause and cause in str(err), err  # the refresh's cause, in the file's error
    assert job.result().status == "completed" and job.result().ok, "the job keeps its result"
    state = job.to_json()
    kickoffs = files_server.stats()["routes"].get("bulk.kickoff", 0)
    again = c.resume(state).result()
    assert again.status == "completed"
    paths = again.download(tmp_path)
    assert not paths.failed and len(paths) == len(result.files)
    assert files_server.stats()["routes"].get("bulk.kickoff", 0) == kickoffs, "no new kick-off"
    assert ids(read_ndjson(list(paths))) == clean_ids(files_server, ["Patient"])


# -- 4. the refresh answers 202 for ever ---------------------------------------------------


def test_refresh_answering_202_for_ever_ends_at_the_deadline(files_server: Server, tmp_path: Path) -> None:
    # issue 19 §4, protocol K8: the job's deadline (Client(timeout=...)) covers the refresh: the
    # download ends by it, its files fail with the deadline as the refresh's cause, the job keeps
    # its result.
    c = client(files_server.base("/bulk/fhir", "refresh202;expire"), timeout=3)
    result = c.export(types=["Patient"]).wait(raise_on_failure=True)
    start = time.monotonic()
    with pytest.warns(fhir_async.FhirAsyncWarning, match="deadline"):
        paths = result.download(tmp_path)
    assert time.monotonic() - start < 10, "the download ended by the job's deadline"
    assert len(paths) == 0 and paths.failed
    for f in paths.failed:
        assert isinstance(f["error"], fhir_async.RefreshFailedError) and "deadline" in f["error"].details["cause"]
    assert result.job.result().status == "completed"
    # A resumed run's deadline is the resuming client's timeout, not the first run's (long past).
    state = result.job.to_json()
    assert json.loads(c.resume(state).to_json())["deadlineMs"] > json.loads(state)["deadlineMs"]
    assert json.loads(client(c.base_url, timeout=None).resume(state).to_json())["deadlineMs"] is None
    files_server.reset()
    again = client(c.base_url, timeout=1).resume(state).result()
    start = time.monotonic()
    with pytest.warns(fhir_async.FhirAsyncWarning, match="deadline"):
        assert len(again.download(tmp_path)) == 0
    assert time.monotonic() - start < 10
    assert any(r["route"] == "bulk.status" for r in files_server.stats()["requests"]), "the refresh was tried again"


# -- 5. a status answer of 1 GiB ------------------------------------------------------------

HUGE = textwrap.dedent(
    """
    import json, resource, sys
    import fhir_async
    base, ceiling = sys.argv[1], int(sys.argv[2])
    retry = {"min_wait_ms": 20, "initial_backoff_ms": 20, "max_backoff_ms": 200}
    if ceiling:
        retry["max_response_bytes"] = ceiling
    c = fhir_async.Client(base, retry=retry, timeout=120)
    try:
        c.export(types=["Patient"]).wait()
        out = {"raised": None}
    except fhir_async.FhirAsyncError as e:
        out = {"raised": type(e).__name__, "code": e.code, "details": e.details, "message": str(e)}
    out["max_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(out))
    """
)


def run_huge(server: Server, ceiling: int) -> Dict[str, Any]:
    base = server.base("/bulk/fhir", f"hugestatus={1 << 30}")
    done = subprocess.run(
        [sys.executable, "-c", HUGE, base, str(ceiling)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out: Dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def test_huge_status_answer_is_a_typed_error_in_bounded_memory(server: Server) -> None:
    # issue 19 §5, protocol K9: a 1 GiB status answer ends in ResponseTooLargeError; memory stays
    # bounded by the ceiling (its own process, so the peak RSS is this call's).
    out = run_huge(server, 0)  # the default ceiling (256 MiB)
    assert (out["raised"], out["code"]) == ("ResponseTooLargeError", "response_too_large"), out
    assert out["details"]["limit"] == 256 << 20, out["details"]
    assert out["max_rss_kib"] < 600 * 1024, f"peak RSS {out['max_rss_kib'] // 1024} MiB"
    small = run_huge(server, 1 << 20)  # the ceiling is an option
    assert (small["raised"], small["details"]["limit"]) == ("ResponseTooLargeError", 1 << 20), small
    assert small["max_rss_kib"] < out["max_rss_kib"], (small["max_rss_kib"], out["max_rss_kib"])
    print(f"\nhugestatus=1GiB: peak RSS {out['max_rss_kib'] // 1024} MiB (ceiling 256 MiB), "
          f"{small['max_rss_kib'] // 1024} MiB (ceiling 1 MiB)")


def test_line_ceiling_is_an_option(server: Server, tmp_path: Path) -> None:
    # protocol K9: the NDJSON line's ceiling is an option of download() and resources(); past it
    # the file fails (line_too_long) and memory stays bounded by it.
    result = export(server, "", ["Patient"])
    with pytest.warns(fhir_async.FhirAsyncWarning, match="failed"):
        paths = result.download(tmp_path, max_line=100)
    [failed] = paths.failed
    assert failed["error"].code == "line_too_long", failed["error"]
    stream = result.resources(max_line=100)
    with pytest.warns(fhir_async.FhirAsyncWarning, match="failed"):
        assert list(stream) == []
    assert stream.reports[0]["error"].code == "line_too_long"
    assert len(result.download(tmp_path / "default")) == 1, "the default ceiling (64 MiB) takes the file"
    with pytest.raises(fhir_async.UsageError):
        result.download(tmp_path, max_line=0)


# -- 6. a signed file URL that fails --------------------------------------------------------


def signatures(result: fhir_async.Result) -> Set[str]:
    found = set()
    for f in result.files:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(f["url"]).query)
        found.update(query.get("X-Amz-Signature", []))
    return found


def test_signed_url_never_shown(server: Server, tmp_path: Path) -> None:
    # issue 19 §6, protocol K10: a signed file URL that fails is named without its query in every
    # warning, exception message, repr and file of the folder.
    result = export(server, "signedfail", ["Patient", "Condition"], retry=dict(FAST, max_download_retries=1))
    sigs = signatures(result)
    assert sigs and all(len(s) == 64 for s in sigs)
    shown: List[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = result.download(tmp_path)
        stream = result.resources()
        assert list(stream) == []
        reports = list(paths.reports) + stream.reports
    assert caught, "the failures were warned about"
    shown += [str(w.message) for w in caught]
    assert len(paths.failed) == len(result.files)
    for r in reports:
        err = r["error"]
        assert isinstance(err, fhir_async.DownloadError)
        shown += [str(err), repr(err), *map(str, err.args)]
    shown += [repr(result), repr(paths), repr(paths.reports), repr(stream), repr(result.job)]
    for p in tmp_path.rglob("*"):
        if p.is_file():
            shown.append(p.read_text(errors="replace"))
    text = "\n".join(shown)
    for s in sigs:
        assert s not in text, "a signature was shown"
    assert "AKIAFHIRASYNCTEST019" not in text and "X-Amz-" not in text, "the query was shown"
    assert all(f["fileName"] in text for f in result.files), "each failed file is still named"

    # An invalid line of a signed file: the InvalidLineError (message, details, repr) and the
    # warnings name the file without its query too, in a stream and in a folder download.
    result = export(server, "signed;junklines", ["Patient"])
    sigs = signatures(result)
    shown = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(fhir_async.InvalidLineError) as e:
            list(result.resources(on_invalid_line="raise", count_check="lenient"))
        paths = result.download(tmp_path / "junk", on_invalid_line="raise", count_check="lenient")
        list(result.resources(count_check="lenient"))
    [failed] = paths.failed
    for err in (e.value, failed["error"]):
        assert isinstance(err, fhir_async.InvalidLineError) and err.line == 1
        shown += [str(err), repr(err), json.dumps(err.details), str(err.file)]
    shown += [str(w.message) for w in caught]
    text = "\n".join(shown)
    assert sigs and not any(s in text for s in sigs) and "X-Amz-" not in text, text


# -- 7. lines that are not JSON, counted as resources ---------------------------------------


def test_lines_that_are_not_json_are_not_resources(server: Server, tmp_path: Path) -> None:
    # issue 19 §7: a file of `hello`, `{not json}` and one Patient (count 3) holds one resource and
    # two invalid lines, in the folder download's report and in the stream; so the count (3) no
    # longer passes: with the strict check the file fails, with the lenient one it is kept.
    body = b'hello\n{not json}\n{"resourceType":"Patient","id":"junk-1"}\n'
    result = export(server, "junklines", ["Patient"])
    with pytest.warns(fhir_async.FhirAsyncWarning, match="count"):
        paths = result.download(tmp_path / "strict")
    [failed] = paths.failed
    err = failed["error"]
    assert err.code == "count_mismatch" and (err.details["expected"], err.details["actual"]) == (3, 1), err.details
    with pytest.warns(fhir_async.FhirAsyncWarning, match="invalid"):
        paths = result.download(tmp_path / "lenient", count_check="lenient")
    [report] = paths.reports
    assert (report["resources"], report["invalidLines"]) == (1, 2), report
    assert [i["line"] for i in report["invalid"]] == [1, 2]
    assert paths[0].read_bytes() == body, "lines are written as the server sent them"
    for count_check in ("strict", "lenient"):
        stream = result.resources(count_check=count_check)  # type: ignore[arg-type]
        with pytest.warns(fhir_async.FhirAsyncWarning):
            got = list(stream)
        assert got == [{"resourceType": "Patient", "id": "junk-1"}], count_check
    [sreport] = stream.reports
    assert (sreport["resources"], sreport["invalidLines"]) == (1, 2), sreport


# -- reading: an error file whose count does not match its lines ----------------------------


def test_error_file_lines_are_kept_when_their_count_is_wrong(server: Server, tmp_path: Path) -> None:
    # issue 19 (reading): a server listed error files whose count (100) did not match their one
    # line. An error file is evidence: its lines are kept, the mismatch is a warning.
    result = export(server, "partial;errcount=100", ["Patient", "Condition"])
    [error_file] = [f for f in result.files if f["kind"] == "error"]
    assert error_file["expectedCount"] == 100
    paths = result.download(tmp_path)
    assert not paths.failed, paths.failed
    report = next(r for r in paths.reports if r["kind"] == "error")
    assert report["resources"] == 1 and report["countMismatch"] == {"expected": 100, "actual": 1}, report
    assert report["warnings"], report
    [outcome] = read_ndjson([Path(report["path"])])
    assert outcome["resourceType"] == "OperationOutcome"
    stream = result.resources(kinds=("error",))
    got = list(stream)
    assert [r["resourceType"] for r in got] == ["OperationOutcome"]
    assert not any("error" in r for r in stream.reports), stream.reports
