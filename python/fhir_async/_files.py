"""What a download gives back: the paths written (``DownloadedFiles``) and
their reports (``FileReports``), the resource stream (``ResourceStream``)
and local NDJSON files (``read_ndjson``, ``NdjsonFiles``). Every figure is
the engine's; the stream only parses lines (orjson when installed)."""

from __future__ import annotations

import itertools
import operator
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence, Union, overload

from . import _native
from ._options import ON_INVALID_LINE, OnInvalidLine

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    import polars
    import pyarrow


def _position(index: int, n: int, what: str) -> int:
    """A sequence index (negative counts from the end) as a position, or IndexError."""
    if index < 0:
        index += n
    if not 0 <= index < n:
        raise IndexError(f"{what} index out of range")
    return index


class DownloadedFiles(Sequence[Path]):
    """The paths ``Result.download()`` wrote, in manifest order, built on
    demand. ``reports`` has one report per planned file (``path`` for a file
    written; ``error``, the typed exception, for one that failed); ``failed``
    lists the failed ones."""

    def __init__(self, native: _native.DownloadReports) -> None:
        self._native = native
        self.reports = FileReports(native)

    @property
    def failed(self) -> List[Dict[str, Any]]:
        return self._native.failed()

    @property
    def attachments(self) -> List[Dict[str, Any]]:
        """One report per attachment (protocol M; empty with ``attachments="off"``):
        ``url`` (without its query), ``fileName`` (``attachments/<name>`` in the
        folder), ``contentType``, ``size``, ``sha1`` (base64), or ``error``, the
        typed exception (``TooLargeError``, an ``AttachmentError``, a ``DownloadError``)."""
        return self._native.attachments()

    def __len__(self) -> int:
        return self._native.ok_count

    @overload
    def __getitem__(self, index: int) -> Path: ...

    @overload
    def __getitem__(self, index: slice) -> List[Path]: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[Path, List[Path]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self._native.ok_path(_position(index, len(self), "path"))

    def __repr__(self) -> str:
        return f"<DownloadedFiles {len(self)} of {len(self._native)} files, {len(self._native) - len(self)} failed>"


class FileReports(Sequence[Dict[str, Any]]):
    """One report per planned file of a download, as dicts built on demand."""

    def __init__(self, native: _native.DownloadReports) -> None:
        self._native = native

    def __len__(self) -> int:
        return len(self._native)

    @overload
    def __getitem__(self, index: int) -> Dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> List[Dict[str, Any]]: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[Dict[str, Any], List[Dict[str, Any]]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self._native.report(_position(index, len(self), "report"))

    def __repr__(self) -> str:
        return f"<FileReports {len(self)} files>"


def read_ndjson(
    paths: Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]],
    *,
    on_invalid_line: OnInvalidLine = ON_INVALID_LINE,
) -> "NdjsonFiles":
    """Streams the resources of local NDJSON files (e.g. what ``download()``
    wrote) as dicts: read and split on a background thread, parsed like
    ``Result.resources()``, with the same ``on_invalid_line`` choice (a line
    that is not JSON is skipped and reported, or raises ``InvalidLineError``).
    The files of one type also become a table: ``.to_arrow()``,
    ``.to_parquet(path)``, ``.to_pandas()``, ``.to_polars()`` (built in Rust)."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    names = [os.fspath(p) for p in items]
    it = _native.read_ndjson(names, on_invalid_line=on_invalid_line)
    return NdjsonFiles(it, names)


def _orjson_loads() -> Optional[Callable[[bytes], Any]]:
    try:
        import orjson
    except ImportError:
        return None
    loads: Callable[[bytes], Any] = orjson.loads
    return loads


class ResourceStream(Iterator[Dict[str, Any]]):
    """Lines arrive from Rust in batches of ~256 KiB. With orjson installed
    they are parsed by ``orjson.loads`` in a C-level pipeline (measured
    faster than building dicts from Rust); otherwise by the native parser.
    A line that does not parse is skipped and reported (``reports``), or
    raises ``InvalidLineError`` with ``on_invalid_line="raise"``."""

    def __init__(self, it: _native.ResourceIterator) -> None:
        self._it = it
        loads = _orjson_loads()
        self._items: Iterator[Any]
        if loads is None:
            self._items = it
        else:
            self._loads = loads
            batches = map(self._parse, iter(it.next_raw_batch, []))
            self._items = itertools.chain.from_iterable(batches)

    def _parse(self, lines: List[bytes]) -> Iterator[Any]:
        """One batch (lines of one file) through ``orjson.loads`` at C speed;
        a line that fails is reported (issue 10 §1) and the rest go on."""
        src = iter(lines)
        items = map(self._loads, src)
        while True:
            try:
                # Not list(map(...)): a batch of live dicts makes the GC scan them (+40 %).
                yield from items
                return
            except ValueError as e:  # orjson.JSONDecodeError is a ValueError
                # The failed line is the last one `map` took from `src`.
                exc = self._it.report_invalid(len(lines) - operator.length_hint(src) - 1, str(e))
                if exc is not None:
                    raise exc from None

    @property
    def attachments(self) -> List[Dict[str, Any]]:
        """Once the stream ended, one report per attachment (protocol M, ``attachments=``
        ``"inline"`` or ``"files"``): ``url``, ``fileName`` (the path written in
        ``files`` mode), ``contentType``, ``size``, ``sha1``, or ``error`` (the typed exception)."""
        return self._it.attachments()

    @property
    def reports(self) -> List[Dict[str, Any]]:
        """The reports of the files finished so far: the engine's figures
        (``resources``, ``invalidLines``, ``invalid`` = ``[{"line", "message"}]``,
        ``countMismatch``, ``warnings``), or ``error`` for a file that failed."""
        return self._it.reports()

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        # The C-level iterator itself: a `for` loop then makes no Python call per resource.
        return self._items

    def __next__(self) -> Dict[str, Any]:
        value: Dict[str, Any] = next(self._items)
        return value

    def close(self) -> None:
        """Stops the background download; the stream ends (lines already
        handed to a running ``for`` loop may still arrive)."""
        self._it.close()
        self._items = iter(())

    def __repr__(self) -> str:
        return repr(self._it)


class NdjsonFiles(ResourceStream):
    """``read_ndjson``'s stream, which also makes a table of its files (one
    resource type): read by the Rust tables module, not through dicts."""

    def __init__(self, it: _native.ResourceIterator, paths: List[str]) -> None:
        super().__init__(it)
        self.paths = paths

    def to_arrow(self) -> "pyarrow.Table":
        """The files as a ``pyarrow.Table`` (see ``Result.to_arrow``); the
        dict stream is closed."""
        from . import _tables

        self.close()
        return _tables.arrow_table(self.paths)

    def to_parquet(self, path: Union[str, "os.PathLike[str]"]) -> Dict[str, Any]:
        """The files as one Parquet file at ``path`` (zstd, row groups bounded
        in memory); returns ``{"rows", "row_groups", "bytes", "extra_rows"}``."""
        from . import _tables

        self.close()
        return dict(_tables.ndjson_to_parquet(self.paths, path))

    def to_pandas(self) -> "pandas.DataFrame":
        from . import _tables

        return _tables.to_pandas(self.to_arrow())

    def to_polars(self) -> "polars.DataFrame":
        from . import _tables

        return _tables.to_polars(self.to_arrow())
