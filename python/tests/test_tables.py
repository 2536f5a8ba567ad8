"""Issue 15, Python: Arrow and Parquet built in Rust (the client's tables
module), Arrow handed to pyarrow through the PyCapsule interface; pandas,
polars and DuckDB on top of it; read_ndjson gains the same."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

import fhir_async
from fhir_async import _native
from conftest import Server, client, ids

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def result(server: Server) -> fhir_async.Result:
    return client(server.base("/bulk/fhir")).export().wait(raise_on_failure=True)


def row_ids(table: Any) -> List[str]:
    return sorted(f"{t}/{i}" for t, i in zip(table.column("resourceType").to_pylist(), table.column("id").to_pylist()))


def test_to_arrow_is_every_resource_of_the_type_without_a_copy(result: fhir_async.Result) -> None:
    # issue 15: a pyarrow.Table through the Arrow PyCapsule interface; the batches stay Rust's memory.
    before = pa.total_allocated_bytes()
    table = result.to_arrow("Observation")
    assert isinstance(table, pa.Table)
    assert pa.total_allocated_bytes() - before < table.nbytes / 10, "pyarrow allocated no copy of the columns"
    assert row_ids(table) == ids(list(result.resources("Observation")))
    assert table.schema.names[-1] == "_extra" and table.column("_extra").null_count == table.num_rows
    assert pa.types.is_struct(table.schema.field("code").type)
    # A type the export has no file of is an empty table, as to_pandas was an empty DataFrame.
    assert result.to_arrow("Medication").num_rows == 0 and len(result.to_pandas("Medication")) == 0


def test_every_type_round_trips_through_arrow(result: fhir_async.Result) -> None:
    # No field is lost: each row (columns, nulls dropped, merged with _extra) is the resource.
    def strip(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v

    types = sorted({f["resourceType"] for f in result.files if f["kind"] == "output"})
    assert len(types) == 6
    for t in types:
        rows = result.to_arrow(t).to_pylist()
        back = {}
        for row in rows:
            extra = json.loads(row.pop("_extra") or "{}")
            merged = {**strip(row), **extra}
            back[merged["id"]] = merged
        for r in result.resources(t):
            assert back[r["id"]] == json.loads(json.dumps(r)), f"{t}/{r['id']}"


def test_the_capsule_is_read_once(tmp_path: Path) -> None:
    p = tmp_path / "Patient.ndjson"
    p.write_text('{"resourceType":"Patient","id":"a"}\n{"resourceType":"Patient","id":"b","active":true}\n')
    stream = _native.ndjson_arrow([str(p)])
    assert "id" in stream.schema()
    capsule = stream.__arrow_c_stream__()
    assert type(capsule).__name__ == "PyCapsule"
    with pytest.raises(fhir_async.UsageError, match="already read"):
        stream.__arrow_c_stream__()
    del capsule  # an untaken stream is released with its capsule
    table = pa.RecordBatchReader.from_stream(_native.ndjson_arrow([str(p)])).read_all()
    assert table.column("id").to_pylist() == ["a", "b"]


def test_to_parquet_writes_one_file_per_type(result: fhir_async.Result, tmp_path: Path) -> None:
    written = result.to_parquet(tmp_path / "pq")
    expected: Dict[str, int] = {}
    for f in result.files:
        if f["kind"] == "output":
            expected[f["resourceType"]] = expected.get(f["resourceType"], 0) + f["expectedCount"]
    assert {w["resourceType"]: w["rows"] for w in written} == expected
    for w in written:
        assert Path(w["path"]) == tmp_path / "pq" / f"{w['resourceType']}.parquet"
        assert pq.read_metadata(w["path"]).num_rows == w["rows"] and w["bytes"] == Path(w["path"]).stat().st_size
    assert sorted(p.name for p in (tmp_path / "pq").iterdir()) == sorted(f"{t}.parquet" for t in expected)


def test_pandas_polars_and_duckdb_read_the_arrow_result(result: fhir_async.Result) -> None:
    pl = pytest.importorskip("polars")
    duckdb = pytest.importorskip("duckdb")
    want = ids(list(result.resources("Patient")))
    frame = result.to_pandas("Patient")
    assert sorted("Patient/" + i for i in frame["id"]) == want
    # issue 15 changed to_pandas: built from Arrow, so the _extra column is there too.
    assert "_extra" in frame.columns and isinstance(frame["name"].iloc[0][0], dict)
    polars_frame = result.to_polars("Patient")
    assert isinstance(polars_frame, pl.DataFrame) and polars_frame.height == len(want)
    obs = result.to_arrow("Observation")
    n = duckdb.sql("select count(*) from obs where valueQuantity is not null").fetchall()[0][0]
    assert 0 < n <= obs.num_rows
    assert pl.from_arrow(obs).height == obs.num_rows


def test_read_ndjson_makes_tables_of_local_files(result: fhir_async.Result, tmp_path: Path) -> None:
    paths = result.download(tmp_path / "nd", types=["Condition"], kinds=("output",))
    local = fhir_async.read_ndjson(list(paths))
    assert isinstance(local, fhir_async.NdjsonFiles)
    table = local.to_arrow()
    assert row_ids(table) == ids(list(fhir_async.read_ndjson(list(paths))))
    report = fhir_async.read_ndjson(list(paths)).to_parquet(tmp_path / "Condition.parquet")
    assert report["rows"] == table.num_rows == pq.read_table(tmp_path / "Condition.parquet").num_rows
    assert fhir_async.read_ndjson(list(paths)).to_pandas().shape[0] == table.num_rows


def test_a_field_seen_late_lands_in_extra(tmp_path: Path) -> None:
    # The schema is fixed on the first 1,000 lines; a later choice type (value[x]) keeps its value in _extra.
    p = tmp_path / "Observation.ndjson"
    lines = [{"resourceType": "Observation", "id": f"o{i}", "valueQuantity": {"value": i}} for i in range(1000)]
    lines.append({"resourceType": "Observation", "id": "late", "valueString": "high", "extension": []})
    p.write_text("".join(json.dumps(line) + "\n" for line in lines))
    table = fhir_async.read_ndjson(p).to_arrow()
    last = table.to_pylist()[-1]
    assert json.loads(last["_extra"]) == {"valueString": "high", "extension": []}


def test_a_line_that_is_not_json_is_an_invalid_line_error(tmp_path: Path) -> None:
    p = tmp_path / "bad.ndjson"
    p.write_text('{"resourceType":"Patient","id":"a"}\nnot json\n')
    with pytest.raises(fhir_async.InvalidLineError):
        fhir_async.read_ndjson(p).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(fhir_async.DownloadError):
        fhir_async.read_ndjson(tmp_path / "missing.ndjson").to_parquet(tmp_path / "m.parquet")


def test_a_missing_extra_is_a_usage_error(result: fhir_async.Result, monkeypatch: pytest.MonkeyPatch) -> None:
    # pyarrow and polars are optional extras: the error names the pip command.
    monkeypatch.setitem(sys.modules, "polars", None)
    with pytest.raises(fhir_async.UsageError, match=r"fhir-async\[polars\]"):
        result.to_polars("Patient")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(fhir_async.UsageError, match=r"fhir-async\[arrow\]"):
        result.to_arrow("Patient")
    import fhir_async.dask as fd

    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(fhir_async.UsageError, match=r"fhir-async\[dask\]"):
        fd.download(result, "unused")
