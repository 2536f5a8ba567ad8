"""Issue 20, one place for each rule, as the Python binding answers it: its
defaults are the core's (``DownloadOptions::default()``), the invalid-line
policy is the core's option passed through, and ``to_parquet`` names its
tables as the CLI does (the core's rule), organized output included."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import fhir_async
from fhir_async import _native
from conftest import client
from stub_server import Stub, StubFile, stub  # noqa: F401 - `stub` is a fixture

PATIENTS = b'{"resourceType":"Patient","id":"a"}\n{"resourceType":"Patient","id":"b"}\n'
OBSERVATION = b'{"resourceType":"Observation","id":"o","status":"final"}\n'


def test_the_defaults_are_the_cores() -> None:
    # Python's resources() took max_per_origin=1 where JS took 4: both now take the core's.
    core = _native.download_defaults()
    assert core["maxPerOrigin"] == 4
    for f in (fhir_async.Result.resources, fhir_async.Result.download):
        params = inspect.signature(f).parameters
        assert params["max_per_origin"].default == core["maxPerOrigin"], f.__name__
        assert params["count_check"].default == core["countCheck"], f.__name__
        assert params["on_invalid_line"].default == core["invalidLines"] == "report", f.__name__
        assert params["max_total"].default == core["maxTotal"] == 64, f.__name__
    read = inspect.signature(fhir_async.read_ndjson).parameters["on_invalid_line"]
    assert read.default == core["invalidLines"]
    assert inspect.signature(fhir_async.Result.download).parameters["kinds"].default == tuple(core["kinds"])
    dask_kinds = inspect.signature(fhir_async.dask.download).parameters["kinds"].default
    assert dask_kinds == tuple(core["kinds"])


def test_to_parquet_keeps_organized_output_and_a_type_the_cli_sanitizes(stub: Stub, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    # Organized output (no type) was dropped; a type that is no file name failed the whole call.
    stub.files.update(
        org=StubFile(PATIENTS, count=2, resource_type=None),
        odd=StubFile(OBSERVATION, count=1, resource_type="Obser vation/../x"),
        pat=StubFile(PATIENTS, count=2),
    )
    result = client(stub.base).export().wait(raise_on_failure=True)
    tables = result.to_parquet(tmp_path / "pq")
    got = {t["resourceType"]: t for t in tables}
    # The CLI's names: the plan's safe file name up to its first dot (Observationx.001.ndjson).
    cli = {f["fileName"].split(".")[0] for f in result.files if f["kind"] == "output"}
    assert set(got) == cli == {"output", "Observationx", "Patient"}, got
    assert got["output"]["rows"] == 2 and got["Observationx"]["rows"] == 1 and got["Patient"]["rows"] == 2
    for name, t in got.items():
        assert Path(t["path"]) == tmp_path / "pq" / f"{name}.parquet"
        assert pq.read_table(t["path"]).num_rows == t["rows"]
    assert sorted(p.name for p in (tmp_path / "pq").iterdir()) == sorted(f"{n}.parquet" for n in cli)


def test_max_total_is_the_cores_option(stub: Stub, tmp_path: Path) -> None:
    # issue 20: the total cap is an option of the core that Python passes through.
    stub.files.update(a=StubFile(PATIENTS, count=2), b=StubFile(PATIENTS, count=2))
    result = client(stub.base).export().wait(raise_on_failure=True)
    assert len(result.download(tmp_path, max_total=1)) == 2
    assert len(list(result.resources(max_total=1))) == 4
    with pytest.raises(fhir_async.UsageError, match="max_total"):
        result.download(tmp_path, max_total=0)


def test_the_invalid_line_policy_is_the_cores(stub: Stub, tmp_path: Path) -> None:
    # Python no longer deletes a finished file itself: the core fails the file at its first
    # invalid line (InvalidLines::Raise), the stream raises that error, the folder keeps nothing.
    bad = b'{"resourceType":"Patient","id":"a"}\n{not json}\n{"resourceType":"Patient","id":"c"}\n'
    stub.files.update(bad=StubFile(bad, count=2))
    result = client(stub.base).export().wait(raise_on_failure=True)
    got = []
    with pytest.raises(fhir_async.InvalidLineError) as e:
        for r in result.resources(on_invalid_line="raise"):
            got.append(r["id"])
    assert got == ["a"] and e.value.line == 2 and e.value.code == "invalid_line"
    with pytest.warns(fhir_async.FhirAsyncWarning, match="failed"):
        paths = result.download(tmp_path / "out", on_invalid_line="raise")
    assert len(paths) == 0 and list((tmp_path / "out").iterdir()) == []
    assert isinstance(paths.failed[0]["error"], fhir_async.InvalidLineError)
    with pytest.raises(fhir_async.UsageError, match="on_invalid_line"):
        result.resources(on_invalid_line="skip")  # type: ignore[arg-type]
