"""End to end against the reference server: every dialect, cancel, resume,
redirects, faults with nothing lost, token rules, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

import fhir_async
from conftest import Server, client, ids, read_ndjson

TYPES = ["Patient", "Condition", "Observation"]

DIALECTS = {
    "bulk": "/bulk/fhir",
    "healthconnect": "/healthconnect/fhir",
    "oracle": "/oracle/r4/tenant1",
    "medplum": "/medplum/fhir/R4",
    "aidbox": "/aidbox/fhir",
    "r5": "/r5/fhir",
}


@pytest.fixture(scope="module")
def reference(server: Server) -> List[str]:
    """The ids a clean bulk export of TYPES yields (the generated data)."""
    result = client(server.base("/bulk/fhir")).export(types=TYPES).wait(raise_on_failure=True)
    return ids(list(result.resources()))


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_export_every_dialect(server: Server, dialect: str, tmp_path: Path, reference: List[str]) -> None:
    job = client(server.base(DIALECTS[dialect], "retry=0")).export(types=TYPES)
    assert job.status_url is not None
    result = job.wait(raise_on_failure=True)
    assert result.ok, result
    streamed = list(result.resources())
    paths = result.download(tmp_path / "out", concurrency=4, kinds=["output"])
    on_disk = read_ndjson(paths)
    assert ids(streamed) == reference
    assert ids(on_disk) == reference
    for report in result.last_reports:
        # A real Medplum lists its Binary outputs without a count.
        assert report["expected"] in (None, report["resources"])
        assert Path(report["path"]).parent == tmp_path / "out"
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_aidbox_bundle_mode(server: Server) -> None:
    r = client(server.base("/aidbox/fhir")).kickoff("POST", "$reindex", async_mode="bundle").wait()
    assert r.status == "completed" and r.body["kind"] == "bundle"


def test_aidbox_redirect_mode(server: Server) -> None:
    job = client(server.base("/aidbox/fhir")).kickoff(
        "GET", "Patient?name=smi&_count=2", async_mode="redirect"
    )
    r = job.wait(raise_on_failure=True)
    assert r.outcome["delivery"] == "redirect"
    assert r.body["kind"] == "bundle"
    assert r.body["bundle"]["resourceType"] == "Bundle"


def test_aidbox_failure_is_an_outcome(server: Server) -> None:
    r = client(server.base("/aidbox/fhir", "fail")).kickoff("POST", "$reindex").wait()
    assert r.status == "failed"
    with pytest.raises(fhir_async.JobFailed) as e:
        r.raise_for_status()
    assert e.value.code == "job_failed"
    assert e.value.outcome["status"] == "failed"


def test_r5_async_search_bundle(server: Server) -> None:
    r = client(server.base("/r5/fhir")).kickoff("GET", "Observation?category=laboratory&_count=3").wait()
    assert r.status == "completed"
    assert r.body["kind"] == "bundle"
    assert r.body["bundle"]["type"] == "batch-response"


def test_medplum_reindex_asyncjob(server: Server) -> None:
    r = client(server.base("/medplum/fhir/R4")).kickoff(
        "POST", "$reindex", body={"resourceType": "Parameters"}
    ).wait(raise_on_failure=True)
    assert r.body["kind"] == "asyncJob"
    assert r.body["jobStatus"] == "completed"


def test_failed_export_raises_on_request(server: Server) -> None:
    job = client(server.base("/bulk/fhir", "fail")).export(types=["Patient"])
    with pytest.raises(fhir_async.JobFailed) as e:
        job.wait(raise_on_failure=True)
    assert e.value.outcome["status"] == "failed"
    assert isinstance(e.value, fhir_async.FhirAsyncError)


def test_partial_failure_is_completed_with_errors(server: Server, tmp_path: Path) -> None:
    r = client(server.base("/bulk/fhir", "partial")).export(types=TYPES).wait()
    assert r.status == "completedWithErrors"
    assert any(f["kind"] == "error" for f in r.files)
    paths = r.download(tmp_path)
    assert len(paths) == len(r.files)


def test_cancel_running_job(server: Server) -> None:
    job = client(server.base("/bulk/fhir", "never;retry=5")).export(types=["Patient"])
    p = job.progress
    assert p.phase == "polling" and p.polls == 0 and p.status_url == job.status_url
    assert p.next_poll_at_ms is not None and p.next_poll_in_ms is not None and 0 < p.next_poll_in_ms <= 5000
    res = job.cancel()
    assert res is not None and res["kind"] == "cancelled"
    assert job.result().status == "cancelled"
    with pytest.raises(fhir_async.Cancelled):
        job.result().raise_for_status()


def test_cancel_medplum(server: Server) -> None:
    job = client(server.base("/medplum/fhir/R4", "never")).export(types=["Patient"])
    res = job.cancel()
    assert res is not None and res["kind"] == "cancelled"


def test_resume_in_a_new_client(server: Server, reference: List[str]) -> None:
    job = client(server.base("/bulk/fhir", "ms=400")).export(types=TYPES)
    state = job.to_json()
    again = client(server.base("/bulk/fhir")).resume(state)
    assert again.status_url == job.status_url
    r = again.wait(raise_on_failure=True)
    assert ids(list(r.resources())) == reference


@pytest.mark.parametrize(
    "faults",
    ["e500=2", "e503html=2", "e429=2", "e429date=3", "reset", "gzbad", "gzcorrupt", "reset;gzbad;e500=3", "reset;gzcorrupt", "relative", "noloc", "ooloc", "kick429=1", "retry-date;retry=0", "expire", "storage"],
)
def test_faults_lose_nothing(server: Server, faults: str, tmp_path: Path, reference: List[str]) -> None:
    result = client(server.base("/bulk/fhir", faults)).export(types=TYPES).wait(raise_on_failure=True)
    assert ids(list(result.resources())) == reference
    paths = result.download(tmp_path, concurrency=3)
    assert ids(read_ndjson(paths)) == reference
    assert not list(tmp_path.glob("*.tmp"))


def test_split_files_and_paging(tmp_path: Path) -> None:
    from conftest import start_server, stop_server

    s = start_server("--job-ms", "100", "--retry-after", "0", "--patients", "30", "--file-resources", "17", "--page-size", "2")
    try:
        r = client(s.base("/bulk/fhir")).export(types=TYPES, allow_partial_manifests=True).wait(raise_on_failure=True)
        assert len(r.files) > 3
        paths = r.download(tmp_path, concurrency=8)
        assert len(paths) == len(r.files)
        assert len({p.name for p in paths}) == len(paths)
        assert len(read_ndjson(paths)) == sum(f["expectedCount"] for f in r.files)
    finally:
        stop_server(s)


def test_token_never_reaches_storage(auth_server: Server, tmp_path: Path) -> None:
    before = auth_server.stats()["storage_requests_with_authorization"]
    # The seeds' Medplum form hands out presigned storage URLs on another origin.
    c = client(auth_server.base("/medplum-doc/fhir/R4"), token="secret-token")
    job = c.export(types=["Patient", "Condition"])
    assert "secret-token" not in job.to_json()
    r = job.wait(raise_on_failure=True)
    assert all(f["url"].startswith(auth_server.storage) and not f["sendToken"] for f in r.files)
    paths = r.download(tmp_path)
    assert len(read_ndjson(paths)) == sum(f["expectedCount"] for f in r.files)
    assert len(list(r.resources())) == sum(f["expectedCount"] for f in r.files)
    stats = auth_server.stats()
    assert stats["storage_requests_with_authorization"] == before
    storage_hits = [q for q in stats["requests"] if q["origin"] == "storage"]
    assert storage_hits, "the files were expected on the storage origin"


def test_token_protected_file_on_foreign_origin_is_blocked(auth_server: Server, tmp_path: Path) -> None:
    c = client(auth_server.base("/bulk/fhir", "storage"), token="secret-token")
    r = c.export(types=["Patient"]).wait(raise_on_failure=True)
    assert r.files[0]["blocked"]
    # issue 10 §2: a blocked file is a report entry with its typed error, not a failed download().
    with pytest.warns(fhir_async.FhirAsyncWarning, match="failed"):
        paths = r.download(tmp_path)
    assert len(paths) == 0
    [failed] = paths.failed
    assert isinstance(failed["error"], fhir_async.DownloadError)
    assert failed["error"].code == "blocked"
    assert not list(tmp_path.glob("*"))


def test_token_callable_is_asked_again_on_401(auth_server: Server) -> None:
    tokens = iter(["stale", "secret-token", "secret-token"])
    calls: List[str] = []

    def token() -> str:
        calls.append("x")
        return next(tokens)

    r = client(auth_server.base("/bulk/fhir"), token=token).export(types=["Patient"]).wait()
    assert r.ok
    assert len(calls) == 2
    assert len(list(r.resources())) == 20


def test_wrong_fixed_token_is_unauthorized(auth_server: Server) -> None:
    with pytest.raises(fhir_async.Unauthorized) as e:
        client(auth_server.base("/bulk/fhir"), token="wrong").export(types=["Patient"]).wait()
    assert e.value.code == "unauthorized"


def test_usage_errors_are_value_errors(server: Server) -> None:
    with pytest.raises(fhir_async.UsageError) as e:
        client("not a url").export(types=["Patient"])
    assert isinstance(e.value, ValueError)
    assert e.value.code == "usage"
    with pytest.raises(ValueError):
        client(server.base("/bulk/fhir"), retry={"bogus": 1})
    with pytest.raises(fhir_async.UsageError):
        client(server.base("/bulk/fhir")).export(types=["Patient"], start=False).result()


def test_job_deadline_is_a_timeout_error(server: Server) -> None:
    job = client(server.base("/bulk/fhir", "never"), timeout=0.3).export(types=["Patient"])
    with pytest.raises(fhir_async.DeadlineExceeded) as e:
        job.wait()
    assert isinstance(e.value, TimeoutError)
    assert e.value.code == "deadline_exceeded"


def test_wait_timeout_leaves_the_job_running(server: Server) -> None:
    job = client(server.base("/bulk/fhir", "ms=600")).export(types=["Patient"])
    with pytest.raises(TimeoutError):
        job.wait(timeout=0.05)
    assert job.wait().ok


def test_connection_refused_exhausts_retries() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = client(f"http://127.0.0.1:{port}/fhir", retry={"min_wait_ms": 5, "initial_backoff_ms": 5, "max_kickoff_retries": 1})
    with pytest.raises(fhir_async.FhirAsyncError) as e:
        c.export(types=["Patient"]).wait()
    assert e.value.code == "retries_exhausted"


def test_reprs_show_state(server: Server) -> None:
    c = client(server.base("/bulk/fhir"))
    job = c.export(types=["Patient"])
    assert "polling" in repr(job) and "status_url=" in repr(job)
    r = job.wait()
    assert repr(r) == "<Result completed http=200 files=1>"
    assert "phase=done" in repr(job.native)
    assert "Client(" in repr(c)


def test_low_level_plan_names_stay_inside(server: Server, tmp_path: Path) -> None:
    """A manifest with a hostile type: the plan's file name is sanitized and
    the download lands inside the target directory."""
    base = server.base("/bulk/fhir")
    good = client(base).export(types=["Patient"]).wait()
    url = good.files[0]["url"]
    job = fhir_async._native.Job(
        json.dumps({"baseUrl": base, "operation": {"type": "export", "types": ["Patient"]}, "retry": {"minWaitMs": 1}})
    )
    a = job.next_action(fhir_async._native.now_ms())
    job.handle_response(a["request"]["id"], 202, [("Content-Location", base + "/status/x")], b"", fhir_async._native.now_ms())
    a = job.next_action(fhir_async._native.now_ms() + 10_000)
    manifest: Dict[str, Any] = {
        "transactionTime": "2026-01-01T00:00:00Z",
        "request": base + "/$export",
        "requiresAccessToken": False,
        "output": [{"type": "../../evil/Patient", "url": url, "count": 50}],
        "error": [],
    }
    job.handle_response(a["request"]["id"], 200, [("Content-Type", "application/json")], json.dumps(manifest), fhir_async._native.now_ms())
    name = job.download_plan()[0]["fileName"]
    assert "/" not in name and ".." not in name
    # A job driven by hand is resumed by the native client, which downloads it.
    (tmp_path / "d").mkdir()
    paths = client(base).resume(job.to_json()).result().download(tmp_path / "d", max_per_origin=2)
    assert [Path(r["path"]).parent for r in paths.reports] == [tmp_path / "d"]
    assert not (tmp_path / "evil").exists()
