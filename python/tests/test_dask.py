"""Issue 15, past one machine: fhir_async.dask turns a finished export's
files into tasks; each worker resumes the job from its token-free state and
downloads its one file with the engine's per-file rules. The cluster is a
LocalCluster of two worker processes against the reference server, with
faults (cut bodies continued by range, a per-job connection limit answered
429, error files whose manifest count is wrong)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

import fhir_async
import fhir_async.dask as fd
from conftest import FAST, ROOT, Server, client, ids, start_server, stop_server

pytest.importorskip("distributed")

TOKEN = "dask-secret-token"
# cut: every (gzip) body is aborted each 1,000 bytes (continued with Range);
# conn=1: a second file of the job in flight is answered 429 (retried after Retry-After);
# partial;errcount=100: every second type fails, its error file claims 100 lines;
# expire: the manifest's first links answer 410 until the status URL is polled again.
FAULTS = "cut=1000;conn=1;partial;errcount=100;expire"
TYPES = ["Patient", "Observation", "Condition", "Encounter"]


@pytest.fixture(scope="module")
def files_server() -> Iterator[Server]:
    # Several files per type, so the two workers share every type's files.
    s = start_server("--job-ms", "100", "--retry-after", "0", "--patients", "40", "--file-resources", "15", "--token", TOKEN)
    yield s
    stop_server(s)


@pytest.fixture(scope="module")
def token_env() -> Iterator[fd.EnvToken]:
    # Worker processes inherit the environment: the token is read there, never pickled.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FHIR_ASYNC_TEST_TOKEN", TOKEN)
        yield fd.EnvToken("FHIR_ASYNC_TEST_TOKEN")


@pytest.fixture(scope="module")
def cluster(token_env: fd.EnvToken) -> Iterator[Any]:
    from distributed import Client as DaskClient, LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as lc, DaskClient(lc) as dc:
        yield dc


def export(server: Server, token: Any, faults: str = FAULTS) -> fhir_async.Result:
    c = client(server.base("/bulk/fhir", faults), token=token)
    return c.export(types=TYPES).wait()


def ndjson_ids(paths: List[str]) -> List[str]:
    out: List[Dict[str, Any]] = []
    for p in paths:
        with open(p, "rb") as f:
            out.extend(json.loads(line) for line in f if line.strip())
    return ids(out)


def test_download_selects_files_by_name(server: Server, tmp_path: Path) -> None:
    # issue 15: one file of the plan, chosen by fileName (the core's skip_files leaves the rest out).
    result = client(server.base("/bulk/fhir")).export(types=["Patient", "Condition"]).wait()
    name = result.files[1]["fileName"]
    paths = result.download(tmp_path, files=[name])
    assert [p.name for p in paths] == [name] and len(paths.reports) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    with pytest.raises(fhir_async.UsageError, match="no file"):
        result.download(tmp_path, files=["nope.ndjson"])
    with pytest.raises(fhir_async.UsageError):
        result.download(tmp_path, files=name)  # type: ignore[arg-type]


def test_no_token_string_travels_in_a_task(server: Server, token_env: fd.EnvToken, tmp_path: Path) -> None:
    # issue 15: a worker gets the auth configuration, never a token.
    result = client(server.base("/bulk/fhir"), token="a-token-string").export(types=["Patient"]).wait()
    with pytest.raises(fhir_async.UsageError, match="no token string"):
        fd.file_tasks(result, tmp_path)
    secret = "captured-token"
    closure = client(server.base("/bulk/fhir"), token=lambda: secret).export(types=["Patient"]).wait()
    with pytest.raises(fhir_async.UsageError, match="picklable by name"):
        fd.file_tasks(closure, tmp_path)  # cloudpickle would copy the captured string into every task
    result = client(server.base("/bulk/fhir"), token=token_env).export(types=["Patient"]).wait()
    tasks = fd.file_tasks(result, tmp_path)
    assert len(tasks) == len(result.files) and tasks[0].spec.token == token_env
    blob = pickle.dumps(tasks)
    assert TOKEN.encode() not in blob and TOKEN not in repr(tasks)
    with pytest.raises(fhir_async.UsageError, match="format"):
        fd.file_tasks(result, tmp_path, format="csv")  # type: ignore[arg-type]


def test_in_process_scheduler_downloads_every_file(server: Server, tmp_path: Path, token_env: fd.EnvToken) -> None:
    # Without a distributed client the tasks run on dask's threads in this process.
    import dask

    result = client(server.base("/bulk/fhir", "cut=1000")).export(types=["Patient", "Condition"]).wait()
    with dask.config.set(scheduler="threads"):
        report = fd.download(result, tmp_path / "out")
    assert not report.failed and len(report.files) == len(result.files)
    assert ndjson_ids(report.paths) == ids(list(result.resources()))
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")], "no scratch folder left"


def test_local_cluster_every_resource_exactly_once(
    files_server: Server, cluster: Any, token_env: fd.EnvToken, tmp_path: Path
) -> None:
    # issue 15: two worker processes, faults injected; every resource once, every file reported.
    result = export(files_server, token_env)
    plan = result.files
    outputs = [f for f in plan if f["kind"] == "output"]
    errors = [f for f in plan if f["kind"] == "error"]
    assert len(outputs) >= 6 and errors
    files_server.reset()
    report = fd.download(result, tmp_path / "export", client=cluster)
    stats = files_server.stats()
    served = stats["files"]
    # The faults fired: bodies were cut and continued with ranges (not restarted).
    assert served["cut"] > 0 and served["206"] >= served["cut"], served
    # expire: each task met the expired link (410) and refreshed its own copy of the manifest once.
    expired = [r for r in stats["requests"] if r["route"] == "bulk.file" and r["status"] == 410]
    refreshed = [r for r in stats["requests"] if r["route"] == "bulk.status"]
    assert len(expired) == len(refreshed) == len(plan), (len(expired), len(refreshed))
    assert [f.file_name for f in report.files] == [f["fileName"] for f in plan]
    assert len({f.worker for f in report.files}) == 2, "both workers took files"
    # The error file's manifest count (errcount=100) is wrong: it fails alone, the others are kept.
    assert [f.file_name for f in report.failed] == [f["fileName"] for f in errors], [f.error for f in report.failed]
    assert all(f.code == "count_mismatch" and f.path is None for f in report.failed)
    for f, planned in zip(report.files, plan):
        if f.kind == "output":
            assert f.ok and f.resources == planned["expectedCount"] and f.bytes == f.written_bytes > 0
            assert Path(f.path or "").name == planned["fileName"]
    got = ndjson_ids([f.path for f in report.files if f.kind == "output" and f.path])
    assert len(got) == len(set(got)) == report.resources
    # The same resources as this process streams them itself (a second, independent path).
    assert got == ids(list(result.resources(count_check="lenient")))
    left = sorted(p.name for p in (tmp_path / "export").iterdir())
    assert left == sorted(f.file_name for f in report.files if f.ok), "no temp file or folder left"
    # The figures docs/scale-out.md quotes.
    per_worker = sorted(sum(1 for f in report.files if f.worker == w) for w in {f.worker for f in report.files})
    print(
        f"\nscale-out figures: {report!r}, files per worker {per_worker}, server file answers {served}, "
        f"{len(expired)} expired links, {len(refreshed)} manifest refreshes"
    )


def test_local_cluster_parquet_per_file(files_server: Server, cluster: Any, token_env: fd.EnvToken, tmp_path: Path) -> None:
    # issue 15: format="parquet": each worker writes <name>.parquet with the Rust TableWriter.
    pq = pytest.importorskip("pyarrow.parquet")
    result = export(files_server, token_env, faults="cut=1000")
    report = fd.download(result, tmp_path / "pq", client=cluster, format="parquet", kinds=("output",))
    assert not report.failed and len(report.files) == len(result.files)
    rows = 0
    got: List[str] = []
    for f in report.files:
        assert f.path is not None and f.path.endswith(".parquet") and f.written_bytes == Path(f.path).stat().st_size
        table = pq.read_table(f.path)
        assert table.num_rows == f.resources
        rows += table.num_rows
        got += [f"{t}/{i}" for t, i in zip(table.column("resourceType").to_pylist(), table.column("id").to_pylist())]
    assert rows == len(set(got)) == report.resources
    assert sorted(got) == ids(list(result.resources()))


def test_local_cluster_to_dataframe(files_server: Server, cluster: Any, token_env: fd.EnvToken) -> None:
    # issue 15: a Dask DataFrame, one partition per file, downloaded by the workers.
    result = export(files_server, token_env, faults="cut=1000")
    frame = fd.to_dataframe(result, "Observation", client=cluster)
    n_files = len([f for f in result.files if f.get("resourceType") == "Observation"])
    assert frame.npartitions == n_files >= 2
    pdf = frame.compute()
    want = [r["id"] for r in result.resources("Observation")]
    assert sorted(pdf["id"]) == sorted(want) and pdf["id"].is_unique
    assert set(pdf["resourceType"]) == {"Observation"}
    with pytest.raises(fhir_async.UsageError, match="no Medication"):
        fd.to_dataframe(result, "Medication", client=cluster)


def test_client_spec_rebuilds_the_client() -> None:
    spec = fd.ClientSpec("http://127.0.0.1:1/fhir", retry=dict(FAST), timeout=5.0, token=fd.EnvToken("X"))
    again = fd.ClientSpec.of(spec.build())
    assert (again.base_url, again.timeout, again.token) == (spec.base_url, spec.timeout, spec.token)
    assert again.retry == {"minWaitMs": 20, "initialBackoffMs": 20, "maxBackoffMs": 200}
    assert "EnvToken(name='X')" in repr(spec)


def test_an_fsspec_url_as_destination(server: Server) -> None:
    # issue 15: dest may be an fsspec URL; each finished file is put there (memory:// in this process).
    fsspec = pytest.importorskip("fsspec")
    result = client(server.base("/bulk/fhir")).export(types=["Patient"]).wait()
    import dask

    with dask.config.set(scheduler="threads"):  # this process, even while the module's cluster is up
        report = fd.download(result, "memory://fhir-async-test/export", format="parquet")
    assert not report.failed and report.paths == ["memory://fhir-async-test/export/Patient.000.parquet"]
    fs = fsspec.filesystem("memory")
    assert fs.size("/fhir-async-test/export/Patient.000.parquet") == report.files[0].written_bytes > 0
    fs.rm("/fhir-async-test", recursive=True)


def test_workers_sign_their_own_assertions_with_backend_services(cluster: Any, tmp_path: Path) -> None:
    # issue 15: the worker gets the auth configuration (a BackendServices with a key path), and
    # asks the token endpoint itself; the tasks hold the key's path, never a token.
    keys = ROOT / "tests" / "server" / "tests" / "fixtures"
    s = start_server(
        "--job-ms", "100", "--retry-after", "0", "--patients", "20", "--file-resources", "10",
        "--jwks", str(keys / "jwks.json"),
    )
    try:
        auth = fhir_async.BackendServices("client-1", key=keys / "es384-private.pem", kid="test-es384")
        result = client(s.base("/bulk/fhir"), auth=auth).export(types=["Patient", "Condition"]).wait()
        tasks = fd.file_tasks(result, tmp_path)
        assert tasks[0].spec.auth == auth and b"access_token" not in pickle.dumps(tasks)
        before = s.stats()["tokens"]["issued"]
        report = fd.download(result, tmp_path, client=cluster)
        assert not report.failed and len(report.files) == len(result.files) >= 4
        assert ndjson_ids(report.paths) == ids(list(result.resources()))
        # One token per task (each resumes the job with a client of its own), none from this process.
        assert s.stats()["tokens"]["issued"] - before == len(tasks)
        print(f"\nbackend services: {len(tasks)} tasks, {len(tasks)} tokens issued to the workers")
    finally:
        stop_server(s)
