"""Checked with `mypy --strict` (python/scripts/test.sh): the public API as a
user would type it. Never executed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import fhir_async
from fhir_async import _native


def token() -> str:
    return "t"


def sync_usage(base: str) -> None:
    client = fhir_async.Client(base, token=token, timeout=60.0, retry={"min_wait_ms": 20}, allowed_origins=["https://s3"])
    # issue 23: trusted CAs (one path or a list, str or PathLike), the system store, a proxy.
    fhir_async.Client(base, ca_files=[Path("ca.pem"), "other.pem"], system_roots=True, proxy="http://127.0.0.1:3128")
    fhir_async.Client(base, ca_files=Path("ca.pem"), proxy=None)
    job: fhir_async.Job = client.export(types=["Patient"], since="2020-01-01T00:00:00Z", type_filters=["Patient?active=true"])
    url: Optional[str] = job.status_url
    p: fhir_async.Progress = job.progress
    phase: str = p.phase
    pct: Optional[float] = p.percent
    result: fhir_async.Result = job.wait(progress=True, raise_on_failure=False, timeout=10.0)
    status: str = result.status
    patients: Iterator[Dict[str, Any]] = result.resources("Patient")
    for r in patients:
        rid: Any = r["id"]
    paths: Sequence[Path] = result.download("out/", concurrency=8)
    kept: fhir_async.DownloadedFiles = result.download("out/", count_check="lenient", on_invalid_line="raise")
    failed: List[Dict[str, Any]] = kept.failed
    first: Dict[str, Any] = kept.reports[0]
    stream: fhir_async.ResourceStream = result.resources("Patient", on_invalid_line="report", count_check="strict")
    reports: List[Dict[str, Any]] = stream.reports
    local: fhir_async.ResourceStream = fhir_async.read_ndjson(kept, on_invalid_line="raise")
    del failed, first, reports, local
    # attachments (issue 24, protocol M)
    docs = result.download("out/", attachments="files", attachment_types=["application/pdf"], attachment_max_size=1 << 20)
    saved: List[Dict[str, Any]] = docs.attachments
    hydrated = result.resources("DocumentReference", attachments="inline", attachment_types=["text/"])
    to_dir = result.resources(attachments="files", attachments_dir=Path("docs"))
    streamed: List[Dict[str, Any]] = hydrated.attachments + to_dir.attachments
    mode: fhir_async.AttachmentMode = "inline"
    del saved, streamed, mode
    state: str = job.to_json()
    again: fhir_async.Job = client.resume(state)
    cancelled: Optional[Dict[str, Any]] = again.cancel()
    other = client.kickoff("POST", "$reindex", body={"resourceType": "Parameters"}, async_mode="bundle")
    del url, phase, pct, status, rid, paths, cancelled, other


def table_usage(result: fhir_async.Result, dask_client: Any) -> None:
    # issue 15: tables and the cluster, as a user would type them.
    import pandas
    import polars
    import pyarrow

    import fhir_async.dask as fd

    table: pyarrow.Table = result.to_arrow("Observation")
    frame: pandas.DataFrame = result.to_pandas("Patient")
    pl_frame: polars.DataFrame = result.to_polars("Patient")
    written: List[Dict[str, Any]] = result.to_parquet("parquet/")
    one: Sequence[Path] = result.download("out/", files=["Patient.000.ndjson"])
    local: fhir_async.NdjsonFiles = fhir_async.read_ndjson(one)
    again: pyarrow.Table = local.to_arrow()
    pq: Dict[str, Any] = fhir_async.read_ndjson(one).to_parquet("Patient.parquet")
    report: fd.DownloadReport = fd.download(result, "/shared/out", client=dask_client, format="parquet")
    outcomes: List[fd.FileOutcome] = report.failed
    tasks: List[fd.FileTask] = fd.file_tasks(result, "s3://bucket/export/", types=["Patient"])
    outcome: fd.FileOutcome = tasks[0]()
    spec = fd.ClientSpec("https://fhir.example/r4", token=fd.EnvToken("FHIR_TOKEN"))
    client: fhir_async.Client = spec.build()
    ddf = fd.to_dataframe(result, "Observation", client=dask_client)
    n: int = ddf.npartitions
    del table, frame, pl_frame, written, again, pq, outcomes, outcome, client, n


async def async_usage(client: fhir_async.Client) -> fhir_async.Result:
    job = client.export(types=["Observation"], start=False)
    return await job.wait_async(raise_on_failure=True)


def errors(e: Exception) -> str:
    if isinstance(e, fhir_async.JobFailed):
        outcome: Dict[str, Any] = e.outcome
        oo: Optional[Dict[str, Any]] = e.operation_outcome
        del outcome, oo
    if isinstance(e, fhir_async.InvalidLineError):
        line: Optional[int] = e.line
        where: Optional[str] = e.file
        del line, where
    if isinstance(e, fhir_async.FhirAsyncError):
        code: str = e.code
        return code
    return ""


def low_level(config: str) -> None:
    job = _native.Job(config)
    action: Dict[str, Any] = job.next_action(_native.now_ms())
    if action["type"] == "send":
        job.handle_response(action["request"]["id"], 202, [("Content-Location", "x")], b"", _native.now_ms())
    plan: List[Dict[str, Any]] = job.download_plan()
    del plan


asyncio.run(async_usage(fhir_async.Client("http://x")))
