"""Arrow and Parquet of NDJSON files, built in Rust (the client's ``tables``
module) and handed to pyarrow through the Arrow PyCapsule interface (no
copy of the batches). pyarrow, polars and pandas are optional extras: a
missing one is a ``UsageError`` that names the pip command."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple, Union

from . import _native
from .errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    import polars
    import pyarrow

PathLike = Union[str, "os.PathLike[str]"]


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError as e:
        raise UsageError("Arrow tables need pyarrow: pip install 'fhir-async[arrow]'") from e
    if not hasattr(pyarrow.RecordBatchReader, "from_stream"):  # pragma: no cover - pyarrow < 15
        raise UsageError("Arrow tables need pyarrow >= 15: pip install -U 'fhir-async[arrow]'")
    return pyarrow


def arrow_table(paths: Sequence[PathLike], *, infer_rows: Optional[int] = None) -> "pyarrow.Table":
    """The resources of NDJSON files of one type as a ``pyarrow.Table``: one
    column per top-level field (nested values are structs and lists), plus
    ``_extra``, the JSON text of fields that did not fit the inferred
    schema (null when all fit), so no field is lost."""
    pa = _pyarrow()
    stream = _native.ndjson_arrow([os.fspath(p) for p in paths], infer_rows=infer_rows)
    table: "pyarrow.Table" = pa.RecordBatchReader.from_stream(stream).read_all()
    return table


def to_pandas(table: "pyarrow.Table") -> "pandas.DataFrame":
    try:
        import pandas  # noqa: F401
    except ImportError as e:
        raise UsageError("to_pandas() needs pandas: pip install 'fhir-async[pandas]'") from e
    frame: "pandas.DataFrame" = table.to_pandas()
    return frame


def to_polars(table: "pyarrow.Table") -> "polars.DataFrame":
    try:
        import polars as pl
    except ImportError as e:
        raise UsageError("to_polars() needs polars: pip install 'fhir-async[polars]'") from e
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def ndjson_to_parquet(paths: Sequence[PathLike], out: PathLike) -> Dict[str, int]:
    """NDJSON files of one type into the Parquet file ``out`` (zstd; row
    groups bounded in memory; written to ``out.tmp`` and renamed); returns
    ``{"rows", "row_groups", "bytes", "extra_rows"}``."""
    report: Dict[str, int] = _native.ndjson_to_parquet([os.fspath(p) for p in paths], os.fspath(out))
    return report


def folder_to_parquet(files: Sequence[Tuple[str, PathLike]], out_dir: PathLike) -> List[Dict[str, Any]]:
    """``(resourceType, path)`` pairs into ``<out_dir>/<Type>.parquet``, one
    per type; returns one dict per type: ``resourceType``, ``path``,
    ``rows``, ``row_groups``, ``bytes``, ``extra_rows``."""
    os.makedirs(out_dir, exist_ok=True)
    done = _native.folder_to_parquet([(t, os.fspath(p)) for t, p in files], os.fspath(out_dir))
    return [
        {"resourceType": t, "path": os.path.join(os.fspath(out_dir), f"{t}.parquet"), **report} for t, report in done
    ]
