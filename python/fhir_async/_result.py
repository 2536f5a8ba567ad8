"""How a job ended (``Result``) and what can be done with its files:
stream them (``resources``), download them (``download``), or make tables
of them (``to_arrow``, ``to_parquet``, ``to_pandas``, ``to_polars``)."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Union

from ._files import DownloadedFiles, ResourceStream
from ._options import (
    ATTACHMENTS,
    COUNT_CHECK,
    KINDS,
    MAX_PER_ORIGIN,
    MAX_TOTAL,
    ON_INVALID_LINE,
    STREAM_KINDS,
    AttachmentMode,
    CountCheck,
    OnInvalidLine,
    _at_least_one,
    _attachment_max_size,
    _attachment_types,
    _max_line,
    _per_origin,
)
from ._progress import _DownloadBar
from .errors import CancelledError, FhirAsyncWarning, JobFailedError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    import polars
    import pyarrow

    from ._job import Job


class Result:
    """How a job ended: ``status`` is ``completed``, ``completedWithErrors``,
    ``failed`` or ``cancelled``. Server-reported failure is a result, not an
    exception, until ``raise_for_status()``.

    The payload (``outcome["result"]``: a manifest, a Bundle, ...) becomes
    Python objects only when first asked for (``outcome``, ``body``,
    ``manifest``, ``files``), so ``wait()`` then ``download()`` of a manifest
    of 100,000 files builds no 100,000 dicts."""

    def __init__(self, job: Job, summary: Dict[str, Any]) -> None:
        self.job = job
        self._summary = summary
        self._outcome: Optional[Dict[str, Any]] = None
        self.last_reports: Sequence[Dict[str, Any]] = []

    @property
    def outcome(self) -> Dict[str, Any]:
        """The whole outcome, as the engine's camelCase JSON."""
        if self._outcome is None:
            outcome = self.job._native.outcome()
            self._outcome = dict(self._summary) if outcome is None else outcome
        return self._outcome

    @property
    def status(self) -> str:
        status: str = self._summary["status"]
        return status

    @property
    def ok(self) -> bool:
        """Whether the job succeeded (possibly with errors in the manifest): the engine's word."""
        return bool(self._summary.get("ok"))

    @property
    def message(self) -> Optional[str]:
        return self._summary.get("message")

    @property
    def http_status(self) -> Optional[int]:
        return self._summary.get("httpStatus")

    @property
    def warnings(self) -> List[str]:
        """What did not stop the job but is worth knowing (clamped ``Retry-After``, ...)."""
        return list(self._summary.get("warnings") or [])

    @property
    def body(self) -> Dict[str, Any]:
        """The result payload: ``{"kind": "manifest"|"bundle"|"asyncJob"|
        "operationOutcome"|"resource"|"text"|"empty", ...}``."""
        body: Dict[str, Any] = self.outcome["result"]
        return body

    @property
    def manifest(self) -> Optional["Manifest"]:
        """The manifest, if the result has one: a dict that also works as
        ``client.resources(result.manifest)``."""
        found: Optional[Dict[str, Any]] = self.body.get("manifest")
        return None if found is None else Manifest(found, self)

    @property
    def files(self) -> List[Dict[str, Any]]:
        """The download plan: one entry per file (``kind``, ``resourceType``,
        ``url``, ``expectedCount``, ``expectedBytes`` (the manifest's
        ``fileSize``), ``opaqueFormat`` (set for a file that is not NDJSON,
        e.g. Parquet: downloaded as bytes), ``fileName``, ``sendToken``,
        ``blocked``)."""
        plan: List[Dict[str, Any]] = self.job._native.download_plan()
        return plan

    def raise_for_status(self) -> "Result":
        """Raises ``JobFailedError`` (failed) or ``CancelledError`` (a
        cancelled job has no files); returns self otherwise."""
        if self.status == "failed":
            raise JobFailedError(
                self.message or f"the job failed (HTTP {self.http_status})",
                outcome=self.outcome,
                operation_outcome=self._summary.get("operationOutcome"),
            )
        if self.status == "cancelled":
            raise CancelledError("the job was cancelled")
        return self

    def resources(
        self,
        resource_type: Union[None, str, Sequence[str]] = None,
        *,
        kinds: Sequence[str] = STREAM_KINDS,
        kind: Optional[str] = None,
        count_check: CountCheck = COUNT_CHECK,
        on_invalid_line: OnInvalidLine = ON_INVALID_LINE,
        max_per_origin: int = MAX_PER_ORIGIN,
        concurrency: Optional[int] = None,
        max_line: Optional[int] = None,
        max_total: int = MAX_TOTAL,
        attachments: AttachmentMode = ATTACHMENTS,
        attachment_types: Optional[Sequence[str]] = None,
        attachment_max_size: Optional[int] = None,
        attachments_dir: Union[None, str, "os.PathLike[str]"] = None,
    ) -> "ResourceStream":
        """Streams the resources of the export's files as dicts, downloading
        ahead in the background (``kinds``: output, error, deleted; default
        output; ``kind=`` is the old single-kind spelling). Up to
        ``max_per_origin`` files (``concurrency`` is its old name; the core's
        default, 4, as in every binding) download at once from one origin,
        so the resources of different files interleave (each file's in
        order); ``max_per_origin=1`` gives them one file after the other in
        manifest order. ``close()`` the stream to stop the download early.

        A line that is not JSON never stops the stream: with
        ``on_invalid_line="report"`` (the default) it is skipped, every valid
        line is still delivered, the line is recorded in its file's report
        (``ResourceStream.reports``) and a ``FhirAsyncWarning`` names the file
        once; with ``"raise"`` the stream raises ``InvalidLineError`` (file,
        line number, message) and ends. A file that fails (HTTP error, count
        mismatch with ``count_check="strict"``, ...) is reported and warned
        about, and the stream goes on with the next file; with
        ``count_check="lenient"`` a count mismatch is only noted in the report.
        A file that changes on the server after some of its lines were handed
        out (a continuation answered with other bytes, protocol K7) fails with
        ``FileChangedError``: the stream never mixes two versions of a file.
        ``max_line`` is the longest line accepted, in bytes (protocol K9;
        None: the core's 64 MiB); a longer one fails its file (code
        ``line_too_long``). ``max_total`` bounds the files at once whatever
        their origins (the core's default, 64).

        Attachments (protocol M): with ``attachments="inline"`` each resource
        whose ``DocumentReference.content[].attachment`` or
        ``DiagnosticReport.presentedForm[]`` has a ``url`` and no ``data`` comes
        with the document in it (``data``, ``size``, ``hash`` as base64 SHA-1,
        ``contentType``; ``url`` kept). Such resources are held back until the
        NDJSON files are in and their attachments fetched (each URL once, the
        token only to the FHIR server's origin), then yielded. With
        ``attachments="files"`` each attachment is written to
        ``attachments_dir`` (required; created if needed) and the resources
        come unchanged. ``attachment_types`` keeps only these media types
        (prefix match: ``"text/"``; None: every type, as the core's default);
        ``attachment_max_size`` is the largest attachment taken, bytes (None:
        the core's 4 MiB): a larger one fails with ``TooLargeError`` (code
        ``too_large``), or ``blocked`` when its declared ``size`` is already
        over. An attachment that fails leaves its resource unchanged; the
        stream's ``attachments`` lists one report per attachment once it
        ended."""
        self.raise_for_status()
        if attachments == "files" and attachments_dir is None:
            raise UsageError('attachments="files" in a stream needs attachments_dir (where to write them)')
        types = [resource_type] if isinstance(resource_type, str) else resource_type
        it = self.job._native.resources(
            types=None if types is None else list(types),
            kinds=[kind] if kind is not None else list(kinds),
            count_check=count_check,
            on_invalid_line=on_invalid_line,
            max_per_origin=_per_origin(max_per_origin, concurrency),
            max_line=_max_line(max_line),
            max_total=_at_least_one(max_total, "max_total"),
            attachments=attachments,
            attachment_types=_attachment_types(attachment_types),
            attachment_max_size=_attachment_max_size(attachment_max_size),
            attachments_dir=None if attachments_dir is None else os.fspath(attachments_dir),
        )
        return ResourceStream(it)

    def download(
        self,
        directory: Union[str, "os.PathLike[str]"],
        *,
        max_per_origin: int = MAX_PER_ORIGIN,
        concurrency: Optional[int] = None,
        types: Optional[Sequence[str]] = None,
        kinds: Sequence[str] = KINDS,
        progress: Optional[bool] = False,
        gzip: bool = True,
        count_check: CountCheck = COUNT_CHECK,
        on_invalid_line: OnInvalidLine = ON_INVALID_LINE,
        files: Optional[Sequence[str]] = None,
        max_line: Optional[int] = None,
        max_total: int = MAX_TOTAL,
        attachments: AttachmentMode = ATTACHMENTS,
        attachment_types: Optional[Sequence[str]] = None,
        attachment_max_size: Optional[int] = None,
    ) -> "DownloadedFiles":
        """Downloads the files into ``directory`` (created if needed), at most
        ``max_per_origin`` at once from one origin (``concurrency`` is its
        old name; ``kinds`` defaults to all three lists). Each file is written to
        ``NAME.tmp`` and renamed once complete and its line count matches the
        manifest; on Ctrl-C no ``.tmp`` file remains. A file that is not NDJSON
        (an ``outputFormat`` such as Parquet, protocol L13) is written as the
        bytes the server sent, named with its extension (``Patient.003.parquet``);
        every file that has a ``fileSize`` in the manifest is checked against it
        (``size_mismatch`` after one retry).

        One bad file never loses the others: a file that fails (its count
        differs from the manifest's with ``count_check="strict"``, an HTTP
        error, retries exhausted, a blocked URL, an invalid line with
        ``on_invalid_line="raise"``) leaves nothing behind and is a report
        entry whose ``error`` is the typed exception; every good file is kept,
        and one ``FhirAsyncWarning`` sums up the problems. With
        ``count_check="lenient"`` a mismatching file is kept and its report
        says so (``countMismatch``, ``warnings``). Lines are written as the
        server sent them; a line counts as a resource only if it parses as a
        JSON object (issue 19): the others are counted in the report
        (``invalidLines``, ``invalid``), not in ``resources``. A file that
        changed on the server mid-download (a continuation answered with
        other bytes, protocol K7) is started over from byte 0, so each file
        holds exactly one version of it. Messages and warnings name a file's
        URL without its query (a signed URL is a credential, K10).

        Returns the paths of the files written, in manifest order (a
        sequence built on demand: 100,000 files cost no 100,000 objects);
        ``.reports`` and ``last_reports`` have one report per planned file,
        ``.failed`` the failed ones.

        ``files`` selects files of the plan by ``fileName`` (``result.files``),
        e.g. one per task of a cluster (``fhir_async.dask``); a name not in
        the plan is a ``UsageError``. ``max_line`` is the longest line
        accepted, in bytes (protocol K9; None: the core's 64 MiB); a longer
        one fails its file (code ``line_too_long``). ``max_total`` bounds the
        files at once whatever their origins (the core's default, 64).

        Attachments (protocol M; ``attachments="off"`` by default): once the
        NDJSON files are in, the documents their ``DocumentReference`` and
        ``DiagnosticReport`` resources point at are fetched (each URL once,
        ``Binary/{id}`` resolved against the FHIR base, the token only to the
        FHIR server's origin, a FHIR JSON ``Binary`` decoded, the resource's
        ``hash`` checked) into ``directory/attachments/`` with deterministic
        names, and ``directory/attachments.json`` reports each one.
        ``attachments="files"`` leaves the NDJSON as the server sent it;
        ``"inline"`` also writes each attachment into its resource (``data``,
        ``size``, ``hash``, ``contentType``; ``url`` kept).
        ``attachment_types`` keeps only these media types (prefix match;
        None: every type); ``attachment_max_size`` is the largest attachment
        taken, bytes (None: the core's 4 MiB). A failed attachment (an HTTP
        error, an OperationOutcome, ``too_large``, ``hash_mismatch``,
        ``bad_binary``) fails no file and leaves its resource unchanged: it is
        an entry of ``.attachments`` whose ``error`` is the typed exception,
        and one ``FhirAsyncWarning`` sums them up. A second download into the same folder fetches only what is not there yet."""
        if isinstance(files, str):
            raise UsageError("files must be a sequence of fileName strings, not one str")
        self.raise_for_status()
        per_origin = _per_origin(max_per_origin, concurrency)
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        bar = _DownloadBar() if progress else None
        try:
            native = self.job._native.download(
                str(target),
                max_per_origin=per_origin,
                types=None if types is None else list(types),
                kinds=list(kinds),
                gzip=gzip,
                progress=None if bar is None else bar.update,
                count_check=count_check,
                on_invalid_line=on_invalid_line,
                files=None if files is None else list(files),
                max_line=_max_line(max_line),
                max_total=_at_least_one(max_total, "max_total"),
                attachments=attachments,
                attachment_types=_attachment_types(attachment_types),
                attachment_max_size=_attachment_max_size(attachment_max_size),
            )
        finally:
            if bar is not None:
                bar.close()
        written = DownloadedFiles(native)
        self.last_reports = written.reports
        count, lines = native.problems(5)
        if count:
            more = f" (and {count - len(lines)} more)" if count > len(lines) else ""
            warnings.warn(
                f"{count} of {len(native)} files had problems; the good files were kept "
                f"(see .failed and .reports): " + "; ".join(lines) + more,
                FhirAsyncWarning,
                stacklevel=2,
            )
        if attachments != "off":
            reports = written.attachments
            failed = [str(r["error"]) for r in reports if r.get("error") is not None]
            if failed:
                more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
                warnings.warn(
                    f"{len(failed)} of {len(reports)} attachments failed; their resources were left "
                    f"unchanged (see .attachments): " + "; ".join(failed[:3]) + more,
                    FhirAsyncWarning,
                    stacklevel=2,
                )
        return written

    def to_arrow(self, resource_type: str) -> "pyarrow.Table":
        """The resources of one type as a ``pyarrow.Table``, built in Rust:
        the type's files are downloaded (the engine's per-file rules, as
        ``download()``: a failed file is warned about and left out) into a
        temporary folder, read into Arrow batches by the client's tables
        module and handed over through the Arrow PyCapsule interface (no
        copy). One column per top-level field (nested values are structs
        and lists) and ``_extra``: the JSON text of the fields that did not
        fit the inferred schema (null when all fit), so no field is lost.
        Needs pyarrow (``pip install 'fhir-async[arrow]'``)."""
        from . import _tables

        _tables._pyarrow()
        with tempfile.TemporaryDirectory(prefix="fhir-async-") as scratch:
            paths = self._download_quietly(scratch, [resource_type])
            return _tables.arrow_table(paths)

    def to_parquet(self, directory: Union[str, "os.PathLike[str]"]) -> List[Dict[str, Any]]:
        """Every resource type of the output as ``<directory>/<Type>.parquet``
        (zstd, row groups bounded in memory), written in Rust from the
        downloaded files (a temporary folder, removed after). Tables are
        named as the CLI's ``--format parquet`` names them (the core's rule):
        by the file's type with any character but letters, digits, ``-`` and
        ``_`` left out, and organized output (files without a type,
        ``organize_output_by``) as one ``output.parquet``. Returns one dict
        per table: ``resourceType`` (the table's name), ``path``, ``rows``,
        ``row_groups``, ``bytes``, ``extra_rows`` (rows with an ``_extra``
        value). Needs no Python package beyond this one."""
        from . import _tables

        Path(directory).mkdir(parents=True, exist_ok=True)
        # The NDJSON lands beside the output (its file system, not /tmp's), then goes.
        with tempfile.TemporaryDirectory(prefix=".fhir-async-", dir=directory) as scratch:
            written = self.download(scratch, kinds=("output",))
            return _tables.folder_to_parquet(written._native.tables(), directory)

    def to_pandas(self, resource_type: str) -> "pandas.DataFrame":
        """The resources of one type as a pandas DataFrame, from
        ``to_arrow()`` (issue 15): one column per top-level field, nested
        objects as dicts, arrays as numpy arrays, and the ``_extra`` column.
        Needs pandas and pyarrow (``pip install 'fhir-async[pandas]'``)."""
        from . import _tables

        return _tables.to_pandas(self.to_arrow(resource_type))

    def to_polars(self, resource_type: str) -> "polars.DataFrame":
        """The resources of one type as a polars DataFrame, from
        ``to_arrow()`` (no copy). Needs polars (``pip install 'fhir-async[polars]'``)."""
        from . import _tables

        return _tables.to_polars(self.to_arrow(resource_type))

    def _download_quietly(self, directory: str, types: List[str]) -> List[Path]:
        """The output files of ``types`` into ``directory``; a file that
        failed is left out and warned about, as ``download()`` does."""
        paths = self.download(directory, types=types, kinds=("output",))
        # The core keeps files without a type (organized output) whatever the types asked.
        wanted = {f["fileName"] for f in self.files if f.get("resourceType") in types}
        return [p for p in paths if p.name in wanted]

    def cleanup(self) -> Optional[Dict[str, Any]]:
        """Deprecated alias of ``job.cleanup()`` (issue 11: cleanup is on the job)."""
        return self.job.cleanup()

    def __repr__(self) -> str:
        return f"<Result {self.status} http={self.http_status} files={self._summary.get('files', 0)}>"


class Manifest(Dict[str, Any]):
    """A result's manifest (the server's JSON as a dict) that remembers its
    result, so ``client.resources(result.manifest)`` works."""

    def __init__(self, data: Mapping[str, Any], result: "Result") -> None:
        super().__init__(data)
        self._result = result
