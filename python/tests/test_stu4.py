"""Issue 23: an export against the reference server's ``stu4`` dialect
(``/stu4/fhir``) completes with the STU4 manifest (an informational
``outcome`` with ``countSeverity``, ``manifestType``, ``fileSize`` on every
entry), and its Parquet output is downloaded intact (protocol L10–L13)."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import fhir_async
from conftest import FAST, Server

PARQUET = "application/vnd.apache.parquet"


def test_l13_an_stu4_export_completes_with_its_parquet_file_downloaded_intact(
    server: Server, tmp_path: Path
) -> None:
    client = fhir_async.Client(server.base("/stu4/fhir"), retry=FAST)
    # The STU4 POST kick-off (L1), forced until the client chooses it itself (L2).
    job = client.export(post=True)
    result = job.wait()
    # L11: one outcome file whose countSeverity is "information": not "completed with errors"
    assert result.status == "completed", result.outcome
    manifest = result.manifest
    assert manifest is not None
    # L10, L12: the STU4 shape, read without a note
    assert manifest["manifestType"].endswith("/BulkDataManifest")
    assert isinstance(manifest["extension"], list)
    assert "error" not in manifest or not manifest["error"]
    assert manifest["outcome"][0]["countSeverity"] == [{"code": "information", "count": 1}]
    assert not [w for w in result.warnings if "L10" in w or "L12" in w], result.warnings
    parquet = [f for f in manifest["output"] if f.get("outputFormat") == PARQUET]
    assert len(parquet) == 1
    # L13: the plan says which file is opaque, and names it with its extension
    planned = [f for f in result.files if f.get("opaqueFormat")]
    assert [f["opaqueFormat"] for f in planned] == [PARQUET]
    assert planned[0]["fileName"].endswith(".parquet") and planned[0]["expectedBytes"] == parquet[0]["fileSize"]

    paths = result.download(tmp_path)
    assert not [r for r in paths.reports if r.get("error")], paths.reports
    names = sorted(p.name for p in tmp_path.iterdir())
    assert not [n for n in names if n.endswith((".tmp", ".part"))], names
    on_disk = (tmp_path / planned[0]["fileName"]).read_bytes()
    with urllib.request.urlopen(parquet[0]["url"]) as r:
        served = r.read()
    assert on_disk == served
    assert len(on_disk) == parquet[0]["fileSize"]
    assert on_disk[:4] == b"PAR1" and on_disk[-4:] == b"PAR1"
    # every NDJSON file is the manifest's fileSize too (L13: wherever it is given)
    sizes = {f["url"]: f["fileSize"] for f in manifest["output"] + manifest["outcome"]}
    for plan in result.files:
        assert (tmp_path / plan["fileName"]).stat().st_size == sizes[plan["url"]], plan


def test_l13_a_stream_of_resources_leaves_the_parquet_file_out(server: Server) -> None:
    client = fhir_async.Client(server.base("/stu4/fhir"), retry=FAST)
    result = client.export(types=["Patient"], post=True).wait()
    patients = list(result.resources("Patient"))
    assert patients and all(p["resourceType"] == "Patient" for p in patients)
